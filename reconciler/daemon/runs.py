"""What one run on the watched branch does, as numbered steps; the worker (`loop.py`) decides when.

    0. resync only: plan against the actual state first; no changes -> nothing recorded ("noop")
    1. journal the run: its id exists before anything is posted, so every status links to it
    2. `pending` on both tier contexts at once (the push-to-pending latency)
    3. the commit into the mirror (fetched only when missing) and its tree exported
    4. `run_pass`: render, pins, observe, plan (journalled before apply), apply, statuses
    5. the run's status: success / failed / error / interrupted (SIGTERM) / superseded (a newer head
       ended a health gate wait); a superseded commit says which commit superseded it
    6. journal, last good revision per tier, metrics
    7. recovery: an unverified change (superseded, error) goes back to its last good state at once,
       an interrupted one (SIGTERM, kill -9) at the next start, so the next plan starts from a known
       state and nothing kept for rollback leaks
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.backends.base import Backend
from reconciler.daemon.journal import Journal, RunRow
from reconciler.daemon.logctx import tagged
from reconciler.daemon.loop import Request, RunControl
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.posting import StatusPoster
from reconciler.errors import SourceError
from reconciler.model.enums import TIER_ORDER, Outcome
from reconciler.plan import plan_to_json
from reconciler.reconcile import PassInputs, PassResult, run_pass
from reconciler.report.statuses import CONTEXTS, StatusLine, error_statuses, one_line
from reconciler.source.checkout import Checkout
from reconciler.source.mirror import GitMirror

log = logging.getLogger(__name__)
CHANGE_KINDS = ("create", "update", "recreate")


@dataclass
class RunDeps:
    mirror: GitMirror
    branch: str
    journal: Journal
    metrics: Metrics
    make_inputs: Callable[[Path], PassInputs]  # fresh per run: resolver caches live for one run only
    make_backend: Callable[[], Backend]  # recovery and workspace metrics
    poster: StatusPoster | None
    public_url: str


def run_url(public_url: str, run_id: int) -> str:
    return f"{public_url.rstrip('/')}/runs/{run_id}" if public_url else ""


def checkout_commit(mirror: GitMirror, sha: str, ref: str, extra_refspecs: tuple[str, ...] = ()) -> Checkout:
    """The tree of `sha`, fetching only when the mirror does not have the commit yet."""
    if not mirror.has_commit(sha):
        mirror.fetch(extra_refspecs)
    if not mirror.has_commit(sha):
        raise SourceError(f"commit {sha} is not at {mirror.display} (force-pushed away?)")
    return Checkout(mirror.export_tree(sha), sha, ref, mirror)


def superseded_lines(by: str, verified: bool) -> list[StatusLine]:
    when = "before it was verified" if verified else "before it was applied"
    return [StatusLine(CONTEXTS[t], "error", one_line(f"{t.value}: superseded by {by[:12]} {when}"))
            for t in TIER_ORDER]


def run_status(result: PassResult, control: RunControl) -> str:
    run = result.run
    if run is None:
        return {0: "success", 1: "failed"}.get(result.exit_code, "error")
    if run.interrupted:
        return "superseded" if control.superseded_by and not control.shutting_down else "interrupted"
    if run.refused:
        return "failed"
    return {Outcome.SUCCESS: "success", Outcome.FAILED: "failed"}.get(run.outcome, "error")


class BranchRuns:
    """The `Executor` of the worker for the watched branch."""

    def __init__(self, deps: RunDeps) -> None:
        self.deps = deps

    # ---- the worker's calls ------------------------------------------------------------------
    def run(self, request: Request, control: RunControl) -> str:
        d = self.deps
        if request.resync and self._in_sync(request.sha):  # 0.
            return "noop"
        run_id = d.journal.start_run("apply", request.sha, request.trigger)  # 1.
        url = run_url(d.public_url, run_id)
        started = time.monotonic()
        with tagged(run_id, request.sha, apply_run=True):
            log.info("run started", extra={"context": request.trigger})
            if d.poster is not None:  # 2.
                planning = [StatusLine(CONTEXTS[t], "pending", f"{t.value}: planning {request.sha[:12]}")
                            for t in TIER_ORDER]
                d.poster.post_lines(request.sha, planning, url)
            try:  # 3.
                checkout = checkout_commit(d.mirror, request.sha, d.branch)
            except SourceError as exc:
                lines = error_statuses(f"could not fetch the commit: {exc}")
                if d.poster is not None:
                    d.poster.post_lines(request.sha, lines, url)
                d.journal.finish_run(run_id, "error", str(exc), statuses=[vars(s) for s in lines])
                d.metrics.run_finished("error", time.monotonic() - started)
                return "error"
            inputs = d.make_inputs(checkout.root)  # 4.
            inputs.forge, inputs.target_url, inputs.stop = d.poster, url, control.stop
            inputs.on_event = self._listener(run_id, control)
            result = run_pass(checkout, inputs)
            status = run_status(result, control)  # 5.
            lines = list(result.statuses)
            if status == "superseded" and control.superseded_by:
                extra = superseded_lines(control.superseded_by, verified=True)
                if d.poster is not None:
                    d.poster.post_lines(request.sha, extra, url)
                lines += extra
            self._record(run_id, status, result, lines, control)  # 6.
            d.metrics.run_finished(status, time.monotonic() - started)
            log.info("run finished", extra={"outcome": status, "duration_s": round(time.monotonic() - started, 3)})
            if status in ("superseded", "error") and not control.shutting_down:  # 7.
                row = d.journal.run(run_id)
                if row is not None:
                    self.recover(row)
            self._observe()
        return status

    def superseded(self, request: Request, by: str) -> None:
        d = self.deps
        run_id = d.journal.start_run("apply", request.sha, request.trigger, status="superseded")
        lines = superseded_lines(by, verified=False)
        with tagged(run_id, request.sha):
            if d.poster is not None:
                d.poster.post_lines(request.sha, lines, run_url(d.public_url, run_id))
            d.journal.finish_run(run_id, "superseded", f"superseded by {by} before it was applied",
                                 statuses=[vars(s) for s in lines], superseded_by=by, recovered=True)
            d.metrics.run_finished("superseded", None)
            log.info("superseded before it ran", extra={"outcome": "superseded"})

    # ---- recovery ----------------------------------------------------------------------------
    def recover_all(self) -> None:
        """At start: runs a dead process left `running` become interrupted; unverified changes roll back."""
        self.deps.journal.mark_crashed()
        for row in self.deps.journal.to_recover():
            self.recover(row)

    def recover(self, row: RunRow) -> None:
        ids = sorted({a["workspace"] for a in (row.plan or {}).get("actions", []) if a["kind"] in CHANGE_KINDS})
        with tagged(row.id, row.revision):
            try:
                backend = self.deps.make_backend()
                for ws in ids:
                    backend.rollback(ws)
            except Exception as exc:  # the backend is down: try again at the next start
                log.warning("recovery failed; kept for later", extra={"error": str(exc)})
                return
            self.deps.journal.mark_recovered(row.id)
            if ids:
                log.info("unverified changes rolled back", extra={"outcome": f"{len(ids)} workspace(s)"})

    # ---- internals ---------------------------------------------------------------------------
    def _in_sync(self, sha: str) -> bool:
        """Resync: does the plan for `sha` against the actual state change nothing? (False: run it.)"""
        try:
            checkout = checkout_commit(self.deps.mirror, sha, self.deps.branch)
        except SourceError:
            return False
        inputs = self.deps.make_inputs(checkout.root)
        inputs.apply = False
        result = run_pass(checkout, inputs)
        if result.plan is None or result.plan.refused:
            return False
        changes = result.plan.changes()
        if changes:
            log.info("resync found drift", extra={"revision": sha, "outcome": f"{len(changes)} change(s)"})
        return not changes

    def _listener(self, run_id: int, control: RunControl) -> Callable[[str, dict[str, Any]], None]:
        journal, metrics = self.deps.journal, self.deps.metrics

        def on_event(event: str, payload: dict[str, Any]) -> None:
            try:
                if event == "planned":
                    journal.set_plan(run_id, plan_to_json(payload["plan"]))
                elif event == "action_done":
                    journal.add_action(run_id, payload["tier"], payload["workspace"], payload["kind"],
                                       payload["outcome"], str(payload.get("message") or ""),
                                       int(payload.get("attempts") or 0), float(payload.get("duration_s") or 0))
                    metrics.action_done(payload["kind"], payload["outcome"])
                elif event == "gate_started":
                    control.gate_started()
                elif event == "gate_done":
                    control.gate_done()
            except Exception:
                log.exception("journal listener failed", extra={"action": event})

        return on_event

    def _record(self, run_id: int, status: str, result: PassResult, lines: list[StatusLine],
                control: RunControl) -> None:
        d = self.deps
        run = result.run
        d.journal.finish_run(
            run_id, status, result.message,
            result=run.model_dump(mode="json") if run is not None else None,
            statuses=[vars(s) for s in lines], superseded_by=control.superseded_by if status == "superseded" else None,
        )
        if run is not None and result.revision:
            for tier in run.tiers:
                if tier.outcome is Outcome.SUCCESS:
                    d.journal.set_last_good(tier.tier.value, result.revision, run_id)
        if status == "success":
            d.metrics.last_success.set(time.time())

    def _observe(self) -> None:
        try:
            self.deps.metrics.observed(self.deps.make_backend().list_owned())
        except Exception as exc:
            log.warning("could not observe workspaces for metrics", extra={"error": str(exc)})
