"""The worker's steps (what it is doing, since when) and /healthz turning 503 on a step that lasts too long."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

from reconciler.daemon.journal import Journal
from reconciler.daemon.loop import Request, RunControl
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.steps import Steps, TrackedExecutor
from reconciler.daemon.web import build_apps
from reconciler.model.enums import RunStatus, Trigger
from tests.support.clock import FakeClock

with warnings.catch_warnings():  # Starlette 1.x would rather have httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def test_nested_steps_report_the_innermost_with_its_own_age() -> None:
    clock = FakeClock()
    steps = Steps(clock)
    assert steps.current() is None
    with steps.step("run 1a2b"):
        clock.advance(5)
        with steps.step("fetch 1a2b"):
            clock.advance(2)
            current = steps.current()
            assert current is not None
            assert (current.step, current.for_s, current.within) == ("fetch 1a2b", 2, ("run 1a2b",))
            assert current.as_json() == {"step": "fetch 1a2b", "for_s": 2.0, "within": ["run 1a2b"]}
        current = steps.current()
        assert current is not None and (current.step, current.for_s) == ("run 1a2b", 7)
    assert steps.current() is None


def test_stuck_only_past_the_limit_and_never_with_zero() -> None:
    clock = FakeClock()
    steps = Steps(clock)
    with steps.step("gate canary"):
        clock.advance(10)
        assert steps.stuck(10) is None
        clock.advance(0.5)
        stuck = steps.stuck(10)
        assert stuck is not None and stuck.step == "gate canary"
        assert steps.stuck(0) is None
    assert steps.stuck(10) is None


def test_ending_a_step_ends_the_steps_left_open_inside_it() -> None:
    steps = Steps(FakeClock())
    with steps.step("run 1a2b"):
        steps.begin("apply canary")
        steps.begin("gate canary")  # an exception before GateDone and TierDone: never ended
    assert steps.current() is None
    tier = steps.begin("apply production")
    steps.end(tier)
    steps.end(tier)  # twice: nothing
    steps.end(None)
    assert steps.current() is None


def test_each_thread_has_its_own_steps_and_the_oldest_innermost_is_reported() -> None:
    clock = FakeClock()
    steps = Steps(clock)
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with steps.step("post statuses"):
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    with steps.step("plan 1a2b"):
        clock.advance(3)
        thread.start()
        assert entered.wait(10)
        clock.advance(1)
        current = steps.current()
        assert current is not None and (current.step, current.for_s) == ("plan 1a2b", 4)
        with steps.step("render"):  # nested in this thread only
            current = steps.current()
            assert current is not None and (current.step, current.within) == ("post statuses", ())
    release.set()
    thread.join(10)
    assert steps.current() is None


class Executor:
    def __init__(self, steps: Steps) -> None:
        self.steps = steps
        self.seen: list[str | None] = []

    def run(self, request: Request, control: RunControl) -> RunStatus:
        current = self.steps.current()
        self.seen.append(current.step if current else None)
        self.steps.begin("apply canary")  # left open: the run's own step ends it
        return RunStatus.SUCCESS

    def superseded(self, request: Request, by: str) -> None:
        current = self.steps.current()
        self.seen.append(current.step if current else None)


def test_each_worker_call_is_a_step() -> None:
    steps = Steps(FakeClock())
    inner = Executor(steps)
    tracked = TrackedExecutor(inner, steps)
    assert tracked.run(Request("ab" * 20, Trigger.PUSH), RunControl()) is RunStatus.SUCCESS
    tracked.superseded(Request("cd" * 20, Trigger.PUSH), "ab" * 20)
    assert inner.seen == ["run abababababab", "supersede cdcdcdcdcdcd"]
    assert steps.current() is None


def test_healthz_is_503_while_stuck_and_shows_the_step(tmp_path: Path) -> None:
    state: dict[str, Any] = {"loop_alive": True, "step": {"step": "fetch 1a2b", "for_s": 3.0, "within": []},
                             "stuck": None}
    main, _ = build_apps(Journal(tmp_path / "journal.sqlite"), Metrics(), lambda: dict(state), None)
    client = TestClient(main)
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.json()["step"]["step"] == "fetch 1a2b"
    state["stuck"] = {"step": "fetch 1a2b", "for_s": 901}
    answer = client.get("/healthz")
    assert answer.status_code == 503 and answer.json()["stuck"] == {"step": "fetch 1a2b", "for_s": 901}
