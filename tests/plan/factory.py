"""Small builders of desired/observed workspaces for plan, apply and report tests.

Spec parts and hashes come from the real `render.spec_hash`, so the fixtures hash like rendered
workspaces do.
"""

from __future__ import annotations

from typing import Any

from reconciler.errors import Location
from reconciler.model.config import Resources
from reconciler.model.desired import DesiredState, DesiredWorkspace, FilesRef, PluginPinRef
from reconciler.model.enums import Tier
from reconciler.model.observed import ObservedWorkspace
from reconciler.render.spec_hash import with_spec

IMAGE = "127.0.0.1:5000/ws-claude:v1"


def ws(
    key: str,
    *,
    org: str = "acme",
    tier: Tier = Tier.PRODUCTION,
    env: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,  # name -> digest (never a value)
    image: str = IMAGE,
    parent: str | None = None,
    files_hash: str = "files-1",
    skills_hash: str = "skills-1",
    plugins: tuple[tuple[str, str], ...] = (),  # (name, resolved sha)
    provisioned: bool = True,
    cpus: float | None = None,
) -> DesiredWorkspace:
    secrets = secrets or {}
    ws_id = f"{org}/{key}"
    return with_spec(DesiredWorkspace(
        id=ws_id, org=org, key=key, name=key.title(), tier=tier,
        runtime="claude-code" if provisioned else "external", provisioned=provisioned,
        image=image if provisioned else None, parent=parent,
        env={"WORKSPACE_ID": ws_id, **(env or {})},
        secrets=tuple(sorted(secrets)), secret_digests=dict(secrets),
        plugins=tuple(_plugin(n, sha) for n, sha in plugins),
        files=FilesRef(root="/nonexistent", display=f"orgs/{org}/files", content_hash=files_hash,
                       skills_hash=skills_hash),
        resources=Resources(cpus=cpus) if cpus else None,
        source=Location(f"orgs/{org}/org.yaml", 3, 5),
    ))


def state(*workspaces: DesiredWorkspace, revision: str = "a" * 40) -> DesiredState:
    ordered = tuple(sorted(workspaces, key=lambda w: w.id))
    return DesiredState(revision=revision, root="/nonexistent", workspaces=ordered)


def _plugin(name: str, sha: str) -> PluginPinRef:
    return PluginPinRef(name=name, source=f"http://127.0.0.1/p/{name}.git", track="none", resolved_sha=sha,
                        content_hash=f"c-{sha}", skills_hash=f"s-{sha}")


def observed(desired: DesiredWorkspace, ref: str | None = None, **over: Any) -> ObservedWorkspace:
    """What a backend would report for `desired` once applied (overridable)."""
    fields: dict[str, Any] = {
        "id": desired.id, "tier": desired.tier, "spec_hash": desired.spec_hash,
        "spec_parts": dict(desired.spec_parts), "revision": "b" * 40,
        "backend_ref": ref or f"ref-{desired.key}", "name": f"ws-{desired.org}-{desired.key}",
        "running": True, "image": desired.image_digest or desired.image,
    }
    fields.update(over)
    return ObservedWorkspace(**fields)
