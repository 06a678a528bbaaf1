"""A run helper over the memory backend, on a fake clock whose sleep advances time (retry and gate
tests never wait)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from reconciler.apply import apply_plan
from reconciler.backends.memory import MemoryBackend
from reconciler.model.desired import DesiredState
from reconciler.model.events import ApplyEvent
from reconciler.model.plan import Plan
from reconciler.model.results import RunResult
from reconciler.plan import PlanPolicy, plan
from tests.support.clock import FakeClock


class Harness:
    def __init__(self) -> None:
        self.backend = MemoryBackend("test")
        self.clock = FakeClock()
        self.events: list[ApplyEvent] = []
        self.stop = threading.Event()

    def plan(self, desired: DesiredState, policy: PlanPolicy | None = None) -> Plan:
        return plan(desired, self.backend.list_owned(), policy or PlanPolicy(max_delete=100))

    def apply(self, the_plan: Plan, **kw: Any) -> RunResult:
        options: dict[str, Any] = {
            "secrets": lambda ws: {name: f"value-of-{name}" for name in ws.secrets},
            "health_timeout_s": 30.0, "clock": self.clock, "sleep": self.clock.sleep, "stop": self.stop,
            "on_event": self.events.append, "wall": lambda: 1.7e9,
        }
        options.update(kw)
        return apply_plan(the_plan, self.backend, **options)

    def converge(self, desired: DesiredState, **kw: Any) -> RunResult:
        return self.apply(self.plan(desired), **kw)


@pytest.fixture
def h() -> Harness:
    return Harness()
