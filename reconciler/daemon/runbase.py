"""The plumbing every run of the watched branch shares (`RunPlumbing`, the base of `BranchRuns` in
`runs.py`): what a run needs (`RunDeps`), its link, the commit's tree, posting its statuses, journalling
its actions as they end (`listener.py`), keeping statuses the poster could not take for the flush,
recovery after a run that left changes unverified, and observing the fleet afterwards."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from reconciler.daemon.approval import ReviewApproval
from reconciler.daemon.healing import UnhealthyClock
from reconciler.daemon.journal import Journal, RunRow, Unposted
from reconciler.daemon.listener import run_listener
from reconciler.daemon.loop import Request, RunControl
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.posting import StatusPoster
from reconciler.daemon.steps import Steps
from reconciler.model.config import ReconcilerFile
from reconciler.model.enums import RunStatus
from reconciler.model.events import EventSink
from reconciler.pipeline.compose import Parts
from reconciler.pipeline.writer import recover
from reconciler.report.statuses import StatusLine
from reconciler.source.checkout import Checkout
from reconciler.source.mirror import GitMirror

log = logging.getLogger(__name__)
OPERATOR_TRIGGER = "operator"  # the journal's trigger of a run an operator asked for through the API


@dataclass(frozen=True)
class RunDeps:
    mirror: GitMirror
    branch: str
    journal: Journal
    metrics: Metrics
    parts: Parts
    poster: StatusPoster | None
    public_url: str
    unhealthy: UnhealthyClock | None = None  # None: unhealthy workspaces are never recreated by a resync
    steps: Steps = field(default_factory=Steps)  # what the run is doing now, for /healthz
    approval: ReviewApproval | None = None  # None: no forge, only `reconciler promote` approves production


def run_url(public_url: str, run_id: int) -> str:
    return f"{public_url.rstrip('/')}/runs/{run_id}" if public_url else ""


def trigger_of(request: Request) -> str:
    """What the journal says asked for a run: `operator` for a request made through the API."""
    return OPERATOR_TRIGGER if request.operator else request.trigger


def checkout_commit(mirror: GitMirror, sha: str, ref: str, extra_refspecs: tuple[str, ...] = ()) -> Checkout:
    """The tree of `sha`, fetching only when the mirror does not have the commit yet."""
    mirror.ensure_commit(sha, extra_refspecs)
    return Checkout(mirror.export_tree(sha), sha, ref, mirror)



class RunPlumbing:
    """What every kind of run of the watched branch shares: posting, journalling as it goes, recovery,
    observing the fleet afterwards; the steps themselves are `BranchRuns` (`runs.py`)."""

    def __init__(self, deps: RunDeps) -> None:
        self.deps = deps
        self.contexts = deps.parts.settings.contexts

    def _same_error(self, sha: str, status: RunStatus, message: str, *, heal: bool = False) -> bool:
        """A resync that ends in the error the head's last run (or last heal) already ended in: the
        journal and the commit say so already; nothing is recorded or posted again."""
        if status is not RunStatus.ERROR:
            return False
        last = self.deps.journal.last_run(sha, heal=heal)
        if last is None or last.status is not RunStatus.ERROR or last.message != message:
            return False
        log.info("resync: the same error as the last run; not recorded again", extra={"revision": sha,
                                                                                      "error": message})
        return True

    def _keep_for_flush(self, sha: str, lines: list[StatusLine], url: str) -> None:
        """Lines the poster could not take because it raised: the status flush posts them later."""
        for line in lines:
            try:
                self.deps.journal.keep_unposted(Unposted(revision=sha, context=line.context, state=line.state.value,
                                                         description=line.description, target_url=url))
            except Exception:
                log.exception("could not keep a status for later", extra={"revision": sha})
                return

    # ---- recovery ----------------------------------------------------------------------------
    def recover_all(self) -> None:
        """At start: runs a dead process left `running` become interrupted, then recovery."""
        self.deps.journal.mark_crashed()
        self._recover(self.deps.journal.to_recover())

    def recover(self, row: RunRow) -> None:
        """After a run that left changes unverified (superseded, error): recovery at once."""
        self._recover([row])

    def _recover(self, rows: list[RunRow]) -> None:
        """The backend finishes or undoes exactly the changes it wrote an intent for (see
        `Backend.recover`); the runs are then marked recovered. A backend that is away: next start."""
        try:
            with self.deps.steps.step("recover"):
                recover(self.deps.parts.backend(ReconcilerFile()))
        except Exception as exc:
            log.warning("recovery failed; kept for later", extra={"error": str(exc)})
            return
        for row in rows:
            self.deps.journal.mark_recovered(row.id)

    def _post(self, sha: str, lines: list[StatusLine] | tuple[StatusLine, ...], url: str) -> list[StatusLine]:
        if self.deps.poster is None:
            return []
        with self.deps.steps.step("post statuses"):
            return self.deps.poster.post_lines(sha, lines, url)

    def _listener(self, run_id: int, control: RunControl, heals: dict[str, str] | None = None) -> EventSink:
        return run_listener(self.deps.journal, self.deps.metrics, self.deps.steps, run_id, control, heals)

    def _observe(self) -> None:
        try:
            with self.deps.steps.step("observe workspaces"):
                listed = self.deps.parts.observer().list_owned()
            self.deps.metrics.observed(listed)
            if self.deps.unhealthy is not None:
                self.deps.unhealthy.observe(listed)
        except Exception as exc:
            log.warning("could not observe workspaces for metrics", extra={"error": str(exc)})
