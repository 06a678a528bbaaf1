"""Time for tests: a fake clock that moves only when told, and a bounded poll on real time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class FakeClock:
    """`clock()` reads the time; `advance(s)` moves it; `sleep(s)` moves it too, records the sleep and
    calls `on_sleep` (so retry and gate code never waits)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float], None] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(seconds)


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, step: float = 0.2) -> bool:
    """Poll `predicate` (bounded); the caller asserts the outcome, never the time it took."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
