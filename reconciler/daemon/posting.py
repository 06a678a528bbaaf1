"""Commit statuses out of the daemon: the newest wanted state reaches the forge, an older one never lands after it.

`StatusPoster` is the poster the daemon hands to the pipeline. Each status is first recorded in the
journal as the one wanted for its (commit, context), replacing an older one, then posted:

- One post at a time per (commit, context). The thread that posts holds that key, reads the newest
  wanted state right before each post and, once a post went through, posts again if a newer state
  was recorded meanwhile. A thread that finds the key busy only records its state and returns: the
  holder (or the next `flush`) posts it. So an old state never lands after a newer one, not even
  when its post hangs or is retried inside the client until the forge is back.
- A post that fails with a connection error, a timeout, a 5xx or a 429 stays kept, with its own
  count of failures and time of the next try (`backoff_delay`); the pass carries on with the apply.
- Any other refusal (a 4xx, e.g. Gitea's 422 for a description or context it rejects) would fail
  the same way again: it is logged with the commit, the context and the reason, and dropped.
- `flush` (a scheduler job, and once at shutdown) posts each kept status whose next try is due, one
  attempt each (no retries inside the client: the backoff above is the retry), and goes on past a
  failure: one status that fails never holds the others back.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Sequence

from reconciler.backoff import backoff_delay
from reconciler.daemon.journal import Journal, Unposted
from reconciler.errors import ForgeError
from reconciler.forge.base import (
    CombinedStatus,
    Forge,
    PullRequest,
    StatusState,
    StatusUpdate,
    TriesOnce,
)
from reconciler.report.statuses import StatusLine

log = logging.getLogger(__name__)

RETRY_BASE_S = 2.0  # the first retry of a kept status: about one flush tick later
RETRY_CAP_S = 30.0  # a forge back after a long outage gets every kept status within this


class Delivery(enum.Enum):
    POSTED = "posted"  # the forge has it (posted now, or it already had exactly this)
    KEPT = "kept"  # the forge was unreachable or failing: tried again after a backoff
    QUEUED = "queued"  # a post of the same commit and context was in flight: its holder posts this one
    DROPPED = "dropped"  # the forge refused it (4xx): logged, never tried again


def worth_retrying(exc: ForgeError) -> bool:
    """Connection errors and timeouts (no status code), 429 and 5xx; never another 4xx."""
    code = exc.status_code
    return code is None or code == 429 or code >= 500


class StatusPoster:
    def __init__(self, forge: Forge, journal: Journal) -> None:
        self.forge = forge
        self.journal = journal
        self.once: Forge = forge.one_attempt() if isinstance(forge, TriesOnce) else forge  # for `flush`
        self._guard = threading.Lock()
        self._busy: set[tuple[str, str]] = set()  # (commit, context) with a post in flight

    def post_status(self, sha: str, update: StatusUpdate) -> bool:
        """Want `update` on `sha` and post it now unless a post of that context is in flight (never
        raises); True when it went out now."""
        return self._want(sha, update) is Delivery.POSTED

    def post_lines(self, sha: str, lines: Sequence[StatusLine], target_url: str) -> list[StatusLine]:
        """Post `lines`; the ones not taken now (kept for `flush`, or queued behind a post in flight)
        are returned, never raised."""
        later = (Delivery.KEPT, Delivery.QUEUED)
        return [line for line in lines if self._want(sha, line.update(target_url)) in later]

    def flush(self) -> int:
        """Post the kept statuses whose next try is due, one attempt each; returns how many went out."""
        sent = 0
        for row in self.journal.unposted(due=True):
            sent += self._deliver(row.revision, row.context, self.once) is Delivery.POSTED
        if sent:
            log.info("kept statuses posted", extra={"outcome": f"{sent} posted"})
        return sent

    # ---- one (commit, context) at a time -----------------------------------------------------
    def _want(self, sha: str, update: StatusUpdate) -> Delivery:
        self.journal.keep_unposted(Unposted(revision=sha, context=update.context, state=str(update.state),
                                            description=update.description, target_url=update.target_url))
        delivery = self._deliver(sha, update.context, self.forge)
        if delivery is None:
            log.info("status queued behind a post in flight", extra={"revision": sha, "context": update.context})
            return Delivery.QUEUED
        return delivery

    def _deliver(self, sha: str, context: str, forge: Forge) -> Delivery | None:
        """Post what is wanted for (sha, context) until nothing newer is; None when another thread
        holds the key (it posts what was recorded)."""
        key = (sha, context)
        delivery: Delivery | None = None
        while self._claim(key):
            try:
                delivery = self._post_newest(sha, context, forge) or delivery
            finally:
                self._release(key)
            # a state recorded by a thread that found the key busy just before the release: ours to post
            if delivery is Delivery.KEPT or self.journal.unposted_status(sha, context) is None:
                break
        return delivery

    def _claim(self, key: tuple[str, str]) -> bool:
        with self._guard:
            if key in self._busy:
                return False
            self._busy.add(key)
            return True

    def _release(self, key: tuple[str, str]) -> None:
        with self._guard:
            self._busy.discard(key)

    def _post_newest(self, sha: str, context: str, forge: Forge) -> Delivery | None:
        """Holding the key: post the newest wanted state, again while a newer one was recorded meanwhile."""
        delivery: Delivery | None = None
        while (row := self.journal.unposted_status(sha, context)) is not None:
            try:
                forge.post_status(sha, StatusUpdate(context=row.context, state=StatusState(row.state),
                                                    description=row.description, target_url=row.target_url))
            except ForgeError as exc:
                if worth_retrying(exc):
                    self._defer(row, exc)
                    return Delivery.KEPT
                log.warning("status dropped: the forge refused it", extra={
                    "revision": sha, "context": context, "outcome": "dropped", "error": str(exc)})
                self.journal.drop_unposted(row)
                delivery = Delivery.DROPPED
                continue
            self.journal.drop_unposted(row)  # a newer state recorded meanwhile stays, and goes out next
            delivery = Delivery.POSTED
        return delivery

    def _defer(self, row: Unposted, exc: ForgeError) -> None:
        attempts = row.attempts + 1
        delay = backoff_delay(attempts, RETRY_BASE_S, RETRY_CAP_S, jitter=0.5)
        self.journal.defer_unposted(row.revision, row.context, attempts, delay)
        log.warning("status kept for later: forge unreachable", extra={
            "revision": row.revision, "context": row.context, "outcome": f"attempt {attempts}",
            "error": str(exc), "duration_s": round(delay, 1)})

    # the rest of the Forge protocol, passed through
    def branch_head(self, branch: str) -> str:
        return self.forge.branch_head(branch)

    def open_pull_requests(self, base_branch: str) -> list[PullRequest]:
        return self.forge.open_pull_requests(base_branch)

    def combined_status(self, ref: str) -> CombinedStatus:
        return self.forge.combined_status(ref)

    def upsert_pr_comment(self, number: int, body: str, marker: str) -> int:
        return self.forge.upsert_pr_comment(number, body, marker)
