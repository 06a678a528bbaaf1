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
    7. recovery: a change left unverified (superseded, error) is undone at once by the backend,
       from its intents (an interrupted one, SIGTERM or kill -9, at the next start), so the next
       plan starts from a known state and nothing kept for rollback leaks
    8. whatever a run raises ends it as `error`: journalled, posted, rolled back (`crash.py`); a
       resync that ends with the same error as the head's last run records and posts nothing new

Healing (`pipeline/heal.py`): a resync of a head whose last run `failed` does not plan the head; each
tier is kept at its last verified revision instead (`_heal`: missing and stopped workspaces brought
back, no spec of a running one changed). A resync that finds no drift recreates, at the spec it
runs, a workspace unhealthy for longer than `--heal-unhealthy-after` (`healing.py`). Either is one
run with trigger `heal`: journalled, nothing posted (the head's statuses say what its own run
found), nothing held, and it does not count as the head's last status.

Suspended by an operator (`suspension.py`, kept in the journal): with everything suspended a run
plans and applies nothing (the first run of a head that has none says so on its commit, as a
`skipped` run); with one org suspended that org's changes (and repairs) are kept back, the rest
converges, and the statuses say what waits. A request an operator made through the API is
journalled with trigger `operator`; an operator's retry (`force`) converges a failed head once more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

from reconciler.daemon.approval import keep_for_approval, manual_orgs
from reconciler.daemon.crash import RunTrace, crash_reason
from reconciler.daemon.journal import SUSPEND_ALL
from reconciler.daemon.logctx import tagged
from reconciler.daemon.loop import Request, RunControl
from reconciler.daemon.runbase import RunPlumbing, checkout_commit, run_url, trigger_of
from reconciler.daemon.suspension import (
    APPROVAL,
    SUSPENDED_RUN,
    WAITING_MARKS,
    Waiting,
    hold_back,
    suspended_statuses,
)
from reconciler.errors import SourceError
from reconciler.model.enums import TIER_ORDER, Outcome, RunKind, RunStatus, Tier, Trigger
from reconciler.model.observed import ObservedWorkspace
from reconciler.pipeline.heal import HealPlan, TierHeal, apply_heal, heal_head, plan_heal
from reconciler.pipeline.passes import PassOutcome, apply_and_report, failed_outcome, plan_revision
from reconciler.pipeline.stages import Planned
from reconciler.plan import plan_to_json
from reconciler.plan.heal import UNHEALTHY, heal_reason
from reconciler.report.statuses import StatusLine, error_statuses, planning_statuses, superseded_statuses

log = logging.getLogger(__name__)
KEEPS_ITS_STATUSES = frozenset({RunStatus.SUCCESS, RunStatus.HELD, RunStatus.FAILED})


