"""A hold: something that failed a health gate, kept from being applied again until it moves.

Records are values; `plan/holds.py` turns them into HOLD actions (pure) and the hold store keeps
them between runs. `reason()` is what a person reads in the plan, the status and the run page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

HoldKind = Literal["image", "plugin", "spec"]


class Hold(BaseModel):
    """One thing that failed a health gate: an image digest, a plugin SHA, or one workspace's spec."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: HoldKind
    subject: str  # image repository / plugin `source#path` / workspace id
    value: str  # `repo@sha256:...` / commit SHA / spec hash
    label: str  # what a person reads: `sha256:ab12…`, `plugin X at abc1234`, `spec 1a2b3c4d5e6f`
    workspace: str  # the workspace whose gate failed
    revision: str | None = None
    failed_at: float  # epoch seconds

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.subject, self.value)

    def when(self) -> str:
        return datetime.fromtimestamp(self.failed_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def reason(self) -> str:
        if self.kind == "spec":
            return f"this spec of {self.subject} failed its health gate at {self.when()}; waiting for a new commit"
        return f"{self.label} failed the canary gate at {self.when()}; waiting for it to move"
