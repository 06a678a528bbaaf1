"""The worker: one reconcile at a time, the newest head wins, and a bad commit never blocks its fix.

Requests come from webhooks, the poll, resync and retries (`submit`, quick: it only enqueues).
Rules, all in `submit`, `_should_run` and `_after`:
- a new head replaces whatever was queued; the queued commit it replaces is reported superseded
  (by the worker thread, never the webhook's) and never runs;
- a new head arriving during a run is coalesced: the run goes on, except that a health gate wait
  (now or later in that run) ends at once (`RunControl.supersede`): the current action still
  finishes, the run is recorded superseded and the newest head is planned from the actual state;
- a head already converged is not run again unless a resync asks (resync applies only on drift,
  the executor decides); a head whose run `failed` (the change is wrong) is never retried: a
  resync of it heals instead (the executor keeps each tier at its last verified revision and
  leaves the failed change and its statuses alone);
- `error` (the reconciler's own trouble, a crash included) is retried with capped exponential
  backoff, only while that commit is still the head, at most `max_retries` times per head: the
  count goes on across resyncs until a run of that head ends otherwise or a new head comes, so a
  resync of a head that keeps failing the same way is one more try, never a new round of retries;
- an operator's retry (`force`, `POST /api/v1/retry`) runs a failed head once more, as a new run;
- `shutdown` (SIGTERM) stops the current run after its current action and exits the thread.
The executor (what a run does) is injected, so these rules are tested without Docker or Gitea. It
ends every run it starts itself (a crash included); if it raises anyway, the run counts as `error`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from reconciler.backoff import backoff_delay
from reconciler.model.enums import RunStatus, Trigger

log = logging.getLogger(__name__)
HEAD_TRIGGERS = frozenset({Trigger.PUSH, Trigger.POLL, Trigger.STARTUP})
CONVERGED = frozenset({RunStatus.SUCCESS, RunStatus.HELD})  # a head not run again unless a resync asks


@dataclass(frozen=True)
class Request:
    sha: str
    trigger: Trigger
    resync: bool = False  # re-plan even if converged; apply only when the plan has changes
    attempt: int = 0
    operator: bool = False  # asked for through the API (journalled with trigger `operator`)
    force: bool = False  # an operator's retry: run it even though its last run failed


class RunControl:
    """Shared by the worker and one running run: the `stop` event apply_plan watches, and why it was set."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.superseded_by: str | None = None
        self.shutting_down = False
        self._in_gate = False
        self._lock = threading.Lock()

    def gate_started(self) -> None:
        with self._lock:
            self._in_gate = True
            if self.superseded_by is not None:
                self.stop.set()

    def gate_done(self) -> None:
        with self._lock:
            self._in_gate = False

    def supersede(self, by: str) -> None:
        with self._lock:
            self.superseded_by = by
            if self._in_gate:
                self.stop.set()

    def shutdown(self) -> None:
        self.shutting_down = True
        self.stop.set()


class Executor(Protocol):
    def run(self, request: Request, control: RunControl) -> RunStatus:
        """Carry out one request; returns how its run ended."""
        ...

    def superseded(self, request: Request, by: str) -> None:
        """A queued request replaced by a newer head before it ran: say so on its commit."""
        ...


