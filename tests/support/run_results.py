"""Finished runs as the daemon journals them, for the run-page tests: `RunResult`s built from the model
(so their JSON is exactly what `finish_run` keeps) and `write_runs`, which puts a small history into
a `Journal` row by row: an earlier revision that converged, a review of the next one, and that next
one failing its canary health gate (production blocked)."""

from __future__ import annotations

from typing import Any

from reconciler.daemon.journal import Journal
from reconciler.model.enums import ActionKind, Outcome, RunKind, RunStatus, Tier, Trigger
from reconciler.model.results import ActionResult, GateResult, RunResult, TierResult

GOOD = "1" * 40
BAD = "2" * 40
GATE_MESSAGE = "acme/ws1 unhealthy: GET /health answered 500"
HOSTILE = "<script>alert(1)</script>"
SECRET = "sk-page-secret-4242"  # registered with the log scrubber by the tests that use it


def action(ws: str, kind: ActionKind, tier: Tier, start: float, duration: float,
           outcome: Outcome = Outcome.SUCCESS, message: str = "", attempts: int = 1) -> ActionResult:
    return ActionResult(workspace_id=ws, kind=kind, tier=tier, outcome=outcome, message=message or kind.value + "d",
                        attempts=attempts, started_at=start, duration_s=duration)


def passed_run() -> RunResult:
    """Canary: two changes then a 4 s gate; production: one change, a 3 s gate, then a delete."""
    canary = TierResult(
        tier=Tier.CANARY, outcome=Outcome.SUCCESS, duration_s=6.0,
        actions=(action("acme/ws0", ActionKind.CREATE, Tier.CANARY, 0.5, 1.5),
                 action("acme/ws1", ActionKind.UPDATE, Tier.CANARY, 0.5, 1.0)),
        gate=GateResult(tier=Tier.CANARY, healthy=2, total=2, outcome=Outcome.SUCCESS, duration_s=4.0),
    )
    production = TierResult(
        tier=Tier.PRODUCTION, outcome=Outcome.SUCCESS, duration_s=6.5,
        actions=(action("acme/ws2", ActionKind.RECREATE, Tier.PRODUCTION, 6.5, 2.0),
                 action("acme/old", ActionKind.DELETE, Tier.PRODUCTION, 11.5, 1.0)),
        gate=GateResult(tier=Tier.PRODUCTION, healthy=1, total=1, outcome=Outcome.SUCCESS, duration_s=3.0),
    )
    return RunResult(revision=GOOD, outcome=Outcome.SUCCESS, tiers=(canary, production), started_at=1000.0,
                     duration_s=13.0)


def failed_gate_run(message: str = GATE_MESSAGE) -> RunResult:
    """Canary: two changes, then the gate fails after 20 s (both rolled back); production blocked."""
    canary = TierResult(
        tier=Tier.CANARY, outcome=Outcome.FAILED, duration_s=23.0, rolled_back=("acme/ws0", "acme/ws1"),
        actions=(action("acme/ws0", ActionKind.UPDATE, Tier.CANARY, 0.2, 1.0),
                 action("acme/ws1", ActionKind.RECREATE, Tier.CANARY, 0.2, 2.0)),
        gate=GateResult(tier=Tier.CANARY, healthy=1, total=2, outcome=Outcome.FAILED, duration_s=20.0,
                        unhealthy=("acme/ws1",), message=message),
        message=f"health gate failed: {message}",
    )
    production = TierResult(tier=Tier.PRODUCTION, outcome=Outcome.SKIPPED, blocked_by="canary failed",
                            message="not applied: canary failed")
    return RunResult(revision=BAD, outcome=Outcome.FAILED, tiers=(canary, production), started_at=2000.0,
                     duration_s=23.5)


def failed_action_run() -> RunResult:
    """Canary: the second action fails (a config error) and the third is not attempted."""
    canary = TierResult(
        tier=Tier.CANARY, outcome=Outcome.FAILED, duration_s=3.0, rolled_back=("acme/ws0", "acme/ws1"),
        actions=(action("acme/ws0", ActionKind.CREATE, Tier.CANARY, 0.0, 1.0),
                 action("acme/ws1", ActionKind.CREATE, Tier.CANARY, 0.0, 2.5, Outcome.FAILED,
                        "image not found: 127.0.0.1:5000/nope:latest", attempts=1),
                 ActionResult(workspace_id="acme/ws2", kind=ActionKind.CREATE, tier=Tier.CANARY,
                              outcome=Outcome.SKIPPED, message="not attempted: acme/ws1 failed", started_at=1.0)),
        message="acme/ws1: image not found: 127.0.0.1:5000/nope:latest",
    )
    production = TierResult(tier=Tier.PRODUCTION, outcome=Outcome.SKIPPED, blocked_by="canary failed")
    return RunResult(revision=BAD, outcome=Outcome.FAILED, tiers=(canary, production), duration_s=3.2)


def plan_json(result: RunResult, reason: str = "spec changed") -> dict[str, Any]:
    actions = [{"kind": a.kind.value, "tier": a.tier.value, "workspace_id": a.workspace_id, "reason": reason}
               for a in result.actions()]
    summary: dict[str, int] = {}
    for a in actions:
        summary[a["kind"]] = summary.get(a["kind"], 0) + 1
    return {"mode": "reconcile", "summary": summary, "actions": actions}


def journal_run(journal: Journal, result: RunResult, status: RunStatus, message: str,
                trigger: Trigger = Trigger.PUSH) -> int:
    run_id = journal.start_run(RunKind.APPLY, result.revision, trigger)
    journal.set_plan(run_id, plan_json(result))
    for a in result.actions():  # as the worker journals each action when it ends
        journal.add_action(run_id, a.tier, a.workspace_id, a.kind, a.outcome, a.message, a.attempts, a.duration_s)
    statuses = [{"context": f"reconciler/{t.tier.value}", "state": "success" if t.outcome is Outcome.SUCCESS
                 else "failure", "description": f"{t.tier.value}: {t.outcome.value}"} for t in result.tiers]
    journal.finish_run(run_id, status, message, result=result.model_dump(mode="json"), statuses=statuses)
    return run_id


def write_runs(journal: Journal) -> dict[str, int]:
    """The history the browser test looks at; run ids by name."""
    ids = {"good": journal_run(journal, passed_run(), RunStatus.SUCCESS, "converged")}
    review = journal.start_run(RunKind.REVIEW, BAD, Trigger.PULL_REQUEST, pr=7)
    journal.set_plan(review, plan_json(failed_gate_run(), reason=f"image moved {HOSTILE}"))
    journal.finish_run(review, RunStatus.PLANNED, "planned", recovered=True)
    ids["review"] = review
    ids["bad"] = journal_run(journal, failed_gate_run(f"{GATE_MESSAGE} {HOSTILE} token={SECRET}"),
                             RunStatus.FAILED, f"canary: health gate failed: {GATE_MESSAGE}")
    return ids
