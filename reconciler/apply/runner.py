"""Carry out a Plan through a Backend, tier by tier, and return what happened as a RunResult.

The story of a run:
1. a refused plan applies nothing: every tier SKIPPED, the run FAILED with the refusal;
2. for each tier in order (canary, then production): a `TierStarted` event (the caller posts
   `pending`), apply its changes, gate on health, commit or roll back, delete (see `tiers.py`);
3. a tier that does not succeed blocks the tiers after it (SKIPPED, `blocked_by` says why:
   "canary health gate failed", "canary failed: ...", "interrupted");
4. the run's outcome folds the tiers' (ERROR > FAILED > SKIPPED > SUCCESS).

apply_plan never raises for a backend failure: a failure is a result. Ctrl-C while it waits is
turned into `stop`: in-flight actions finish, then the run stops cleanly (`interrupted=True`).
Callers that own the process should install a SIGINT handler that sets `stop` themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from reconciler.apply.context import RunContext, SecretLookup
from reconciler.apply.gate import GateSettings
from reconciler.apply.retry import RetryPolicy
from reconciler.apply.tiers import run_tier
from reconciler.backends.base import Backend
from reconciler.model.enums import TIER_ORDER, Outcome, Tier
from reconciler.model.events import EventSink, TierDone
from reconciler.model.plan import Plan
from reconciler.model.results import RunResult, TierResult, fold_outcomes

log = logging.getLogger(__name__)


def apply_plan(
    plan: Plan,
    backend: Backend,
    *,
    secrets: SecretLookup,
    health_timeout_s: float,
    concurrency: int = 4,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_event: EventSink | None = None,
    retry_attempts: int = 4,
    retry_base_s: float = 0.5,
    health_poll_s: float = 1.0,
    health_confirm_polls: int = 2,
    wall: Callable[[], float] = time.time,
) -> RunResult:
    """Apply `plan` canary tier first; see the module docstring for the steps and outcomes."""
    ctx = RunContext(
        backend=backend, secrets=secrets, concurrency=concurrency, stop=stop or threading.Event(),
        clock=clock, sleep=sleep, on_event=on_event, started=clock(),
        gate=GateSettings(health_timeout_s, poll_s=health_poll_s, confirm_polls=health_confirm_polls),
        retry=RetryPolicy(attempts=retry_attempts, base_s=retry_base_s),
    )
    started_wall = wall()

    def result(tiers: list[TierResult], outcome: Outcome | None = None, refused: str | None = None,
               error: str | None = None) -> RunResult:
        return RunResult(
            revision=plan.revision, outcome=outcome or fold_outcomes([t.outcome for t in tiers]),
            tiers=tuple(tiers), plan_summary=plan.summary(), started_at=started_wall,
            duration_s=clock() - ctx.started, interrupted=ctx.interrupted, refused=refused, error=error,
        )

    if plan.refused:
        log.warning("plan refused; nothing applied", extra={"revision": plan.revision, "error": plan.refused})
        blocked = [_blocked(plan, t, f"plan refused: {plan.refused}") for t in TIER_ORDER]
        return result(blocked, outcome=Outcome.FAILED, refused=plan.refused)

    tiers: list[TierResult] = []
    blocked_by: str | None = None
    for tier in TIER_ORDER:
        if blocked_by is None and ctx.stop.is_set():
            ctx.interrupted = True
            blocked_by = "interrupted"
        if blocked_by is not None:
            tiers.append(_blocked(plan, tier, blocked_by))
            ctx.emit(TierDone(tiers[-1]))
            continue
        tier_result = run_tier(ctx, plan, tier)
        tiers.append(tier_result)
        outcome = tier_result.outcome.value
        log.info("tier done", extra={"revision": plan.revision, "tier": tier.value, "outcome": outcome,
                                     "duration_s": tier_result.duration_s})
        ctx.emit(TierDone(tier_result))
        if tier_result.outcome is not Outcome.SUCCESS:
            blocked_by = blocked_reason(tier_result)
    first_error = next((t.message for t in tiers if t.outcome is Outcome.ERROR), None)
    return result(tiers, error=first_error)


def blocked_reason(failed: TierResult) -> str:
    """Why the tiers after `failed` were not applied, in words for a status line."""
    name = failed.tier.value
    if failed.outcome is Outcome.SKIPPED:
        return "interrupted"
    if failed.gate is not None and failed.gate.outcome is Outcome.FAILED:
        return f"{name} health gate failed"
    if failed.outcome is Outcome.ERROR:
        return f"{name} could not be applied (reconciler error)"
    return f"{name} failed"


def _blocked(plan: Plan, tier: Tier, why: str) -> TierResult:
    actions = plan.for_tier(tier)
    unchanged = len(actions) - sum(1 for a in plan.changes() if a.tier is tier)
    return TierResult(tier=tier, outcome=Outcome.SKIPPED, blocked_by=why, unchanged=unchanged,
                      message=f"not applied: {why}")
