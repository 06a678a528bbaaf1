"""Health of one workspace container, from `docker inspect` (or `docker ps`) data. Pure but for a clock.

- the container carries the reconciler's probe label (`health:` set): the verdict of the HTTP
  probes the reconciler makes itself (`docker_probe.py`), whatever the image holds;
- the container defines a Docker HEALTHCHECK (the image's own, or the in-image `wget` of a
  container created without reconciler probes): its status (starting / healthy / unhealthy);
- otherwise "running and not restarting": HEALTHY once the same start (container id, StartedAt,
  RestartCount) has lasted `settle_seconds`, STARTING before that;
- exited, dead, restarting, created-but-not-started, paused: UNHEALTHY.
Errors talking to the engine are the caller's business (UNKNOWN, never guessed as dead).

The settle timer uses the injected monotonic clock, seeded from the engine's StartedAt on first
sight, so a container already running for an hour is healthy at once and tests never sleep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from reconciler.model.enums import HealthState

if TYPE_CHECKING:
    from reconciler.backends.docker_probe import HttpProbes

_CHECK_STATES = {
    "healthy": HealthState.HEALTHY,
    "unhealthy": HealthState.UNHEALTHY,
    "starting": HealthState.STARTING,
}


def parse_docker_time(raw: str | None) -> float | None:
    """Docker timestamps carry nanoseconds (`2024-05-01T10:00:00.123456789Z`); keep microseconds."""
    if not raw or raw.startswith("0001-"):
        return None
    text = raw.rstrip("Z")
    if "." in text:
        whole, frac = text.split(".", 1)
        digits = "".join(ch for ch in frac if ch.isdigit())
        text = f"{whole}.{digits[:6]}"
    try:
        return datetime.fromisoformat(text + "+00:00").timestamp()
    except ValueError:
        return None


def check_state_from_ps(status_text: str) -> HealthState | None:
    """The health word `docker ps` appends to its Status column, if any."""
    if "(healthy)" in status_text:
        return HealthState.HEALTHY
    if "(unhealthy)" in status_text:
        return HealthState.UNHEALTHY
    if "(health: starting)" in status_text:
        return HealthState.STARTING
    return None


class SettleTracker:
    """Decides HEALTHY vs STARTING for containers without a HEALTHCHECK."""

    def __init__(
        self,
        settle_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settle_seconds = settle_seconds
        self.clock = self._clock = clock
        self.wall = self._wall = wall_clock
        self._lock = threading.Lock()
        self._since: dict[str, tuple[tuple[str, int], float]] = {}

    def state(self, container_id: str, started_at: str | None, restart_count: int) -> HealthState:
        now = self._clock()
        key = (started_at or "", restart_count)
        with self._lock:
            seen = self._since.get(container_id)
            if seen is None or seen[0] != key:
                started = parse_docker_time(started_at)
                age = max(0.0, self._wall() - started) if started is not None else 0.0
                seen = (key, now - age)
                self._since[container_id] = seen
        return HealthState.HEALTHY if now - seen[1] >= self.settle_seconds else HealthState.STARTING

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._since.pop(container_id, None)


def health_from_inspect(
    info: Mapping[str, Any], settle: SettleTracker, probes: HttpProbes | None = None
) -> HealthState:
    state = info.get("State") or {}
    if not state.get("Running") or state.get("Restarting") or state.get("Paused"):
        return HealthState.UNHEALTHY
    probed = probes.state(info) if probes is not None else None
    if probed is not None:
        return probed
    check = (state.get("Health") or {}).get("Status")
    if check in _CHECK_STATES:
        return _CHECK_STATES[check]
    return settle.state(str(info.get("Id", "")), state.get("StartedAt"), int(info.get("RestartCount") or 0))
