"""Results of applying a plan: frozen values the CLI, statuses, PR comments and the run page render.

One `RunResult` per apply: a `TierResult` per tier (canary, production) holding an `ActionResult`
per change and the tier's `GateResult`. Times: `RunResult.started_at` is wall-clock epoch seconds;
`ActionResult.started_at` is seconds since the run started (from the injected monotonic clock),
so tests with a fake clock get exact, reproducible values. No secret value is ever held here.
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict

from reconciler.model.enums import ActionKind, Outcome, Tier
from reconciler.model.holds import Hold


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ActionResult(_Frozen):
    workspace_id: str
    kind: ActionKind
    tier: Tier
    outcome: Outcome
    message: str = ""
    attempts: int = 0
    started_at: float = 0.0  # seconds since the run started
    duration_s: float = 0.0


class GateResult(_Frozen):
    """The health gate of one tier: every workspace the tier touched, polled until healthy."""

    tier: Tier
    healthy: int
    total: int
    outcome: Outcome  # SUCCESS, FAILED (unhealthy / timeout), ERROR, SKIPPED (interrupted)
    duration_s: float = 0.0
    unhealthy: tuple[str, ...] = ()  # ids not healthy when the gate ended, sorted
    message: str = ""


class TierResult(_Frozen):
    tier: Tier
    outcome: Outcome
    actions: tuple[ActionResult, ...] = ()
    gate: GateResult | None = None
    blocked_by: str | None = None  # why this tier was not applied (earlier tier failed, refused, ...)
    unchanged: int = 0  # NOOP actions of this tier in the plan
    rolled_back: tuple[str, ...] = ()  # workspace ids put back to their previous spec
    duration_s: float = 0.0
    message: str = ""  # first failure in words, for statuses and the run page

    def counts(self) -> Counter[ActionKind]:
        """Kinds of the actions that succeeded."""
        return Counter(a.kind for a in self.actions if a.outcome is Outcome.SUCCESS)

    def failed_actions(self) -> tuple[ActionResult, ...]:
        return tuple(a for a in self.actions if a.outcome in (Outcome.FAILED, Outcome.ERROR))


class RunResult(_Frozen):
    revision: str | None = None
    outcome: Outcome
    tiers: tuple[TierResult, ...] = ()
    plan_summary: str = ""
    started_at: float = 0.0  # wall clock, epoch seconds
    duration_s: float = 0.0
    interrupted: bool = False
    refused: str | None = None  # the guard's message when the plan was refused
    error: str | None = None
    new_holds: tuple[Hold, ...] = ()  # what failed a health gate in this run: held from now on

    def tier(self, tier: Tier) -> TierResult | None:
        return next((t for t in self.tiers if t.tier is tier), None)

    def actions(self) -> tuple[ActionResult, ...]:
        return tuple(a for t in self.tiers for a in t.actions)


def fold_outcomes(outcomes: list[Outcome]) -> Outcome:
    """The run's outcome from its tiers': ERROR beats FAILED beats SKIPPED beats SUCCESS."""
    for worst in (Outcome.ERROR, Outcome.FAILED, Outcome.SKIPPED):
        if worst in outcomes:
            return worst
    return Outcome.SUCCESS
