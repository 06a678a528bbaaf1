"""Pull request review: plan each open PR's head against the actual state; never apply anything.

For one PR head: journal a `review` run (its page is the status link), post `reconciler/plan`
`pending`, bring the commit into the mirror (the head branch, or `refs/pull/N/head` for forks),
plan it (`plan_revision`: the pipeline's steps 1-4, nothing applied), then post `success` with
the plan's counts, `failure` with the first config error at `file:line` (or the guard's refusal),
or `error` when the reconciler could not tell; and upsert ONE comment per PR (found again by its
marker) with the full plan table. Reviews run on their own thread, one at a time, newest head per
PR; a head already reviewed (journal) is not reviewed again. Every PR is rendered under the
operator's policy; a PR from a fork is rendered with no credential at all (`Parts.untrusted`).
"""

from __future__ import annotations

import logging
import threading

from reconciler.daemon.journal import Journal
from reconciler.daemon.logctx import tagged
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.posting import StatusPoster
from reconciler.daemon.runbase import checkout_commit, run_url
from reconciler.errors import ReconcilerError
from reconciler.model.enums import RunKind, RunStatus, StatusState, Trigger
from reconciler.pipeline.compose import Parts
from reconciler.pipeline.passes import PassOutcome, failed_outcome, plan_revision, planned_outcome
from reconciler.plan import plan_to_json
from reconciler.report.comments import MARKER, error_comment, plan_comment
from reconciler.report.statuses import plan_error_status, plan_pending, plan_status
from reconciler.source.mirror import GitMirror

log = logging.getLogger(__name__)


class Reviewer:
    def __init__(self, mirror: GitMirror, branch: str, journal: Journal, metrics: Metrics,
                 poster: StatusPoster, parts: Parts, public_url: str) -> None:
        self.mirror, self.branch, self.journal, self.metrics = mirror, branch, journal, metrics
        self.poster, self.parts, self.public_url = poster, parts, public_url
        self._wanted: dict[int, tuple[str, bool]] = {}  # number -> (head sha, from a fork)
        self._sweep_wanted = False
        self._current: tuple[int, str] | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="pr-review", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def shutdown(self, timeout: float | None = None) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, number: int, sha: str, fork: bool = True) -> None:
        """Review PR `number` at `sha` soon (a newer head of the same PR replaces a queued one). A PR not
        known to come from the base repository is treated as a fork's."""
        with self._cond:
            self._wanted[number] = (sha, fork)
            self._cond.notify_all()

    def request_sweep(self) -> None:
        """A pull request webhook arrived: list the open PRs through the API soon, on this thread
        (the payload's head SHA and fork flag are not trusted; the API's are)."""
        with self._cond:
            self._sweep_wanted = True
            self._cond.notify_all()

    def in_progress(self) -> dict[int, str]:
        """PR number -> head, of the review running now and of those queued."""
        with self._cond:
            current = dict([self._current]) if self._current else {}
            return {**current, **{number: sha for number, (sha, _) in self._wanted.items()}}

    def sweep(self) -> None:
        """Queue every open PR against the branch whose head has not been reviewed yet."""
        try:
            pulls = self.poster.open_pull_requests(self.branch)
        except ReconcilerError as exc:
            log.warning("could not list pull requests", extra={"error": str(exc)})
            return
        for pr in pulls:
            if self.journal.last_review(pr.number) != pr.head_sha:
                self.submit(pr.number, pr.head_sha, pr.is_fork)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._wanted and not self._sweep_wanted and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                sweep, self._sweep_wanted = self._sweep_wanted, False
            if sweep:
                self.sweep()
            with self._cond:
                if not self._wanted:
                    continue
                number = min(self._wanted)
                sha, fork = self._wanted.pop(number)
                self._current = (number, sha)
            try:
                if self.journal.last_review(number) != sha:
                    self.review(number, sha, fork)
            except Exception:
                log.exception("review crashed", extra={"revision": sha})
            finally:
                with self._cond:
                    self._current = None

    def _plan(self, number: int, sha: str, fork: bool) -> PassOutcome:
        try:
            refspec = f"+refs/pull/{number}/head:refs/pull/{number}/head"
            checkout = checkout_commit(self.mirror, sha, f"refs/pull/{number}/head", (refspec,))
        except ReconcilerError as exc:
            return failed_outcome(sha, exc)
        planned = plan_revision(checkout, self.parts.untrusted() if fork else self.parts)
        return planned if isinstance(planned, PassOutcome) else planned_outcome(planned)

    def review(self, number: int, sha: str, fork: bool = True) -> RunStatus:
        run_id = self.journal.start_run(RunKind.REVIEW, sha, Trigger.PULL_REQUEST, pr=number)
        url = run_url(self.public_url, run_id)
        with tagged(run_id, sha):
            contexts = self.parts.settings.contexts
            self.poster.post_lines(sha, [plan_pending(contexts)], url)
            outcome = self._plan(number, sha, fork)
            invalid = outcome.status is RunStatus.FAILED
            if outcome.plan is not None:
                line, body = plan_status(outcome.plan, contexts), plan_comment(outcome.plan, sha, url)
                self.journal.set_plan(run_id, plan_to_json(outcome.plan))
            else:
                errors = outcome.errors or tuple(outcome.message.strip().splitlines())
                line = plan_error_status(outcome.message if not outcome.errors else outcome.errors[0], invalid=invalid,
                                         contexts=contexts)
                body = error_comment(errors, sha, url, invalid=invalid)
            self.poster.post_lines(sha, [line], url)
            try:
                self.poster.upsert_pr_comment(number, body, MARKER)
            except ReconcilerError as exc:
                log.warning("could not update the plan comment", extra={"error": str(exc)})
            status = {StatusState.SUCCESS: RunStatus.PLANNED, StatusState.FAILURE: RunStatus.FAILED}.get(
                line.state, RunStatus.ERROR)
            message = line.description if status is RunStatus.PLANNED else outcome.message
            self.journal.finish_run(run_id, status, message, statuses=[line.as_json()], recovered=True)
            self.metrics.reviews.labels(outcome=status).inc()
            log.info("pull request reviewed", extra={"outcome": line.description, "context": line.context})
        return status
