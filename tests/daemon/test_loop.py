"""The worker's rules with an injected executor: no Docker, no Gitea, no sleeping on timings."""

from __future__ import annotations

import threading

from reconciler.daemon.loop import Request, RunControl, Worker
from reconciler.model.enums import RunStatus, Trigger
from tests.support.clock import wait_until


class FakeExecutor:
    """Runs block until released; records what ran, what was superseded, and the controls."""

    def __init__(self, outcome: str = RunStatus.SUCCESS) -> None:
        self.outcome = outcome
        self.ran: list[Request] = []
        self.replaced: list[tuple[str, str]] = []
        self.controls: list[RunControl] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self.statuses: dict[str, str] = {}

    def run(self, request: Request, control: RunControl) -> str:
        self.ran.append(request)
        self.controls.append(control)
        self.started.set()
        self.release.wait(30)
        status = "superseded" if control.stop.is_set() else self.outcome
        self.statuses[request.sha] = status
        return status

    def superseded(self, request: Request, by: str) -> None:
        self.replaced.append((request.sha, by))


def make(executor: FakeExecutor, **kwargs: object) -> Worker:
    worker = Worker(executor, executor.statuses.get, **kwargs)  # type: ignore[arg-type]
    worker.start()
    return worker


def test_newest_wins_queued_heads_are_superseded_and_the_gate_wait_ends() -> None:
    ex = FakeExecutor()
    worker = make(ex)
    try:
        assert worker.submit(Request("a" * 40, Trigger.PUSH))
        assert ex.started.wait(10)
        ex.controls[0].gate_started()  # run A waits on its health gate
        worker.submit(Request("b" * 40, Trigger.PUSH))
        worker.submit(Request("c" * 40, Trigger.PUSH))
        assert ex.controls[0].stop.is_set() and ex.controls[0].superseded_by == "c" * 40
        ex.release.set()
        assert wait_until(lambda: ex.statuses.get("c" * 40) == RunStatus.SUCCESS, timeout=10)
        assert [r.sha[0] for r in ex.ran] == ["a", "c"]
        assert ex.replaced == [("b" * 40, "c" * 40)]
        assert ex.statuses["a" * 40] == "superseded"
    finally:
        ex.release.set()
        worker.shutdown(10)


def test_a_newer_head_outside_a_gate_does_not_stop_the_run() -> None:
    ex = FakeExecutor()
    worker = make(ex)
    try:
        worker.submit(Request("a" * 40, Trigger.PUSH))
        assert ex.started.wait(10)
        worker.submit(Request("b" * 40, Trigger.PUSH))
        assert not ex.controls[0].stop.is_set()
        ex.controls[0].gate_started()  # a gate later in the same run ends at once
        assert ex.controls[0].stop.is_set()
    finally:
        ex.release.set()
        worker.shutdown(10)


def test_converged_and_failed_heads_are_not_run_again_but_a_resync_replans_or_heals_them() -> None:
    ex = FakeExecutor()
    ex.release.set()
    ex.statuses.update({"f" * 40: RunStatus.FAILED, "s" * 40: RunStatus.SUCCESS})
    worker = make(ex)
    try:
        for sha in ("f" * 40, "s" * 40):
            assert worker.submit(Request(sha, Trigger.PUSH))
            assert wait_until(lambda: worker.idle, timeout=10)
            assert worker.submit(Request(sha, Trigger.RESYNC, resync=True))
            assert wait_until(lambda: worker.idle, timeout=10)
        # a failed head's resync reaches the executor, which heals around it (never re-applies it)
        assert [(r.sha[0], r.trigger) for r in ex.ran] == [("f", Trigger.RESYNC), ("s", Trigger.RESYNC)]
    finally:
        worker.shutdown(10)


def test_error_is_retried_with_capped_backoff_while_it_is_the_head() -> None:
    ex = FakeExecutor(outcome=RunStatus.ERROR)
    ex.release.set()
    worker = make(ex, backoff_base_s=0.01, backoff_cap_s=0.02, max_retries=3)
    try:
        worker.submit(Request("e" * 40, Trigger.PUSH))
        assert wait_until(lambda: len(ex.ran) == 4, timeout=10)
        assert [r.attempt for r in ex.ran] == [0, 1, 2, 3]
        ex.outcome = RunStatus.FAILED
        worker.submit(Request("g" * 40, Trigger.PUSH))  # a failed run is never retried
        assert wait_until(lambda: ex.statuses.get("g" * 40) == RunStatus.FAILED, timeout=10)
        assert wait_until(lambda: worker.current is None, timeout=10)
        assert [r.sha[0] for r in ex.ran].count("g") == 1
    finally:
        worker.shutdown(10)


def test_shutdown_stops_the_current_run() -> None:
    ex = FakeExecutor()
    worker = make(ex)
    worker.submit(Request("a" * 40, Trigger.PUSH))
    assert ex.started.wait(10)
    threading.Timer(0.05, ex.release.set).start()
    worker.shutdown(10)
    assert ex.controls[0].stop.is_set() and ex.controls[0].shutting_down
    assert not worker.alive and not worker.submit(Request("b" * 40, Trigger.PUSH))


def test_errors_are_capped_per_head_across_resyncs_and_a_new_head_starts_afresh() -> None:
    ex = FakeExecutor(outcome=RunStatus.ERROR)
    ex.release.set()
    worker = make(ex, backoff_base_s=0.01, backoff_cap_s=0.02, max_retries=2)
    try:
        worker.submit(Request("e" * 40, Trigger.PUSH))
        assert wait_until(lambda: len(ex.ran) == 3 and worker.idle, timeout=10)
        for count in (4, 5):  # each resync of a head that gave up is one more try, never a new round
            assert worker.submit(Request("e" * 40, Trigger.RESYNC, resync=True))
            assert wait_until(lambda n=count: len(ex.ran) == n and worker.idle, timeout=10)
            assert not wait_until(lambda n=count: len(ex.ran) > n, timeout=0.2)
        assert [r.trigger for r in ex.ran] == [Trigger.PUSH, Trigger.RETRY, Trigger.RETRY, Trigger.RESYNC,
                                               Trigger.RESYNC]
        worker.submit(Request("n" * 40, Trigger.PUSH))  # a new head gets its own retries
        assert wait_until(lambda: [r.sha[0] for r in ex.ran].count("n") == 3, timeout=10)
    finally:
        worker.shutdown(10)


def test_an_executor_that_raises_counts_as_error_and_is_retried_within_the_cap() -> None:
    ex = FakeExecutor()
    ex.release.set()

    def boom(request: Request, control: RunControl) -> str:
        ex.ran.append(request)
        raise KeyError("x")

    ex.run = boom  # type: ignore[method-assign]
    worker = make(ex, backoff_base_s=0.01, backoff_cap_s=0.02, max_retries=1)
    try:
        worker.submit(Request("k" * 40, Trigger.PUSH))
        assert wait_until(lambda: len(ex.ran) == 2 and worker.idle, timeout=10)
        assert not wait_until(lambda: len(ex.ran) > 2, timeout=0.2)
        assert worker.alive
    finally:
        worker.shutdown(10)
