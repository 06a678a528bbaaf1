"""Hard time limits on git network calls: a server that drips one byte every 0.2 s (which no per-read
timeout ever trips) still ends a listing or a fetch at its limit, the call given up on can neither
block nor corrupt the next one, and a wait for the mirror lock is bounded too."""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.errors import SourceError
from reconciler.source.limits import abandoned_calls
from reconciler.source.mirror import FETCH_LIMIT, LIST_LIMIT, GitMirror, list_remote_heads
from tests.support.clock import wait_until
from tests.support.git_drip import GitDripServer
from tests.support.git_server import TOKEN, GitServer
from tests.support.git_work import Work

TIMEOUT_S = 0.5  # per read: the drip (every 0.2 s) never trips it
MARGIN_S = 5.0  # "ends near its limit": never a tight timing


@pytest.fixture
def acme(git_server: GitServer, make_work: Callable[[Path], Work]) -> tuple[str, str]:
    work = make_work(git_server.repo("acme", "config"))
    sha = work.commit({"org.yaml": "name: one\n"}, "one")
    work.push()
    return git_server.repo_url("acme", "config"), sha


@pytest.fixture
def relay(git_server: GitServer) -> Iterator[GitDripServer]:
    """Drips on every connection until `stop_dripping()`, then relays to the real git server."""
    with GitDripServer(upstream=("127.0.0.1", git_server.served.port)) as server:
        yield server


def no_abandoned_calls() -> bool:
    return not abandoned_calls()


def timed(call: Callable[[], object]) -> tuple[SourceError, float]:
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        call()
    return caught.value, time.monotonic() - started


def test_listing_a_dripping_server_ends_at_its_limit_and_the_next_listing_works(acme: tuple[str, str]) -> None:
    good_url, sha = acme
    limit = TIMEOUT_S * LIST_LIMIT
    with GitDripServer() as drip:
        url = f"http://oauth2:{TOKEN}@127.0.0.1:{drip.port}/acme/drip.git"
        error, elapsed = timed(lambda: list_remote_heads(url, timeout_s=TIMEOUT_S))
        assert str(error) == f"git: listing refs of {drip.repo_url('acme', 'drip')} timed out after {limit:g} s"
        assert TOKEN not in str(error) and error.__context__ is None
        assert elapsed < limit + MARGIN_S, elapsed
        assert drip.dripped == 1

        # the call given up on still runs (the server still drips): a second one is not started
        error, elapsed = timed(lambda: list_remote_heads(url, timeout_s=TIMEOUT_S))
        assert "a previous call that timed out is still running" in str(error)
        assert elapsed < MARGIN_S and drip.dripped == 1

        # another server is not held up by it
        assert list_remote_heads(good_url, timeout_s=TIMEOUT_S)["refs/heads/main"] == sha

        drip.stop_dripping()  # the connection closes: the call given up on ends
        assert wait_until(no_abandoned_calls, timeout=30)


def test_a_dripping_fetch_ends_at_its_limit_and_the_same_mirror_fetches_once_it_ended(
    acme: tuple[str, str], relay: GitDripServer, tmp_path: Path
) -> None:
    _, sha = acme
    limit = TIMEOUT_S * FETCH_LIMIT
    url = relay.repo_url("acme", "config")
    mirror = GitMirror(url, tmp_path / "state", timeout_s=TIMEOUT_S)
    error, elapsed = timed(mirror.fetch)
    assert str(error) == f"git: fetching {url} timed out after {limit:g} s"
    assert elapsed < limit + MARGIN_S, elapsed

    error, elapsed = timed(lambda: mirror.ensure_commit(sha))  # at once: the first fetch still holds the mirror
    assert "a previous call that timed out is still running" in str(error)
    assert elapsed < MARGIN_S

    relay.stop_dripping()
    assert wait_until(no_abandoned_calls, timeout=30)
    mirror.ensure_commit(sha)
    assert mirror.resolve("main") == sha


def test_a_fetch_that_drips_after_its_listing_worked(
    acme: tuple[str, str], git_server: GitServer, tmp_path: Path
) -> None:
    """Only the upload-pack POST drips: the ref listing answers, the fetch is what hangs."""
    _, sha = acme
    with GitDripServer(upstream=("127.0.0.1", git_server.served.port), only_post=True) as relay:
        url = relay.repo_url("acme", "config")
        mirror = GitMirror(url, tmp_path / "state", timeout_s=TIMEOUT_S)
        assert mirror.remote_heads()["refs/heads/main"] == sha
        error, _ = timed(mirror.fetch)
        assert re.fullmatch(rf"git: fetching {re.escape(url)} timed out after \d+ s", str(error))
        assert relay.dripped == 1
        assert mirror.remote_heads()["refs/heads/main"] == sha  # listing needs no mirror lock
        relay.stop_dripping()
        assert wait_until(no_abandoned_calls, timeout=30)
        mirror.fetch()
        assert mirror.resolve("main") == sha


def test_waiting_for_the_mirror_lock_is_bounded(acme: tuple[str, str], tmp_path: Path) -> None:
    url, sha = acme
    mirror = GitMirror(url, tmp_path / "state", timeout_s=0.1)
    mirror.fetch()
    fd = os.open(mirror.path.with_name(mirror.path.name + ".lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process's fetch, say
        error, elapsed = timed(mirror.fetch)
        assert str(error) == (f"git: fetching {url} timed out after {0.1 * FETCH_LIMIT:g} s "
                              "(still waiting for a previous git call on this mirror)")
        assert elapsed < 0.1 * FETCH_LIMIT + MARGIN_S
        assert mirror.remote_heads()["refs/heads/main"] == sha  # an existing mirror is listed without it
        with pytest.raises(SourceError, match="pruning pull request refs .* timed out"):
            mirror.prune_pull_refs(keep=())
    finally:
        os.close(fd)
    assert wait_until(no_abandoned_calls, timeout=10)  # it gave up waiting by itself: nothing left running
    mirror.fetch()
