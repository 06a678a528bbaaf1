"""Observed state: what a backend reports it runs for this reconciler instance (from its labels)."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from reconciler.model.enums import HealthState, Tier


class ObservedWorkspace(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str  # <org>/<key>
    tier: Tier
    spec_hash: str
    spec_parts: dict[str, str] = Field(default_factory=dict)
    revision: str | None = None
    backend_ref: str  # the backend's handle: the container id on Docker
    name: str = ""  # container name on Docker
    running: bool = True
    health: HealthState = HealthState.UNKNOWN
    image: str | None = None
    plugins: dict[str, str] = Field(default_factory=dict)  # plugin name -> commit SHA installed


def split_current(
    observed: Iterable[ObservedWorkspace],
) -> tuple[dict[str, ObservedWorkspace], list[ObservedWorkspace]]:
    """The copy that counts per id (a running one first, then the lowest backend ref), and the rest.

    A backend may report several copies of one id (a crash between create and delete, a stray);
    every reader picks the same one, so the plan, the lock view and pin resolution agree.
    """
    current: dict[str, ObservedWorkspace] = {}
    others: list[ObservedWorkspace] = []
    for o in sorted(observed, key=lambda o: (o.id, not o.running, o.backend_ref)):
        if o.id in current:
            others.append(o)
        else:
            current[o.id] = o
    return current, others


def current_of(observed: Iterable[ObservedWorkspace]) -> dict[str, ObservedWorkspace]:
    """id -> the copy that counts (see `split_current`)."""
    return split_current(observed)[0]
