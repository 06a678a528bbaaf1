"""What one engine listing says runs for an instance: containers' labels to `ObservedWorkspace`s. Pure.

`list_owned` makes the one list call; this turns its rows into observations: only containers
owned by the instance (labels checked), only the one with the workspace's own name (a `.prev-*`
kept for rollback or a stray copy is not the workspace), the override of an in-place update
applied, health read from the status line (no inspect).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.backends import labels as lb
from reconciler.backends.docker_health import check_state_from_ps
from reconciler.backends.docker_state import Override
from reconciler.model.enums import HealthState
from reconciler.model.observed import ObservedWorkspace


class ListingMemo:
    """Decoded JSON labels and container names of one `list_owned`, reused by the next: a pass that
    finds nothing changed reads the same label strings again (1,000 workspaces: ~2,000 JSON decodes
    and 1,000 names saved). Holds only what its own listing used, so it never outgrows one listing.
    Decoded values are shared, never mutated: `ObservedWorkspace` copies them when it validates."""

    def __init__(self, last: ListingMemo | None) -> None:
        self._last_parts = last.parts if last else {}
        self._last_names = last.names if last else {}
        self.parts: dict[str, dict[str, str]] = {}
        self.names: dict[str, str] = {}

    def decoded(self, raw: str | None) -> dict[str, str]:
        if not raw:
            return {}
        value = self.parts.get(raw)
        if value is None:
            value = self._last_parts.get(raw)
            if value is None:
                value = lb.decode_spec_parts(raw)
            self.parts[raw] = value
        return value

    def name(self, instance_id: str, workspace_id: str) -> str:
        value = self.names.get(workspace_id) or self._last_names.get(workspace_id)
        if value is None:
            value = lb.container_name(instance_id, workspace_id)
        self.names[workspace_id] = value
        return value


def observe(rows: list[dict[str, Any]], instance_id: str, overrides: Mapping[str, Override],
            memo: ListingMemo) -> list[ObservedWorkspace]:
    observed: list[ObservedWorkspace] = []
    for row in rows:
        labels = row.get("Labels") or {}
        ws = labels.get(lb.WORKSPACE)
        if not ws or not lb.is_owned(labels, instance_id, ws):
            continue
        name = memo.name(instance_id, ws)
        if not any(n.lstrip("/") == name for n in row.get("Names") or ()):
            continue  # a `.prev-*` container kept for rollback, or a stray copy
        spec_hash, revision = labels.get(lb.SPEC_HASH, ""), labels.get(lb.REVISION)
        spec_parts = memo.decoded(labels.get(lb.SPEC_PARTS))
        plugins = memo.decoded(labels.get(lb.PLUGINS))
        override = overrides.get(ws)
        if override and override.container_id == row.get("Id"):
            spec_hash, spec_parts, revision, plugins = (
                override.spec_hash,
                dict(override.spec_parts),
                override.revision,
                dict(override.plugins),
            )
        running = row.get("State") == "running"
        health = check_state_from_ps(str(row.get("Status", ""))) if running else HealthState.UNHEALTHY
        observed.append(
            ObservedWorkspace(
                id=ws,
                tier=lb.decode_tier(labels.get(lb.TIER)),
                spec_hash=spec_hash,
                spec_parts=spec_parts,
                revision=revision,
                backend_ref=str(row.get("Id")),
                name=name,
                running=running,
                health=health or HealthState.UNKNOWN,
                image=labels.get(lb.IMAGE),
                plugins=plugins,
            )
        )
    return observed
