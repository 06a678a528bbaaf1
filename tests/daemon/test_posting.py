"""Statuses out of the daemon: the newest wanted state lands last, a 4xx is dropped, a 5xx is kept and
retried on its own backoff, one failing status never holds the others back, an old journal migrates."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from reconciler.daemon.journal import Journal, Unposted
from reconciler.daemon.posting import RETRY_CAP_S, StatusPoster
from reconciler.errors import ForgeError
from reconciler.forge.base import StatusUpdate
from reconciler.model.enums import StatusState
from reconciler.report.statuses import StatusLine
from tests.support.clock import FakeClock

SHA = "a" * 40
OTHER = "b" * 40
CANARY = "reconciler/canary"
PRODUCTION = "reconciler/production"
BLOCKED_FOR_S = 30  # a bug that makes a post wait for the blocked one fails the test instead of hanging it


class FakeForge:
    """Records what lands, in order; `failures[sha]` is the status code (None: unreachable) a post of
    that commit fails with; with `hold`, the first post waits for `release` (a post retried inside the
    client until Gitea is back) after setting `holding`."""

    def __init__(self, hold: bool = False) -> None:
        self.landed: list[tuple[str, str, str]] = []
        self.calls: list[tuple[str, str, str]] = []
        self.failures: dict[str, int | None] = {}
        self.hold = hold
        self.holding = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def post_status(self, sha: str, update: StatusUpdate) -> bool:
        with self._lock:
            first = not self.calls
            self.calls.append((sha, update.context, str(update.state)))
        if self.hold and first:
            self.holding.set()
            assert self.release.wait(BLOCKED_FOR_S), "the held post was never released"
        if sha in self.failures:
            code = self.failures[sha]
            raise ForgeError(f"Gitea POST /statuses/{sha} failed: " + (f"HTTP {code}" if code else "unreachable"), code)
        with self._lock:
            self.landed.append((sha, update.context, str(update.state)))
        return True

    def latest(self, sha: str, context: str) -> str | None:
        states = [state for s, c, state in self.landed if (s, c) == (sha, context)]
        return states[-1] if states else None


class OnceForge(FakeForge):
    """A forge that hands out a twin for single attempts (`TriesOnce`): records which one was used."""

    def __init__(self) -> None:
        super().__init__()
        self.twin = FakeForge()
        self.twin.landed = self.landed  # the same server

    def one_attempt(self) -> FakeForge:
        return self.twin


def line(state: StatusState, context: str = CANARY, description: str = "") -> StatusLine:
    return StatusLine(context, state, description or f"canary: {state}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def journal(tmp_path: Path, clock: FakeClock) -> Journal:
    return Journal(tmp_path / "journal.sqlite", clock=clock)


def test_a_4xx_is_logged_and_dropped_never_retried(journal: Journal, caplog: pytest.LogCaptureFixture) -> None:
    forge = FakeForge()
    forge.failures[SHA] = 422
    poster = StatusPoster(forge, journal)  # type: ignore[arg-type]

    with caplog.at_level(logging.WARNING, logger="reconciler.daemon.posting"):
        kept = poster.post_lines(SHA, [line(StatusState.SUCCESS)], "http://r/runs/1")

    assert kept == [] and journal.unposted() == []
    dropped = [r for r in caplog.records if r.getMessage() == "status dropped: the forge refused it"]
    assert len(dropped) == 1
    fields = dropped[0].__dict__
    assert (fields["revision"], fields["context"]) == (SHA, CANARY)
    assert "HTTP 422" in fields["error"]
    del forge.failures[SHA]
    assert poster.flush() == 0 and len(forge.calls) == 1  # never sent again


def test_a_5xx_is_kept_then_delivered_after_its_backoff(journal: Journal, clock: FakeClock) -> None:
    forge = OnceForge()
    forge.failures[SHA] = forge.twin.failures[SHA] = 503
    poster = StatusPoster(forge, journal)  # type: ignore[arg-type]

    assert poster.post_lines(SHA, [line(StatusState.SUCCESS)], "") == [line(StatusState.SUCCESS)]
    [kept] = journal.unposted()
    assert kept.attempts == 1 and kept.next_at > clock()
    assert poster.flush() == 0 and forge.twin.calls == []  # not due yet: not tried

    clock.advance(kept.next_at - clock())
    assert poster.flush() == 0  # due, still failing: a second failure, a longer wait
    [again] = journal.unposted()
    assert again.attempts == 2 and again.next_at > clock()

    del forge.twin.failures[SHA]
    clock.advance(RETRY_CAP_S)
    assert poster.flush() == 1
    assert forge.latest(SHA, CANARY) == "success" and journal.unposted() == []
    assert len(forge.twin.calls) == 2 and len(forge.calls) == 1  # flush posts through the single-attempt twin


def test_unreachable_counts_as_worth_retrying(journal: Journal) -> None:
    forge = FakeForge()
    forge.failures[SHA] = None
    poster = StatusPoster(forge, journal)  # type: ignore[arg-type]
    poster.post_lines(SHA, [line(StatusState.PENDING)], "")
    assert [(u.state, u.attempts) for u in journal.unposted()] == [("pending", 1)]


def test_one_failing_status_does_not_hold_the_others_back(journal: Journal, clock: FakeClock) -> None:
    forge = FakeForge()
    forge.failures[SHA] = forge.failures[OTHER] = 500
    poster = StatusPoster(forge, journal)  # type: ignore[arg-type]
    poster.post_lines(SHA, [line(StatusState.SUCCESS)], "")  # kept first: flushed first
    poster.post_lines(OTHER, [line(StatusState.SUCCESS), line(StatusState.FAILURE, PRODUCTION)], "")
    assert len(journal.unposted()) == 3

    del forge.failures[OTHER]  # only the first commit still fails
    clock.advance(RETRY_CAP_S)
    assert poster.flush() == 2
    assert forge.latest(OTHER, CANARY) == "success" and forge.latest(OTHER, PRODUCTION) == "failure"
    [left] = journal.unposted()
    assert (left.revision, left.attempts) == (SHA, 2) and left.next_at > clock()  # its own backoff


def test_each_kept_status_has_its_own_backoff(journal: Journal, clock: FakeClock) -> None:
    forge = FakeForge()
    forge.failures[SHA] = forge.failures[OTHER] = 500
    poster = StatusPoster(forge, journal)  # type: ignore[arg-type]
    poster.post_lines(SHA, [line(StatusState.SUCCESS)], "")
    for _ in range(4):  # SHA's status fails again and again: its wait grows
        clock.advance(RETRY_CAP_S)
        poster.flush()
    poster.post_lines(OTHER, [line(StatusState.SUCCESS)], "")  # a fresh failure: a short wait
    rows = {u.revision: u for u in journal.unposted()}
    assert (rows[SHA].attempts, rows[OTHER].attempts) == (5, 1)
    assert rows[OTHER].next_at - clock() < rows[SHA].next_at - clock()


def test_an_older_state_never_lands_after_a_newer_one(journal: Journal) -> None:
    """The CI race: flush posts a kept `pending`, the post hangs (retried inside the client until
    Gitea is back) while the run posts `success`; `pending` must not be the last word."""
    forge = FakeForge(hold=True)
    poster = StatusPoster(forge, journal)  # type: ignore[arg-type]
    journal.keep_unposted(Unposted(revision=SHA, context=CANARY, state="pending", description="canary: planning",
                                   target_url=""))
    flusher = threading.Thread(target=poster.flush)
    flusher.start()
    assert forge.holding.wait(BLOCKED_FOR_S)  # the flush's post of `pending` is in flight

    # the run: the key is busy, so its state is recorded and the call returns without waiting
    assert poster.post_lines(SHA, [line(StatusState.SUCCESS)], "") == [line(StatusState.SUCCESS)]
    assert [u.state for u in journal.unposted()] == ["success"]
    assert [c[2] for c in forge.calls] == ["pending"]  # nothing else was sent meanwhile

    forge.release.set()  # Gitea is back: `pending` lands, then the holder posts the newer `success`
    flusher.join(BLOCKED_FOR_S)
    assert not flusher.is_alive()
    assert [(c, s) for _, c, s in forge.landed] == [(CANARY, "pending"), (CANARY, "success")]
    assert forge.latest(SHA, CANARY) == "success" and journal.unposted() == []


def test_a_flush_skips_a_status_whose_post_is_in_flight(journal: Journal) -> None:
    forge = FakeForge(hold=True)
    poster = StatusPoster(forge, journal)  # type: ignore[arg-type]
    run = threading.Thread(target=poster.post_lines, args=(SHA, [line(StatusState.PENDING)], ""))
    run.start()
    assert forge.holding.wait(BLOCKED_FOR_S)  # the run's post of `pending` is in flight

    assert poster.flush() == 0  # the flush finds the key busy: it neither waits nor posts the old row
    poster.post_lines(SHA, [line(StatusState.FAILURE)], "")  # a newer state from another thread: queued
    forge.release.set()
    run.join(BLOCKED_FOR_S)
    assert not run.is_alive()
    assert [s for _, _, s in forge.landed] == ["pending", "failure"] and journal.unposted() == []


def test_a_state_wanted_while_a_post_fails_waits_for_the_backoff(journal: Journal, clock: FakeClock) -> None:
    forge = FakeForge(hold=True)
    forge.failures[SHA] = 500
    poster = StatusPoster(forge, journal)  # type: ignore[arg-type]
    run = threading.Thread(target=poster.post_lines, args=(SHA, [line(StatusState.PENDING)], ""))
    run.start()
    assert forge.holding.wait(BLOCKED_FOR_S)
    poster.post_lines(SHA, [line(StatusState.SUCCESS)], "")  # queued behind the failing post
    forge.release.set()
    run.join(BLOCKED_FOR_S)

    [kept] = journal.unposted()
    assert (kept.state, kept.attempts) == ("success", 1) and kept.next_at > clock()  # the newest, deferred
    del forge.failures[SHA]
    clock.advance(RETRY_CAP_S)
    assert poster.flush() == 1 and forge.latest(SHA, CANARY) == "success"


def test_a_newer_state_kept_during_a_post_goes_out_right_after_it(journal: Journal) -> None:
    """A newer state recorded while the holder's post is in flight (straight into the journal, as a
    thread that found the key busy does) is posted by the holder, in the same flush."""
    poster: StatusPoster

    class Racing(FakeForge):
        def post_status(self, sha: str, update: StatusUpdate) -> bool:
            if not self.calls:
                journal.keep_unposted(Unposted(revision=sha, context=update.context, state="success",
                                               description="canary: 1 created", target_url=""))
            return super().post_status(sha, update)

    forge = Racing()
    poster = StatusPoster(forge, journal)  # type: ignore[arg-type]
    journal.keep_unposted(Unposted(revision=SHA, context=CANARY, state="pending", description="canary: planning",
                                   target_url=""))
    assert poster.flush() == 1
    assert [s for _, _, s in forge.landed] == ["pending", "success"] and journal.unposted() == []


OLD_SCHEMA = f"""
CREATE TABLE unposted (
    revision TEXT NOT NULL, context TEXT NOT NULL, state TEXT NOT NULL, description TEXT NOT NULL,
    target_url TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (revision, context)
);
INSERT INTO unposted VALUES ('{SHA}', 'reconciler/canary', 'success', 'canary: 1 created', 'http://r/runs/3', 5.0);
"""


def test_an_unposted_table_from_before_the_retry_columns_is_migrated(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.close()

    journal = Journal(path, clock=clock)
    [old] = journal.unposted(due=True)  # a row kept by the old version: due now, never tried
    assert (old.state, old.target_url, old.attempts, old.next_at) == ("success", "http://r/runs/3", 0, 0)
    forge = FakeForge()
    assert StatusPoster(forge, journal).flush() == 1  # type: ignore[arg-type]
    assert forge.latest(SHA, CANARY) == "success" and journal.unposted() == []
    journal.close()

    again = Journal(path, clock=clock)  # opening a migrated journal again changes nothing
    again.keep_unposted(Unposted(revision=OTHER, context=CANARY, state="pending", description="", target_url=""))
    again.defer_unposted(OTHER, CANARY, 1, 4.0)
    assert [(u.attempts, u.next_at) for u in again.unposted()] == [(1, clock() + 4.0)]
