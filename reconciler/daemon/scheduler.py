"""The daemon's periodic jobs on APScheduler (one background scheduler, each job never overlaps itself).

- poll (every --poll-interval): list the remote heads (one cheap request, nothing fetched); when
  the watched branch moved, hand its new head to the worker (the fetch happens in the run). The
  first poll after start asks for a resync of the head: converge whatever changed while down;
- resync (every --resync-interval): re-plan the current head against the actual state; the run
  applies only when something drifted (a container removed or changed by hand);
- pull requests (every --poll-interval): review open PRs whose head has not been reviewed;
- statuses (every few seconds): post the statuses kept while the forge was down.
Webhooks do the same work at once; these jobs are the fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from reconciler.daemon.loop import Request, Worker
from reconciler.errors import ReconcilerError
from reconciler.model.enums import Trigger
from reconciler.source.mirror import GitMirror

log = logging.getLogger(__name__)
STATUS_RETRY_S = 2.0


class Poller:
    def __init__(self, mirror: GitMirror, branch: str, worker: Worker) -> None:
        self.mirror, self.branch, self.worker = mirror, branch, worker
        self.last_error: str | None = None

    def poll(self) -> None:
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
        if self.worker.head is None:
            self.worker.submit(Request(sha, Trigger.STARTUP, resync=True))
        elif sha != self.worker.head:
            self.worker.submit(Request(sha, Trigger.POLL))

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
    return scheduler
