"""Retrying one backend call: the exception type decides.

TransientBackendError (unreachable engine, timeout, 5xx) is retried with exponential backoff
(`base_s`, doubling, capped at `max_s`) through an injected `sleep`, so tests never wait. Any
other error is permanent and goes straight up. After the last attempt the transient error goes up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from reconciler.backoff import backoff_delay
from reconciler.errors import TransientBackendError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # total tries, the first included
    base_s: float = 0.5
    max_s: float = 8.0

    def delay(self, failed_attempts: int) -> float:
        """Wait after the n-th failed attempt (1-based): base, 2*base, 4*base, ... capped."""
        return backoff_delay(failed_attempts, self.base_s, self.max_s)


class Attempts:
    """Counts the tries of one call, so a result can say how many it took even when it failed."""

    def __init__(self) -> None:
        self.count = 0


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    attempts: Attempts | None = None,
    what: str = "backend call",
) -> T:
    attempts = attempts or Attempts()
    while True:
        attempts.count += 1
        try:
            return fn()
        except TransientBackendError as exc:
            if attempts.count >= max(1, policy.attempts):
                raise
            delay = policy.delay(attempts.count)
            log.warning(
                "transient backend error; retrying",
                extra={"action": what, "error": str(exc), "duration_s": delay},
            )
            sleep(delay)
