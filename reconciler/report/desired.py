"""Renderings of a desired state: the readable tree and the JSON of `reconciler render`.

Never a secret value: secrets appear by name only, env by key only.
"""

from __future__ import annotations

from typing import Any

from reconciler.model.desired import DesiredState, DesiredWorkspace


def workspace_json(w: DesiredWorkspace) -> dict[str, Any]:
    return {
        "id": w.id,
        "name": w.name,
        "org": w.org,
        "key": w.key,
        "tier": w.tier.value,
        "runtime": w.runtime,
        "provisioned": w.provisioned,
        "image": w.image_digest or w.image,
        "parent": w.parent,
        "spec_hash": w.spec_hash,
        "plugins": [
            {"name": p.name, "source": p.source, "track": p.track, "resolved_sha": p.resolved_sha} for p in w.plugins
        ],
        "env_keys": sorted(w.env),
        "secrets": list(w.secrets),
        "files_dir": w.files.display if w.files else None,
        "files_hash": w.files.content_hash if w.files else None,
        "source": str(w.source),
    }


def desired_json(state: DesiredState) -> dict[str, Any]:
    return {"workspaces": [workspace_json(w) for w in state.workspaces]}


def render_tree(state: DesiredState) -> str:
    children: dict[str | None, list[DesiredWorkspace]] = {}
    for w in state.workspaces:
        children.setdefault(w.parent, []).append(w)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for w in children.get(parent, []):
            extra = " (external, not provisioned)" if not w.provisioned else f" {w.image}"
            lines.append(f"{'  ' * depth}- {w.id} [{w.tier.value}] {w.runtime}{extra}  spec {w.spec_hash[:12]}")
            walk(w.id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def summary(state: DesiredState) -> str:
    provisioned = sum(1 for w in state.workspaces if w.provisioned)
    orgs = len({w.org for w in state.workspaces})
    return (
        f"valid: {len(state.workspaces)} workspaces ({provisioned} provisioned, "
        f"{len(state.workspaces) - provisioned} external) in {orgs} orgs"
    )
