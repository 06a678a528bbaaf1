"""Docker label names, their (de)serialisation, and the names of containers and volumes.

Labels are the reconciler's only memory of what it runs (nothing else is read back to know it):
`list_owned` rebuilds the observed state from them alone, so everything the plan compares lives
here (spec hash, spec parts, tier, revision, image, installed plugin SHAs). No secret value ever reaches a label: the
desired workspace carries only keyed digests of secrets, and secret env is never passed in here.

Names, chosen so two reconciler instances on one engine never collide:

    container   ws-<instance>.<org>.<key>          e.g. ws-default.acme.research-lead
    volume      <container>.configs                 (mounted at /configs)
    snapshot    <container>.snapshot                (previous /configs content until commit/rollback)
    previous    <container>.prev-<old id[:12]>      (replaced container kept until commit/rollback)
    new         <container>.new-<random>            (a container being set up: renamed to <container>
                                                     once /configs is written and it runs)

Each component is reduced to `[A-Za-z0-9-]` (no dots), so the dots make a plain name decode to
exactly one (instance, org, key). When sanitising changes a component, a component is empty, or
the name would exceed 63 characters, the name is cut and ends in `_<10 hex of sha256(identity)>`
instead; `_` appears in no plain name, so hashed and plain names never collide either.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping

from reconciler.model.desired import DesiredWorkspace
from reconciler.model.enums import Tier

PREFIX = "reconciler."
MANAGED = "reconciler.managed"
INSTANCE = "reconciler.instance"
WORKSPACE = "reconciler.workspace"
TIER = "reconciler.tier"
SPEC_HASH = "reconciler.spec-hash"
SPEC_PARTS = "reconciler.spec-parts"
REVISION = "reconciler.revision"
IMAGE = "reconciler.image"
PLUGINS = "reconciler.plugins"  # {plugin name: installed commit SHA}: drift reasons and `track: none`
CONFIGS_HASH = "reconciler.configs-hash"  # backend-internal: fingerprint of what /configs should hold
ROLE = "reconciler.role"  # set on helper containers and snapshot volumes only
SESSION = "reconciler.session"  # on helpers and snapshots: the backend process that made them (sweeps)

ROLE_HELPER = "helper"
ROLE_SNAPSHOT = "snapshot"
MAX_NAME = 63
_HASH_LEN = 10
_UNSAFE = re.compile(r"[^A-Za-z0-9-]")


def owner_filters(instance_id: str) -> list[str]:
    """Label filters selecting the workload containers of one instance (helpers carry no MANAGED)."""
    return [f"{MANAGED}=true", f"{INSTANCE}={instance_id}"]


def is_owned(labels: Mapping[str, str] | None, instance_id: str, workspace_id: str | None = None) -> bool:
    """True when `labels` say this instance owns the object (and it belongs to `workspace_id`)."""
    labels = labels or {}
    if labels.get(INSTANCE) != instance_id:
        return False
    if labels.get(MANAGED) != "true" and not labels.get(ROLE):
        return False
    return workspace_id is None or labels.get(WORKSPACE) == workspace_id


def workload_labels(
    instance_id: str,
    desired: DesiredWorkspace,
    *,
    revision: str | None,
    image: str,
    configs_hash: str,
) -> dict[str, str]:
    labels = {
        MANAGED: "true",
        INSTANCE: instance_id,
        WORKSPACE: desired.id,
        TIER: str(desired.tier),
        SPEC_HASH: desired.spec_hash,
        SPEC_PARTS: encode_spec_parts(desired.spec_parts),
        IMAGE: image,
        CONFIGS_HASH: configs_hash,
        PLUGINS: encode_spec_parts(plugin_shas(desired)),
    }
    if revision:
        labels[REVISION] = revision
    return labels


def auxiliary_labels(instance_id: str, workspace_id: str, role: str | None = None,
                     session: str | None = None) -> dict[str, str]:
    """Labels of volumes and helper containers: owned by the instance, never listed as workloads."""
    labels = {INSTANCE: instance_id, WORKSPACE: workspace_id}
    if role:
        labels[ROLE] = role
    else:
        labels[MANAGED] = "true"
    if session:
        labels[SESSION] = session
    return labels


def plugin_shas(desired: DesiredWorkspace) -> dict[str, str]:
    """{plugin name: resolved commit SHA} of a desired workspace (unresolved plugins left out)."""
    return {p.name: p.resolved_sha for p in desired.plugins if p.resolved_sha}


def encode_spec_parts(parts: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(parts.items())), separators=(",", ":"))


def decode_spec_parts(raw: str | None) -> dict[str, str]:
    """Tolerant: a label edited by hand must not break observation (it just reads as 'differs')."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def decode_tier(raw: str | None) -> Tier:
    try:
        return Tier(raw or Tier.PRODUCTION)
    except ValueError:
        return Tier.PRODUCTION


def _component(raw: str) -> tuple[str, bool]:
    clean = _UNSAFE.sub("-", raw)
    return (clean or "x"), bool(raw) and clean == raw


def container_name(instance_id: str, workspace_id: str) -> str:
    """`ws-<instance>.<org>.<key>`: valid for Docker, at most 63 characters, collision-free."""
    org, _, key = workspace_id.partition("/")
    parts = [_component(p) for p in (instance_id, org, key)]
    plain = "ws-" + ".".join(p for p, _ in parts)
    if all(ok for _, ok in parts) and len(plain) <= MAX_NAME:
        return plain
    digest = hashlib.sha256(f"{instance_id}\0{workspace_id}".encode()).hexdigest()[:_HASH_LEN]
    return plain[: MAX_NAME - _HASH_LEN - 1] + "_" + digest


def volume_name(instance_id: str, workspace_id: str) -> str:
    return container_name(instance_id, workspace_id) + ".configs"


def snapshot_volume_name(instance_id: str, workspace_id: str) -> str:
    return container_name(instance_id, workspace_id) + ".snapshot"


def prev_container_name(instance_id: str, workspace_id: str, old_container_id: str) -> str:
    return f"{container_name(instance_id, workspace_id)}.prev-{old_container_id[:12]}"


def is_prev_name(name: str, instance_id: str, workspace_id: str) -> bool:
    return name.startswith(container_name(instance_id, workspace_id) + ".prev-")


def new_container_name(instance_id: str, workspace_id: str, token: str) -> str:
    return f"{container_name(instance_id, workspace_id)}.new-{token}"


def is_new_name(name: str, instance_id: str, workspace_id: str) -> bool:
    return name.startswith(container_name(instance_id, workspace_id) + ".new-")


def configs_fingerprint(desired: DesiredWorkspace) -> str:
    """What /configs should hold: files_dir content and installed plugin versions (short hash)."""
    files = desired.files
    files_material: list[object] | None = None
    if files:
        files_material = [files.content_hash, files.skills_hash, [[e.path, e.sha256] for e in files.entries]]
        if not (files.content_hash or files.skills_hash or files.entries):
            files_material.append(files.root)  # nothing hashed: assume it changed
    material = {
        "files": files_material,
        "plugins": sorted(
            [p.name, p.resolved_sha, p.content_hash, p.skills_hash] for p in desired.plugins if p.local_path
        ),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]
