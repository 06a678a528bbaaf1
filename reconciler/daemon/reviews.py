"""Pull request review: plan each open PR's head against the actual state; never apply anything.

For one PR head: journal a `review` run (its page is the status link), post `reconciler/plan`
`pending`, bring the commit into the mirror (the head branch, or `refs/pull/N/head` for forks),
plan it with `run_pass(apply=False)`, then post `success` with `+2 ~1 -0`, `failure` with the
first config error at `file:line` (or the guard's refusal), or `error` when the reconciler could
not tell; and upsert ONE comment per PR (found again by its marker) with the full plan table.
Reviews run on their own thread, one at a time, newest head per PR; a head already reviewed
(journal) is not reviewed again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from reconciler.daemon.journal import Journal
from reconciler.daemon.logctx import tagged
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.posting import StatusPoster
from reconciler.daemon.runs import checkout_commit, run_url
from reconciler.errors import ReconcilerError
from reconciler.model.enums import ActionKind
from reconciler.plan import plan_to_json, render_markdown
from reconciler.reconcile import PassInputs, PassResult, run_pass
from reconciler.report.statuses import StatusLine, one_line
from reconciler.source.mirror import GitMirror

log = logging.getLogger(__name__)
CONTEXT = "reconciler/plan"
MARKER = "<!-- reconciler:plan -->"


def plan_status(result: PassResult) -> StatusLine:
    plan = result.plan
    if plan is None:
        if result.exit_code == 1:
            first = (result.message.strip().splitlines() or ["invalid config"])[0]
            return StatusLine(CONTEXT, "failure", one_line(f"invalid config: {first}"))
        return StatusLine(CONTEXT, "error", one_line(f"could not plan: {result.message}"))
    if plan.refused:
        return StatusLine(CONTEXT, "failure", one_line(f"refused: {plan.refused}"))
    c = plan.counts()
    changed = c[ActionKind.UPDATE] + c[ActionKind.RECREATE]
    return StatusLine(CONTEXT, "success", f"+{c[ActionKind.CREATE]} ~{changed} -{c[ActionKind.DELETE]}")


def comment_body(result: PassResult, sha: str, url: str) -> str:
    link = f"\n[Run page]({url}) · nothing is applied from a pull request.\n" if url else ""
    if result.plan is not None:
        return f"{MARKER}\n{render_markdown(result.plan, sha)}{link}"
    title = "Invalid config" if result.exit_code == 1 else "Could not plan"
    errors = "\n".join(f"- `{line}`" for line in result.message.strip().splitlines()[:50])
    return f"{MARKER}\n### Reconciler plan for `{sha[:12]}`\n\n**{title}:**\n\n{errors}\n{link}"


class Reviewer:
    def __init__(self, mirror: GitMirror, branch: str, journal: Journal, metrics: Metrics,
                 poster: StatusPoster, make_inputs: Callable[[Path], PassInputs], public_url: str) -> None:
        self.mirror, self.branch, self.journal, self.metrics = mirror, branch, journal, metrics
        self.poster, self.make_inputs, self.public_url = poster, make_inputs, public_url
        self._wanted: dict[int, str] = {}
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

    def submit(self, number: int, sha: str) -> None:
        """Review PR `number` at `sha` soon (a newer head of the same PR replaces a queued one)."""
        with self._cond:
            self._wanted[number] = sha
            self._cond.notify_all()

    def sweep(self) -> None:
        """Queue every open PR against the branch whose head has not been reviewed yet."""
        try:
            pulls = self.poster.open_pull_requests(self.branch)
        except ReconcilerError as exc:
            log.warning("could not list pull requests", extra={"error": str(exc)})
            return
        for pr in pulls:
            if self.journal.last_review(pr.number) != pr.head_sha:
                self.submit(pr.number, pr.head_sha)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._wanted and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                number = min(self._wanted)
                sha = self._wanted.pop(number)
            if self.journal.last_review(number) == sha:
                continue
            try:
                self.review(number, sha)
            except Exception:
                log.exception("review crashed", extra={"revision": sha})

    def review(self, number: int, sha: str) -> str:
        run_id = self.journal.start_run("review", sha, f"pull request #{number}", pr=number)
        url = run_url(self.public_url, run_id)
        with tagged(run_id, sha):
            self.poster.post_lines(sha, [StatusLine(CONTEXT, "pending", "planning")], url)
            try:
                refspec = f"+refs/pull/{number}/head:refs/pull/{number}/head"
                checkout = checkout_commit(self.mirror, sha, f"refs/pull/{number}/head", (refspec,))
                inputs = self.make_inputs(checkout.root)
                inputs.apply = False
                result = run_pass(checkout, inputs)
            except ReconcilerError as exc:
                result = PassResult(sha, 2, str(exc))
            line = plan_status(result)
            self.poster.post_lines(sha, [line], url)
            try:
                self.poster.upsert_pr_comment(number, comment_body(result, sha, url), MARKER)
            except ReconcilerError as exc:
                log.warning("could not update the plan comment", extra={"error": str(exc)})
            if result.plan is not None:
                self.journal.set_plan(run_id, plan_to_json(result.plan))
            status = {"success": "planned", "failure": "failed"}.get(line.state, "error")
            self.journal.finish_run(run_id, status, result.message if status != "planned" else line.description,
                                    statuses=[vars(line)], recovered=True)
            self.metrics.reviews.labels(outcome=status).inc()
            log.info("pull request reviewed", extra={"outcome": line.description, "context": CONTEXT})
        return status
