"""What one run on the watched branch does, as numbered steps; the worker (`loop.py`) decides when.

    0. resync only: plan against the actual state first; no changes -> nothing recorded (`noop`),
       drift -> that same plan is applied below (one render, one observation per pass)
    1. journal the run: its id exists before anything is posted, so every status links to it
    2. `pending` on both tier contexts at once (the push-to-pending latency)
    3. the commit into the mirror (fetched only when missing), its tree planned (`plan_revision`)
    4. the plan journalled, then applied and reported (`apply_and_report`)
    5. the run's status: the pass's, except that an interrupt caused by a newer head is
       `superseded`, and a superseded commit says which commit superseded it
    6. journal, last good revision per tier, metrics
    7. recovery: an unverified change (superseded, error) goes back to its last good state at once,
       an interrupted one (SIGTERM, kill -9) at the next start, so the next plan starts from a known
       state and nothing kept for rollback leaks
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from reconciler.backends.base import Backend
from reconciler.daemon.journal import Journal, RunRow
from reconciler.daemon.logctx import tagged
from reconciler.daemon.loop import Request, RunControl
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.posting import StatusPoster
from reconciler.daemon.steps import Step, Steps
from reconciler.errors import ReconcilerError, SourceError
from reconciler.model.config import ReconcilerFile
from reconciler.model.enums import CHANGE_KINDS, Outcome, RunKind, RunStatus
from reconciler.model.events import ActionDone, ApplyEvent, EventSink, GateDone, GateStarted, TierDone, TierStarted
from reconciler.pipeline.compose import Parts
from reconciler.pipeline.passes import PassOutcome, apply_and_report, failed_outcome, plan_revision
from reconciler.pipeline.stages import Planned
from reconciler.plan import plan_to_json
from reconciler.render.repo import load_settings
from reconciler.report.statuses import StatusLine, planning_statuses, superseded_statuses
from reconciler.source.checkout import Checkout
from reconciler.source.mirror import GitMirror

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunDeps:
    mirror: GitMirror
    branch: str
    journal: Journal
    metrics: Metrics
    parts: Parts
    poster: StatusPoster | None
    public_url: str
    steps: Steps = field(default_factory=Steps)  # what the run is doing now, for /healthz


def run_url(public_url: str, run_id: int) -> str:
    return f"{public_url.rstrip('/')}/runs/{run_id}" if public_url else ""


def checkout_commit(mirror: GitMirror, sha: str, ref: str, extra_refspecs: tuple[str, ...] = ()) -> Checkout:
    """The tree of `sha`, fetching only when the mirror does not have the commit yet."""
    mirror.ensure_commit(sha, extra_refspecs)
    return Checkout(mirror.export_tree(sha), sha, ref, mirror)


class BranchRuns:
    """The `Executor` of the worker for the watched branch."""

    def __init__(self, deps: RunDeps) -> None:
        self.deps = deps

    # ---- the worker's calls ------------------------------------------------------------------
    def run(self, request: Request, control: RunControl) -> RunStatus:
        d = self.deps
        planned: Planned | PassOutcome | None = None
        if request.resync:  # 0.
            planned = self._plan(request.sha)
            if isinstance(planned, Planned) and not planned.plan.refused and not planned.plan.changes():
                return RunStatus.NOOP
            if isinstance(planned, Planned):
                changes = len(planned.plan.changes())
                log.info("resync found drift", extra={"revision": request.sha, "outcome": f"{changes} change(s)"})
        run_id = d.journal.start_run(RunKind.APPLY, request.sha, request.trigger)  # 1.
        url = run_url(d.public_url, run_id)
        started = time.monotonic()
        with tagged(run_id, request.sha, apply_run=True):
            log.info("run started", extra={"context": request.trigger})
            self._post(request.sha, planning_statuses(request.sha), url)  # 2.
            planned = planned or self._plan(request.sha)  # 3.
            if isinstance(planned, PassOutcome):
                outcome = planned
            else:
                d.journal.set_plan(run_id, plan_to_json(planned.plan))  # 4.
                outcome = apply_and_report(planned, d.parts, poster=d.poster, target_url=url, stop=control.stop,
                                           on_event=self._listener(run_id, control), post_final=False)
            status = outcome.status  # 5.
            final = list(outcome.final())
            if status is RunStatus.INTERRUPTED and control.superseded_by and not control.shutting_down:
                status = RunStatus.SUPERSEDED
                final += superseded_statuses(control.superseded_by, verified=True)
            self._record(run_id, status, outcome, final, control)  # 6. the journal first, then the commit
            self._post(request.sha, final, url)
            d.metrics.run_finished(status, time.monotonic() - started)
            log.info("run finished", extra={"outcome": status, "duration_s": round(time.monotonic() - started, 3)})
            if status in (RunStatus.SUPERSEDED, RunStatus.ERROR) and not control.shutting_down:  # 7.
                row = d.journal.run(run_id)
                if row is not None:
                    self.recover(row)
            self._observe()
        return status

    def superseded(self, request: Request, by: str) -> None:
        d = self.deps
        run_id = d.journal.start_run(RunKind.APPLY, request.sha, request.trigger, status=RunStatus.SUPERSEDED)
        lines = superseded_statuses(by, verified=False)
        with tagged(run_id, request.sha):
            self._post(request.sha, lines, run_url(d.public_url, run_id))
            d.journal.finish_run(run_id, RunStatus.SUPERSEDED, f"superseded by {by} before it was applied",
                                 statuses=[s.as_json() for s in lines], superseded_by=by, recovered=True)
            d.metrics.run_finished(RunStatus.SUPERSEDED, None)
            log.info("superseded before it ran", extra={"outcome": RunStatus.SUPERSEDED})

    # ---- recovery ----------------------------------------------------------------------------
    def recover_all(self) -> None:
        """At start: runs a dead process left `running` become interrupted; unverified changes roll back."""
        self.deps.journal.mark_crashed()
        for row in self.deps.journal.to_recover():
            self.recover(row)

    def recover(self, row: RunRow) -> None:
        actions = (row.plan or {}).get("actions", [])
        ids = sorted({a.get("workspace_id") or a.get("workspace") for a in actions if a["kind"] in CHANGE_KINDS})
        with tagged(row.id, row.revision), self.deps.steps.step("recover"):
            try:
                backend = self._backend_for(row.revision)
                for ws in ids:
                    backend.rollback(str(ws))
            except Exception as exc:  # the backend is down: try again at the next start
                log.warning("recovery failed; kept for later", extra={"error": str(exc)})
                return
            self.deps.journal.mark_recovered(row.id)
            if ids:
                log.info("unverified changes rolled back", extra={"outcome": f"{len(ids)} workspace(s)"})

    # ---- internals ---------------------------------------------------------------------------
    def _plan(self, sha: str) -> Planned | PassOutcome:
        try:
            with self.deps.steps.step(f"fetch {sha[:12]}"):
                checkout = checkout_commit(self.deps.mirror, sha, self.deps.branch)
        except SourceError as exc:
            return failed_outcome(sha, SourceError(f"could not fetch the commit: {exc}"))
        with self.deps.steps.step(f"plan {sha[:12]}"):
            return plan_revision(checkout, self.deps.parts)

    def _post(self, sha: str, lines: list[StatusLine] | tuple[StatusLine, ...], url: str) -> list[StatusLine]:
        if self.deps.poster is None:
            return []
        with self.deps.steps.step("post statuses"):
            return self.deps.poster.post_lines(sha, lines, url)

    def _backend_for(self, revision: str | None) -> Backend:
        """The backend as the run's own revision configured it (its reconciler.yaml), else the defaults."""
        repo = ReconcilerFile()
        if revision is not None:
            try:
                repo = load_settings(checkout_commit(self.deps.mirror, revision, self.deps.branch).root)
            except ReconcilerError as exc:  # a config error too: recovery still runs, on the defaults
                log.warning("recovery uses the default backend settings", extra={"error": str(exc)})
        return self.deps.parts.backend(repo)

    def _listener(self, run_id: int, control: RunControl) -> EventSink:
        journal, metrics, steps = self.deps.journal, self.deps.metrics, self.deps.steps
        open_steps: dict[str, Step] = {}  # the tier and the gate in progress, as steps for /healthz

        def on_event(event: ApplyEvent) -> None:
            if isinstance(event, ActionDone):
                r = event.result
                journal.add_action(run_id, r.tier, r.workspace_id, r.kind, r.outcome, r.message, r.attempts,
                                   r.duration_s)
                metrics.action_done(r.kind, r.outcome)
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

    def _record(self, run_id: int, status: RunStatus, outcome: PassOutcome, lines: list[StatusLine],
                control: RunControl) -> None:
        d = self.deps
        run = outcome.run
        d.journal.finish_run(
            run_id, status, outcome.message,
            result=run.model_dump(mode="json") if run is not None else None,
            statuses=[s.as_json() for s in lines],
            superseded_by=control.superseded_by if status is RunStatus.SUPERSEDED else None,
        )
        if run is not None and outcome.revision:
            for tier in run.tiers:
                if tier.outcome is Outcome.SUCCESS:
                    d.journal.set_last_good(tier.tier.value, outcome.revision, run_id)
        if status is RunStatus.SUCCESS:
            d.metrics.last_success.set(time.time())

    def _observe(self) -> None:
        try:
            with self.deps.steps.step("observe workspaces"):
                self.deps.metrics.observed(self.deps.parts.observer().list_owned())
        except Exception as exc:
            log.warning("could not observe workspaces for metrics", extra={"error": str(exc)})