class Worker:
    def __init__(
        self,
        executor: Executor,
        known_status: Callable[[str], RunStatus | None],
        *,
        backoff_base_s: float = 5.0,
        backoff_cap_s: float = 300.0,
        max_retries: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.executor = executor
        self.known_status = known_status
        self.backoff_base_s, self.backoff_cap_s, self.max_retries = backoff_base_s, backoff_cap_s, max_retries
        self.clock = clock
        self.head: str | None = None
        self.current: Request | None = None
        self.last_success: float | None = None
        self.last_finished: float | None = None
        self._pending: Request | None = None
        self._replaced: list[tuple[Request, str]] = []
        self._control: RunControl | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self._timers: list[threading.Timer] = []
        self._errors: tuple[str, int] | None = None  # (head, `error` runs in a row): what caps its retries
        self._thread = threading.Thread(target=self._loop, name="reconcile-worker", daemon=True)

    # ---- control -----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def idle(self) -> bool:
        """Nothing running, nothing queued."""
        with self._cond:
            return self.current is None and self._pending is None and not self._replaced

    def wanted(self) -> set[str]:
        """The commits the worker holds on to: the head, the run in progress, the one queued."""
        with self._cond:
            requests = [self.current, self._pending]
            return {r.sha for r in requests if r is not None} | ({self.head} if self.head else set())

    def snapshot(self) -> tuple[Request | None, Request | None]:
        """(the request running, the one queued), as of now."""
        with self._cond:
            return self.current, self._pending

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop after the current action: the current run records itself interrupted."""
        with self._cond:
            self._stopping = True
            if self._control is not None:
                self._control.shutdown()
            for timer in self._timers:
                timer.cancel()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, request: Request) -> bool:
        """Enqueue; True when accepted. Never blocks on work (called from the webhook handler)."""
        with self._cond:
            if self._stopping:
                return False
            if request.trigger in HEAD_TRIGGERS:
                if request.sha == self.head and not request.resync:
                    return False
                self.head = request.sha
                if self._pending is not None and self._pending.sha != request.sha:
                    self._replaced.append((self._pending, request.sha))
                if self._pending is not None and self._pending.sha == request.sha:
                    request = replace(request, resync=request.resync or self._pending.resync)
                self._pending = request
                if self._control is not None and self.current is not None and self.current.sha != request.sha:
                    self._control.supersede(request.sha)
            else:  # resync and retry only ever concern the current head, when nothing is queued
                if request.sha != self.head or self._pending is not None:
                    return False
                if self.current is not None and self.current.sha == request.sha:
                    return False
                self._pending = request
            self._cond.notify_all()
        log.info("run requested", extra={"revision": request.sha,
                                         "context": "operator" if request.operator else request.trigger})
        return True

    # ---- the thread --------------------------------------------------------------------------
    def _next(self) -> tuple[Request | None, list[tuple[Request, str]]]:
        with self._cond:
            while self._pending is None and not self._replaced and not self._stopping:
                self._cond.wait()
            replaced, self._replaced = self._replaced, []
            if self._stopping:
                return None, replaced
            request, self._pending = self._pending, None
            if request is not None:
                self.current, self._control = request, RunControl()
            return request, replaced

    def _loop(self) -> None:
        while True:
            request, replaced = self._next()
            for old, by in replaced:
                self._safely(functools.partial(self.executor.superseded, old, by), old.sha)
            if request is None:
                if self._stopping:
                    return
                continue
            status = RunStatus.SKIPPED
            try:
                if self._should_run(request):
                    control = self._control or RunControl()
                    run = functools.partial(self.executor.run, request, control)
                    status = self._safely(run, request.sha) or RunStatus.ERROR
            finally:
                with self._cond:
                    self.current, self._control = None, None
            self._after(request, status)

    def _should_run(self, request: Request) -> bool:
        known = self.known_status(request.sha)
        if known == RunStatus.FAILED and not request.resync and not request.force:
            log.info("not retried: its last run failed (the change is wrong)", extra={"revision": request.sha})
            return False
        if known in CONVERGED and not request.resync:
            log.info("already converged", extra={"revision": request.sha})
            return False
        return True

    def _after(self, request: Request, status: RunStatus) -> None:
        self.last_finished = self.clock()
        if status in CONVERGED or status == RunStatus.NOOP:
            self.last_success = self.last_finished
        if status == RunStatus.SKIPPED:
            return
        errors = self._count_error(request.sha, status)
        if status != RunStatus.ERROR or self._stopping:
            return
        if errors > self.max_retries:
            log.warning("giving up retries until a new head; a resync tries once more",
                        extra={"revision": request.sha, "outcome": f"{errors} error(s) in a row"})
            return
        delay = backoff_delay(errors, self.backoff_base_s, self.backoff_cap_s)
        retry = Request(request.sha, Trigger.RETRY, resync=request.resync, attempt=errors)
        timer = threading.Timer(delay, self.submit, args=(retry,))
        timer.daemon = True
        with self._cond:
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()
        log.info("retry scheduled", extra={"revision": request.sha, "duration_s": delay})

    def _count_error(self, sha: str, status: RunStatus) -> int:
        """`error` runs of `sha` in a row, this one included (0 once a run of it ended otherwise)."""
        with self._cond:
            before = self._errors[1] if self._errors is not None and self._errors[0] == sha else 0
            count = before + 1 if status == RunStatus.ERROR else 0
            self._errors = (sha, count) if count else None
            return count

    @staticmethod
    def _safely(call: Callable[[], RunStatus | None] | Callable[[], None], sha: str) -> RunStatus | None:
        try:
            return call()
        except Exception:  # a bug in one run must never kill the loop
            log.exception("run crashed", extra={"revision": sha})
            return None
