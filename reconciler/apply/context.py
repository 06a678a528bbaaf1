"""What every step of one apply run shares: the backend, injected clock/sleep, stop flag, settings.

Built once by `apply_plan`; nothing in `apply/` reads a global, the wall clock or the real sleep.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reconciler.apply.gate import GateSettings
from reconciler.apply.retry import RetryPolicy
from reconciler.backends.base import Backend
from reconciler.model.desired import DesiredWorkspace
from reconciler.model.events import ApplyEvent, EventSink

log = logging.getLogger(__name__)

SecretLookup = Callable[[DesiredWorkspace], Mapping[str, str]]


@dataclass
class RunContext:
    backend: Backend
    secrets: SecretLookup
    gate: GateSettings
    retry: RetryPolicy
    concurrency: int
    stop: threading.Event
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    on_event: EventSink | None = None
    started: float = 0.0
    interrupted: bool = False  # set when `stop` actually kept something from happening
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def emit(self, event: ApplyEvent) -> None:
        """Tell the caller (CLI progress, status poster); a failing listener never breaks the run."""
        if self.on_event is None:
            return
        with self._lock:  # actions finish on pool threads; listeners see one event at a time
            try:
                self.on_event(event)
            except Exception:
                log.exception("event listener failed", extra={"action": type(event).__name__})
