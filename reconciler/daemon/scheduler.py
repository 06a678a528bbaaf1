"""The daemon's periodic jobs on APScheduler (one background scheduler, each job never overlaps itself).

- poll (every --poll-interval): list the remote heads (one cheap request, nothing fetched); when
  the watched branch moved, hand its new head to the worker (the fetch happens in the run). The
  first poll after start asks for a resync of the head: converge whatever changed while down;
- resync (every --resync-interval): re-plan the current head against the actual state; the run
  applies only when something drifted (a container removed or changed by hand);
- pull requests (every --poll-interval): review open PRs whose head has not been reviewed;
- statuses (every few seconds): post the statuses kept while the forge was down;
- housekeeping (hourly): journal retention and the state dir's garbage collection.
Webhooks are hints that do the same work at once: a push makes the poller list the remote heads
now, on its own thread (`Poller.hint`), and converge what the branch head is there, whatever
commit the payload named. The jobs are the fallback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from reconciler.daemon.loop import Request, Worker
from reconciler.errors import ReconcilerError
from reconciler.model.enums import Trigger
from reconciler.source.mirror import GitMirror

log = logging.getLogger(__name__)
STATUS_RETRY_S = 2.0
HOUSEKEEPING_S = 3600.0


class Poller:
    def __init__(self, mirror: GitMirror, branch: str, worker: Worker) -> None:
        self.mirror, self.branch, self.worker = mirror, branch, worker
        self.last_error: str | None = None
        self._polling = threading.Lock()  # the scheduled poll and a hinted one never overlap
        self._hinted = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._hints, name="push-hints", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        self._stopping = True
        self._hinted.set()

    def hint(self) -> None:
        """A push webhook: list the remote heads soon, on the poller's thread. Never blocks."""
        self._hinted.set()

    def _hints(self) -> None:
        while True:
            self._hinted.wait()
            if self._stopping:
                return
            self._hinted.clear()  # a hint arriving during this poll asks for one more
            try:
                self.poll(Trigger.PUSH)
            except Exception:  # never let one bad poll end the thread
                log.exception("poll after a push hint crashed")

    def poll(self, trigger: Trigger = Trigger.POLL) -> None:
        """Converge the watched branch's head as the remote lists it (no fetch: the run fetches)."""
        with self._polling:
            try:
                heads = self.mirror.remote_heads()
            except ReconcilerError as exc:
                self.last_error = str(exc)
                log.warning("poll failed", extra={"error": str(exc)})
                return
            self.last_error = None
            sha = heads.get(f"refs/heads/{self.branch}")
            if sha is None:
                log.warning("watched branch not found at the source", extra={"context": self.branch})
                return
            head = self.worker.head
            if head is None and trigger is Trigger.POLL:  # the first poll: converge what changed while down
                self.worker.submit(Request(sha, Trigger.STARTUP, resync=True))
            elif sha != head:
                self.worker.submit(Request(sha, trigger))
            if trigger is Trigger.PUSH:
                log.info("branch head listed after a push hint",
                         extra={"revision": sha, "outcome": "unchanged" if sha == head else "moved"})

    def resync(self) -> None:
        if self.worker.head is not None:
            self.worker.submit(Request(self.worker.head, Trigger.RESYNC, resync=True))


def build_scheduler(
    poller: Poller,
    *,
    poll_interval_s: float,
    resync_interval_s: float,
    review_sweep: Callable[[], None] | None,
    flush_statuses: Callable[[], int] | None,
    housekeeping: Callable[[], None] | None = None,
    housekeeping_interval_s: float = HOUSEKEEPING_S,
) -> BackgroundScheduler:
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
    now = datetime.now()
    scheduler.add_job(poller.poll, "interval", seconds=poll_interval_s, next_run_time=now, id="poll")
    scheduler.add_job(poller.resync, "interval", seconds=resync_interval_s,
                      next_run_time=now + timedelta(seconds=resync_interval_s), id="resync")
    if review_sweep is not None:
        scheduler.add_job(review_sweep, "interval", seconds=poll_interval_s, next_run_time=now, id="reviews")
    if flush_statuses is not None:
        scheduler.add_job(flush_statuses, "interval", seconds=STATUS_RETRY_S, id="statuses")
    if housekeeping is not None:
        scheduler.add_job(housekeeping, "interval", seconds=housekeeping_interval_s, id="housekeeping")
    return scheduler
