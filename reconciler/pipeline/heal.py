"""Healing: what runs brought back to a verified spec, without changing the spec of anything running.

A head whose run failed is not applied again (the change is wrong), but what runs still needs
looking after: a container removed by hand, stopped, or unhealthy for too long. A converged head's
resync that finds no drift may still find a workspace unhealthy for too long. A heal pass:

    1. plan: for each tier with a verified revision (the newest whose run passed that tier's gate:
       the head's own where it passed that tier), that revision rendered and planned against what
       runs (`prepare`, `plan_prepared`: pins resolved now, holds as always; one pass per distinct
       revision), cut down to the tier's repairs (`reconciler.plan.heal.repairs`: missing created,
       stopped recreated, unhealthy-for-too-long recreated at the spec it runs; never a spec change
       of a running workspace, never a delete); a workspace an earlier tier repairs is not touched
       again by a later one;
       `plan_heal` plans the last verified revisions of a failed head; `heal_head` cuts a converged
       head's plan (already in hand, no drift) the same way;
    2. apply: each tier's repairs like any plan (`apply_planned`: gate, commit or roll back), canary
       first; one tier's failure does not block the other (both were verified before). A repair
       that fails its gate is not held: the spec was verified before, what failed is the workload
       or its surroundings, and the next resync (or `--heal-unhealthy-after`) simply tries again.

Nothing is posted here: the head's statuses keep saying what its own run found (a failed head
stays red). The daemon journals the pass as a run with trigger `heal`. A guard's refusal of the
whole revision's plan (deletes) does not concern repairs, which never delete.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.model.enums import TIER_ORDER, Outcome, RunStatus, Tier
from reconciler.model.events import EventSink
from reconciler.model.observed import ObservedWorkspace
from reconciler.model.plan import Plan
from reconciler.model.results import RunResult, TierResult, fold_outcomes
from reconciler.pipeline.compose import Parts
from reconciler.pipeline.stages import Planned, apply_planned, plan_prepared, prepare
from reconciler.plan.heal import repairs
from reconciler.report.statuses import counts_text
from reconciler.source.checkout import Checkout

# what runs -> the workspaces unhealthy for too long (id -> seconds): the daemon's clock decides
Unhealthy = Callable[[Sequence[ObservedWorkspace]], Mapping[str, float]]


@dataclass(frozen=True)
class TierHeal:
    tier: Tier
    planned: Planned  # the tier's last verified revision against what runs, its plan cut down to the repairs
    left: tuple[str, ...] = ()  # workspaces of the tier that differ but are left alone, one line each

    @property
    def revision(self) -> str | None:
        return self.planned.prepared.revision


@dataclass(frozen=True)
class HealPlan:
    head: str | None
    tiers: tuple[TierHeal, ...] = ()

    def plan(self) -> Plan:
        """Every repair in one plan (for the journal and the run page), on the head's revision."""
        return Plan(revision=self.head, actions=tuple(a for t in self.tiers for a in t.planned.plan.actions))

    def changes(self) -> int:
        return len(self.plan().changes())

    def left(self) -> tuple[str, ...]:
        return tuple(line for t in self.tiers for line in t.left)

    def where(self) -> str:
        """`canary at abc1234, production at def5678`: the revision each tier is kept at."""
        return ", ".join(f"{t.tier.value} at {(t.revision or '?')[:7]}" for t in self.tiers) or "no verified revision"


@dataclass(frozen=True)
class HealOutcome:
    status: RunStatus
    message: str
    run: RunResult


def plan_heal(head: str | None, verified: Mapping[Tier, Checkout], parts: Parts,
              unhealthy: Unhealthy | None = None) -> HealPlan:
    """Step 1: the repairs of each tier at its verified revision (see the module docstring)."""
    planned_by_revision: dict[str | None, Planned] = {}
    taken: set[str] = set()
    tiers: list[TierHeal] = []
    for tier in TIER_ORDER:
        checkout = verified.get(tier)
        if checkout is None:
            continue
        planned = planned_by_revision.get(checkout.revision)
        if planned is None:
            planned = planned_by_revision[checkout.revision] = plan_prepared(prepare(checkout, parts), parts)
        due = unhealthy(planned.prepared.actual) if unhealthy is not None else {}
        tiers.append(_cut(planned, tier, due, taken))
    return HealPlan(head, tuple(tiers))


def heal_head(planned: Planned, unhealthy: Mapping[str, float]) -> HealPlan:
    """Step 1 for a head whose own plan is in hand (a resync that found no drift): its repairs."""
    taken: set[str] = set()
    return HealPlan(planned.prepared.revision, tuple(_cut(planned, tier, unhealthy, taken) for tier in TIER_ORDER))


def _cut(planned: Planned, tier: Tier, unhealthy: Mapping[str, float], taken: set[str]) -> TierHeal:
    """`planned` with only the repairs of `tier` (those workspaces are then `taken`)."""
    actions, left = repairs(planned.plan, tier, unhealthy, taken)
    taken.update(a.workspace_id for a in actions)
    only = planned.plan.model_copy(update={"actions": actions, "refused": None})
    return TierHeal(tier, Planned(planned.prepared, only), left)


def apply_heal(heal: HealPlan, parts: Parts, *, stop: threading.Event | None = None,
               on_event: EventSink | None = None) -> HealOutcome:
    """Step 2: each tier's repairs applied, canary first; one `RunResult` with a tier per tier healed."""
    started_wall, started = parts.wall(), time.monotonic()
    results: list[TierResult] = []
    interrupted = False
    for tier_heal in heal.tiers:
        if not tier_heal.planned.plan.changes():
            continue
        if interrupted or (stop is not None and stop.is_set()):
            interrupted = True
            results.append(TierResult(tier=tier_heal.tier, outcome=Outcome.SKIPPED, blocked_by="interrupted",
                                      message="not applied: interrupted"))
            continue
        run = apply_planned(tier_heal.planned, parts, stop=stop, on_event=on_event, hold_failures=False)
        interrupted = interrupted or run.interrupted
        result = run.tier(tier_heal.tier)
        if result is not None:
            results.append(result)
    outcome = fold_outcomes([r.outcome for r in results])
    error = next((r.message for r in results if r.outcome is Outcome.ERROR), None)
    run = RunResult(revision=heal.head, outcome=outcome, tiers=tuple(results), plan_summary=heal.plan().summary(),
                    started_at=started_wall, duration_s=time.monotonic() - started, interrupted=interrupted,
                    error=error)
    return HealOutcome(*_status(heal, run), run=run)


def _status(heal: HealPlan, run: RunResult) -> tuple[RunStatus, str]:
    done = "; ".join(f"{r.tier.value}: {counts_text(r) or 'nothing'}" for r in run.tiers)
    if run.interrupted:
        return RunStatus.INTERRUPTED, f"heal interrupted ({done})"
    if run.outcome is Outcome.SUCCESS:
        return RunStatus.SUCCESS, f"healed, {heal.where()}: {done}"
    first = next((r for r in run.tiers if r.outcome is not Outcome.SUCCESS), None)
    why = f"{first.tier.value}: {first.message}" if first is not None else run.outcome.value
    return (RunStatus.FAILED if run.outcome is Outcome.FAILED else RunStatus.ERROR), f"heal did not pass: {why}"
