"""What the worker is doing right now, and for how long: named steps, for `/healthz`.

`with steps.step("fetch 1a2b3c4d5e6f"):` records a step of the calling thread with its start time;
steps nest, and a thread's innermost step is what it is doing. `begin` and `end` do the same for a
step that starts and ends in different places (a tier, a gate: from the apply events); ending a
step also ends the steps begun inside it and left open (an exception between a tier's start and its
end), so nothing outlives the `with` around it. Thread-safe: `/healthz` reads while the worker writes.

`current()` is the innermost step that has lasted longest over all threads (one thread, the worker,
in the daemon); the daemon calls the worker stuck when that step has lasted longer than
`--stuck-after`. `TrackedExecutor` makes each of the worker's calls a step of its own (`run <sha>`),
which also ends whatever step a run left open when it ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from reconciler.daemon.loop import Executor, Request, RunControl
from reconciler.model.enums import RunStatus


@dataclass(frozen=True)
class Step:
    name: str
    started: float  # on the Steps' clock (monotonic)
    thread: int
    within: tuple[str, ...]  # the enclosing steps, outermost first


@dataclass(frozen=True)
class Current:
    """A thread's innermost step as seen now."""

    step: str
    for_s: float
    within: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {"step": self.step, "for_s": round(self.for_s, 1), "within": list(self.within)}


class Steps:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._stacks: dict[int, list[Step]] = {}
        self._lock = threading.Lock()

    def begin(self, name: str) -> Step:
        thread = threading.get_ident()
        with self._lock:
            stack = self._stacks.setdefault(thread, [])
            step = Step(name, self.clock(), thread, tuple(s.name for s in stack))
            stack.append(step)
        return step

    def end(self, step: Step | None) -> None:
        """End `step` and every step begun inside it that is still open; nothing if it already ended."""
        if step is None:
            return
        with self._lock:
            stack = self._stacks.get(step.thread, [])
            for i, open_step in enumerate(stack):
                if open_step is step:
                    del stack[i:]
                    break
            if not stack:
                self._stacks.pop(step.thread, None)

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        step = self.begin(name)
        try:
            yield step
        finally:
            self.end(step)

    def current(self) -> Current | None:
        """The innermost step that has lasted longest (None when no thread is in a step)."""
        with self._lock:
            innermost = [stack[-1] for stack in self._stacks.values() if stack]
        if not innermost:
            return None
        oldest = min(innermost, key=lambda s: s.started)
        return Current(oldest.name, max(0.0, self.clock() - oldest.started), oldest.within)

    def stuck(self, after_s: float) -> Current | None:
        """The current step once it has lasted longer than `after_s` (never with `after_s` 0)."""
        current = self.current()
        return current if current is not None and after_s > 0 and current.for_s > after_s else None


class TrackedExecutor:
    """The worker's executor, each call a step: `run <sha>`, `supersede <sha>`."""

    def __init__(self, executor: Executor, steps: Steps) -> None:
        self.executor, self.steps = executor, steps

    def run(self, request: Request, control: RunControl) -> RunStatus:
        with self.steps.step(f"run {request.sha[:12]}"):
            return self.executor.run(request, control)

    def superseded(self, request: Request, by: str) -> None:
        with self.steps.step(f"supersede {request.sha[:12]}"):
            self.executor.superseded(request, by)
