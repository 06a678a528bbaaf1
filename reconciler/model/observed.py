"""Observed state: what a backend reports it runs for this reconciler instance (from labels/tags)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from reconciler.model.enums import HealthState, Tier


class ObservedWorkspace(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str  # <org>/<key>
    tier: Tier
    spec_hash: str
    spec_parts: dict[str, str] = Field(default_factory=dict)
    revision: str | None = None
    backend_ref: str  # container id / instance id
    name: str = ""  # container name / instance name
    running: bool = True
    health: HealthState = HealthState.UNKNOWN
    image: str | None = None
    plugins: dict[str, str] = Field(default_factory=dict)  # plugin name -> commit SHA installed