class BranchRuns(RunPlumbing):
    """The `Executor` of the worker for the watched branch."""

    # ---- the worker's calls ------------------------------------------------------------------
    def run(self, request: Request, control: RunControl) -> RunStatus:
        trace = RunTrace()
        try:
            suspended = self.deps.journal.suspended()
            if SUSPEND_ALL in suspended:
                return self._suspended(request, trace)
            orgs = frozenset(suspended)
            failed = self.deps.journal.last_status(request.sha) is RunStatus.FAILED
            if request.resync and failed and not request.force:
                return self._heal(request, control, trace, orgs)
            return self._converge(request, control, trace, orgs)
        except Exception as exc:  # 8. a bug or a broken edge: the run still ends, as `error`
            return self._crashed(request, control, trace, exc)

    def _converge(self, request: Request, control: RunControl, trace: RunTrace,
                  orgs: frozenset[str] = frozenset()) -> RunStatus:
        d = self.deps
        planned: Planned | PassOutcome | None = None
        heals: dict[str, str] = {}
        waiting = Waiting(request.sha, orgs)  # what suspended orgs and production approval keep back
        if request.resync:  # 0.
            planned, waiting = self._plan(request.sha, orgs)
            drift = isinstance(planned, Planned) and (planned.plan.refused or planned.plan.changes())
            if isinstance(planned, Planned) and not drift and (waiting or not self._left_waiting(request.sha)):
                heal = heal_head(planned, self._due(planned.prepared.actual))  # no drift: the unhealthy, if any
                return self._run_heal(request, control, trace, heal, orgs)
            if isinstance(planned, Planned):
                heals = {a.workspace_id: why for a in planned.plan.changes() if (why := heal_reason(a)) is not None}
                changes = len(planned.plan.changes())
                log.info("resync found drift", extra={"revision": request.sha, "outcome": f"{changes} change(s)"})
            elif self._same_error(request.sha, planned.status, planned.message):
                return RunStatus.ERROR
        run_id = d.journal.start_run(RunKind.APPLY, request.sha, trigger_of(request))  # 1.
        url = run_url(d.public_url, run_id)
        trace.begun(run_id, url)
        started = time.monotonic()
        with tagged(run_id, request.sha, apply_run=True):
            log.info("run started", extra={"context": trigger_of(request)})
            self._post(request.sha, planning_statuses(request.sha, self.contexts), url)  # 2.
            if planned is None:  # 3.
                planned, waiting = self._plan(request.sha, orgs)
            if isinstance(planned, PassOutcome):
                outcome = planned
            else:
                d.journal.set_plan(run_id, plan_to_json(planned.plan))  # 4.
                outcome = apply_and_report(planned, d.parts, poster=d.poster, target_url=url, stop=control.stop,
                                           on_event=self._listener(run_id, control, heals), post_final=False)
            status = outcome.status  # 5.
            final = list(outcome.final())
            if waiting:  # kept back for an operator: the commit is not fully applied yet
                final = waiting.lines(final)
                note = waiting.message(applied=any(APPROVAL in line.description for line in final))
                outcome = replace(outcome, message=f"{outcome.message}; {note}") if note else outcome
            if status is RunStatus.INTERRUPTED and control.superseded_by and not control.shutting_down:
                status = RunStatus.SUPERSEDED
                final += superseded_statuses(control.superseded_by, verified=True, contexts=self.contexts)
            self._record(run_id, status, outcome, final, control, waiting.tiers())  # 6. the journal, then the commit
            trace.recorded, trace.final = status, final
            self._post(request.sha, final, url)
            trace.posted = True
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
        run_id = d.journal.start_run(RunKind.APPLY, request.sha, trigger_of(request), status=RunStatus.SUPERSEDED)
        lines = superseded_statuses(by, verified=False, contexts=self.contexts)
        with tagged(run_id, request.sha):
            self._post(request.sha, lines, run_url(d.public_url, run_id))
            d.journal.finish_run(run_id, RunStatus.SUPERSEDED, f"superseded by {by} before it was applied",
                                 statuses=[s.as_json() for s in lines], superseded_by=by, recovered=True)
            d.metrics.run_finished(RunStatus.SUPERSEDED, None)
            log.info("superseded before it ran", extra={"outcome": RunStatus.SUPERSEDED})

    # ---- suspended by an operator -----------------------------------------------------------------
    def _suspended(self, request: Request, trace: RunTrace) -> RunStatus:
        """Everything is suspended: nothing planned, nothing applied. The first run of a head that has
        not been applied says so on its commit (`skipped`, statuses `pending`); otherwise nothing is
        recorded (a converged or failed head keeps its statuses, a resync or a heal simply waits)."""
        d = self.deps
        last = d.journal.last_run(request.sha)
        if last is not None and (last.status in KEEPS_ITS_STATUSES
                                 or (last.status is RunStatus.SKIPPED and last.message == SUSPENDED_RUN)):
            log.info("suspended by an operator: not run", extra={"revision": request.sha,
                                                                 "context": trigger_of(request)})
            return RunStatus.SKIPPED
        run_id = d.journal.start_run(RunKind.APPLY, request.sha, trigger_of(request))
        url = run_url(d.public_url, run_id)
        trace.begun(run_id, url)
        lines = suspended_statuses(self.contexts.tier)
        with tagged(run_id, request.sha):
            d.journal.finish_run(run_id, RunStatus.SKIPPED, SUSPENDED_RUN, statuses=[s.as_json() for s in lines])
            trace.recorded, trace.final = RunStatus.SKIPPED, lines
            self._post(request.sha, lines, url)
            trace.posted = True
            d.metrics.run_finished(RunStatus.SKIPPED, None)
            log.info("suspended by an operator: not applied", extra={"outcome": RunStatus.SKIPPED})
        return RunStatus.SKIPPED

    def _left_waiting(self, sha: str) -> bool:
        """The head's last run said it waits for a resume (its statuses are `pending`): once nothing is
        kept back any more, a resync records a run that says how it ended, even with nothing to change."""
        last = self.deps.journal.last_run(sha)
        return last is not None and any(mark in last.message for mark in WAITING_MARKS)

    # ---- healing ---------------------------------------------------------------------------------
    def _heal(self, request: Request, control: RunControl, trace: RunTrace,
              orgs: frozenset[str] = frozenset()) -> RunStatus:
        """A resync of a failed head: each tier kept at its last verified revision (`pipeline/heal.py`)."""
        d = self.deps
        trace.heal = True
        good = d.journal.last_good()
        verified = {tier: checkout_commit(d.mirror, good[tier.value], d.branch)
                    for tier in TIER_ORDER if tier.value in good}
        heal = plan_heal(request.sha, verified, d.parts, self._due)
        return self._run_heal(request, control, trace, heal, orgs)

    def _due(self, actual: Sequence[ObservedWorkspace]) -> Mapping[str, float]:
        """Workspaces unhealthy for longer than `--heal-unhealthy-after`, as of the listing `actual`."""
        return self.deps.unhealthy.due(actual) if self.deps.unhealthy is not None else {}

    def _run_heal(self, request: Request, control: RunControl, trace: RunTrace, heal: HealPlan,
                  orgs: frozenset[str] = frozenset()) -> RunStatus:
        """Apply `heal`'s repairs as one `heal` run: journalled, never posted (the head's statuses say
        what its own run found), nothing held; `noop` and nothing recorded when there is none. The
        repairs of suspended `orgs` are left out."""
        d = self.deps
        trace.heal = True
        if orgs:
            heal = HealPlan(heal.head, tuple(
                TierHeal(t.tier, Planned(t.planned.prepared, hold_back(t.planned.plan, orgs)[0]), t.left)
                for t in heal.tiers))
        for line in heal.left():
            log.debug("heal: left alone", extra={"revision": request.sha, "context": line})
        plan = heal.plan()
        if not plan.changes():
            return RunStatus.NOOP
        repaired = {a.workspace_id: heal_reason(a) or "other" for a in plan.changes()}
        unhealthy = [a for a in plan.changes() if repaired[a.workspace_id] == UNHEALTHY]
        if d.unhealthy is not None:  # timed again from the next listing: one try per `--heal-unhealthy-after`
            d.unhealthy.restarted(a.workspace_id for a in unhealthy)
        run_id = d.journal.start_run(RunKind.APPLY, request.sha, Trigger.HEAL)
        trace.begun(run_id, run_url(d.public_url, run_id))
        with tagged(run_id, request.sha, apply_run=True):
            for action in unhealthy:
                log.warning("workspace unhealthy for too long: recreating it", extra={
                    "workspace": action.workspace_id, "action": str(action.kind), "context": action.reason})
            log.info("heal started", extra={"context": heal.where(), "outcome": f"{len(repaired)} workspace(s)"})
            d.journal.set_plan(run_id, plan_to_json(plan))
            outcome = apply_heal(heal, d.parts, stop=control.stop, on_event=self._listener(run_id, control, repaired))
            status = outcome.status
            superseded = status is RunStatus.INTERRUPTED and bool(control.superseded_by) and not control.shutting_down
            if superseded:
                status = RunStatus.SUPERSEDED
            d.journal.finish_run(run_id, status, outcome.message, result=outcome.run.model_dump(mode="json"),
                                 superseded_by=control.superseded_by if superseded else None)
            trace.recorded = status
            d.metrics.run_finished(status, trace.elapsed())
            log.info("heal finished", extra={"outcome": status, "duration_s": round(trace.elapsed(), 3)})
            if status in (RunStatus.SUPERSEDED, RunStatus.ERROR) and not control.shutting_down:
                row = d.journal.run(run_id)
                if row is not None:
                    self.recover(row)
            self._observe()
        return status

    def _crashed(self, request: Request, control: RunControl, trace: RunTrace, exc: Exception) -> RunStatus:
        """8. The run raised: end it as `error` however far it got (see `crash.py`)."""
        d = self.deps
        reason = crash_reason(exc)
        log.error("run crashed", exc_info=exc, extra={"revision": request.sha, "run_id": trace.run_id,
                                                      "error": reason})
        if trace.recorded is not None:  # the verdict is journalled and stands
            if not trace.posted and not trace.heal:
                self._keep_for_flush(request.sha, trace.final, trace.url)
            return trace.recorded
        if trace.run_id is None and request.resync and self._same_error(request.sha, RunStatus.ERROR, reason,
                                                                         heal=trace.heal):
            return RunStatus.ERROR
        lines = [] if trace.heal else error_statuses(reason, self.contexts)
        try:
            if trace.run_id is None:
                trigger = Trigger.HEAL if trace.heal else trigger_of(request)
                run_id = d.journal.start_run(RunKind.APPLY, request.sha, trigger)
                trace.begun(run_id, run_url(d.public_url, run_id))
            assert trace.run_id is not None
            d.journal.finish_run(trace.run_id, RunStatus.ERROR, reason, statuses=[s.as_json() for s in lines])
        except Exception:
            log.exception("could not journal the crashed run", extra={"revision": request.sha})
        with tagged(trace.run_id, request.sha):
            try:
                self._post(request.sha, lines, trace.url)
            except Exception:
                log.exception("could not post the crashed run's statuses")
                self._keep_for_flush(request.sha, lines, trace.url)
            d.metrics.run_finished(RunStatus.ERROR, trace.elapsed())
            log.info("run finished", extra={"outcome": RunStatus.ERROR, "error": reason})
            if trace.run_id is not None and not control.shutting_down:
                try:
                    row = d.journal.run(trace.run_id)
                    if row is not None:
                        self.recover(row)
                except Exception:
                    log.exception("could not recover the crashed run; the next start does")
        return RunStatus.ERROR

    # ---- internals ---------------------------------------------------------------------------
    def _plan(self, sha: str, orgs: frozenset[str] = frozenset()) -> tuple[Planned | PassOutcome, Waiting]:
        """The plan of `sha` with the changes of suspended `orgs` kept back, and production's (of every
        org when the operator policy says `production: manual`, else of the orgs whose org.yaml says so)
        until the commit is approved, by an operator or by a review (`approval.py`); and what was kept."""
        try:
            with self.deps.steps.step(f"fetch {sha[:12]}"):
                checkout = checkout_commit(self.deps.mirror, sha, self.deps.branch)
        except SourceError as exc:
            return failed_outcome(sha, SourceError(f"could not fetch the commit: {exc}"), self.contexts), Waiting(sha)
        with self.deps.steps.step(f"plan {sha[:12]}"):
            planned = plan_revision(checkout, self.deps.parts)
        if isinstance(planned, PassOutcome):
            return planned, Waiting(sha)
        kept, by_org = hold_back(planned.plan, orgs)
        approval = 0
        if not self.deps.journal.approved(sha):
            manual = manual_orgs(self.deps.parts.settings.policy.production, planned.prepared.desired)
            held, approval = keep_for_approval(kept, manual)
            reviews = self.deps.approval
            if approval and reviews is not None and reviews.approve_if_reviewed(sha):
                approval = 0
            else:
                kept = held
        return Planned(planned.prepared, kept), Waiting(sha, orgs, by_org, approval)

    def _record(self, run_id: int, status: RunStatus, outcome: PassOutcome, lines: list[StatusLine],
                control: RunControl, waiting: set[Tier] | None = None) -> None:
        """The run's verdict; each tier that passed its gate gets the revision as its last good one,
        except a tier with changes kept back for an operator (it does not run that revision)."""
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
                if tier.outcome is Outcome.SUCCESS and tier.tier not in (waiting or set()):
                    d.journal.set_last_good(tier.tier.value, outcome.revision, run_id)
        if status is RunStatus.SUCCESS:
            d.metrics.last_success.set(time.time())
