"""What a run reports as it goes: each action journalled and counted as it ends, the tier and the gate
under way as steps (`/healthz`), a gate's start and end told to the worker."""

from __future__ import annotations

import logging

from reconciler.daemon.journal import Journal
from reconciler.daemon.loop import RunControl
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.steps import Step, Steps
from reconciler.model.enums import Outcome
from reconciler.model.events import ActionDone, ApplyEvent, EventSink, GateDone, GateStarted, TierDone, TierStarted

log = logging.getLogger(__name__)


def run_listener(journal: Journal, metrics: Metrics, steps: Steps, run_id: int, control: RunControl,
                 heals: dict[str, str] | None = None) -> EventSink:
    """Journals each action of run `run_id` as it ends, and keeps the tier and gate under way as steps
    (for /healthz) and on `control` (a gate wait a newer head may end); `heals` (workspace -> what was
    wrong) are counted and logged too."""
    heals = heals or {}
    open_steps: dict[str, Step] = {}  # the tier and the gate in progress, as steps for /healthz

    def on_event(event: ApplyEvent) -> None:
        if isinstance(event, ActionDone):
            r = event.result
            journal.add_action(run_id, r.tier, r.workspace_id, r.kind, r.outcome, r.message, r.attempts,
                               r.duration_s)
            metrics.action_done(r.kind, r.outcome)
            if r.workspace_id in heals:
                metrics.heal_done(heals[r.workspace_id], r.outcome)
                ok = r.outcome is Outcome.SUCCESS
                log.info("workspace healed" if ok else "workspace not healed",
                         extra={"workspace": r.workspace_id, "action": str(r.kind), "outcome": str(r.outcome),
                                "context": heals[r.workspace_id], "error": None if ok else r.message})
        elif isinstance(event, TierStarted):
            open_steps["tier"] = steps.begin(f"apply {event.tier.value}")
        elif isinstance(event, GateStarted):
            control.gate_started()
            open_steps["gate"] = steps.begin(f"gate {event.tier.value}")
        elif isinstance(event, GateDone):
            control.gate_done()
            steps.end(open_steps.pop("gate", None))
        elif isinstance(event, TierDone):
            steps.end(open_steps.pop("tier", None))

    return on_event
