"""Hard wall-clock limits on git network calls, whatever the server does.

libgit2 cannot be trusted to end a call on time by itself: its server timeout
(`GIT_OPT_SET_SERVER_TIMEOUT`, set by `mirror._set_timeouts`) bounds each single read, so a server
that sends one byte a second never trips it, and the transfer and progress callbacks (the only
places Python can check a deadline) are not called at all while it reads an HTTP response head or
a ref advertisement. Listing refs calls none of them.

So every network call runs on a worker thread of its own (`run_bounded`; pygit2 releases the GIL
inside libgit2) and the caller stops waiting at the deadline with a `SourceError`
("git: listing refs of <url> timed out after N s"). The call given up on (abandoned) is made to end
as soon as libgit2 lets it: its cancel flag and deadline are checked in every callback, and the
server timeout ends it once the server goes silent; only a server that keeps sending keeps it
alive, for as long as it sends. Until it ends, it cannot get in the way of the next call:

- it keeps its mirror's lock, so nothing else writes into that mirror meanwhile;
- a new call with the same key (the mirror, or the URL listed) is refused at once
  ("a previous call that timed out is still running"), so a dripping server holds at most one
  thread per mirror or URL however often the daemon polls it;
- waiting for a mirror lock (another process, or a call of this one) is bounded by the waiting
  call's own deadline (`bounded_lock`), and a timeout while waiting says so.

No text of libgit2 goes into these messages: only what the caller describes (URLs already without
credentials).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from reconciler.errors import SourceError

log = logging.getLogger(__name__)
T = TypeVar("T")

_abandoned: dict[str, int] = {}  # key -> calls given up on that are still running
_abandoned_lock = threading.Lock()


class GitCall:
    """One bounded call as its worker sees it: the deadline, the cancel flag, what it is waiting for."""

    def __init__(self, what: str, limit_s: float) -> None:
        self.what = what
        self.limit_s = limit_s
        self.deadline = time.monotonic() + limit_s
        self.cancelled = threading.Event()
        self.waiting_for: str | None = None  # set while it waits for a lock

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def over(self) -> bool:
        return self.cancelled.is_set() or self.remaining() <= 0

    def check(self) -> None:
        """Raise the timeout error once the call is given up on or past its deadline (from callbacks)."""
        if self.over():
            raise SourceError(self.timeout_message())

    def timeout_message(self) -> str:
        waiting = f" (still waiting for {self.waiting_for})" if self.waiting_for else ""
        return f"git: {self.what} timed out after {self.limit_s:g} s{waiting}"


def run_bounded(key: str, what: str, limit_s: float, work: Callable[[GitCall], T]) -> T:
    """`work(call)` on a worker thread; its result, or its exception, or a SourceError at `limit_s`.

    `key` names what the call occupies (a mirror, a listed URL): while a call with that key that
    timed out is still running, a new one is refused at once.
    """
    with _abandoned_lock:
        if _abandoned.get(key):
            raise SourceError(f"git: {what}: a previous call that timed out is still running; "
                              "not starting another until it ends")
    call = GitCall(what, limit_s)
    outcome: list[tuple[bool, Any]] = []
    finished = threading.Event()
    state = {"abandoned": False}

    def target() -> None:
        try:
            outcome.append((True, work(call)))
        except BaseException as exc:  # handed to the caller, which raises it in its own thread
            outcome.append((False, exc))
        finally:
            with _abandoned_lock:
                finished.set()
                if state["abandoned"]:
                    _abandoned[key] -= 1
                    if not _abandoned[key]:
                        del _abandoned[key]
            if state["abandoned"]:
                log.info("git call given up on earlier has ended", extra={"context": what})

    thread = threading.Thread(target=target, name=f"git: {what}"[:60], daemon=True)
    thread.start()
    try:
        done = finished.wait(limit_s)
    except BaseException:  # interrupted (Ctrl-C): the call is given up on all the same
        done = False
        _abandon(key, call, finished, state)
        raise
    if not done and _abandon(key, call, finished, state):
        log.warning("git call given up at its deadline; it ends in the background",
                    extra={"context": what, "duration_s": limit_s})
        raise SourceError(call.timeout_message())
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


def _abandon(key: str, call: GitCall, finished: threading.Event, state: dict[str, bool]) -> bool:
    """Mark a call still running as given up on (False when it has just finished after all)."""
    with _abandoned_lock:
        if finished.is_set():
            return False
        state["abandoned"] = True
        call.cancelled.set()
        _abandoned[key] = _abandoned.get(key, 0) + 1
        return True


@contextmanager
def bounded_lock(path: Path, call: GitCall, holder: str = "a previous git call on this mirror") -> Iterator[None]:
    """Exclusive `flock` on `path` (threads and processes alike), waited for no longer than `call` may
    run: past its deadline, or once the call is given up on, a SourceError naming `holder`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        pause = 0.02
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                call.waiting_for = holder
                if call.over():
                    raise SourceError(call.timeout_message()) from None
                time.sleep(max(0.0, min(pause, call.remaining())))
                pause = min(pause * 2, 0.25)
        call.waiting_for = None
        yield
    finally:
        os.close(fd)


def abandoned_calls() -> dict[str, int]:
    """Calls given up on that still run, per key (for tests and diagnostics)."""
    with _abandoned_lock:
        return dict(_abandoned)
