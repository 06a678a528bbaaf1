"""How long each workspace has been unhealthy, as the daemon saw it (`--heal-unhealthy-after`).

Every listing the daemon makes (a resync's plan, the look after each run) is shown to the clock.
A workspace whose container runs but whose health check fails (`HealthState.UNHEALTHY`) is timed
from the first listing that saw it so; once that is `after_s` or more, the next resync recreates
it at the spec it runs. The clock forgets a workspace as soon as a listing sees it otherwise
(healthy, starting, unknown, stopped, gone) or sees another container for it, and restarts once a
recreate was attempted (`restarted`), so a workspace that stays broken is tried once per
`after_s`, not on every resync. A stopped container is not timed: the resync plan restarts it at
once. In memory only: a restarted daemon starts counting again (at worst one `after_s` late).
`after_s` 0 turns it off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from reconciler.model.enums import HealthState
from reconciler.model.observed import ObservedWorkspace, current_of


class UnhealthyClock:
    def __init__(self, after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.after_s = after_s
        self._clock = clock
        self._since: dict[str, tuple[str, float]] = {}  # workspace -> (container, first seen unhealthy)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.after_s > 0

    def observe(self, observed: Iterable[ObservedWorkspace]) -> None:
        """One listing of everything that runs: start, go on with or stop each workspace's timer."""
        if not self.enabled:
            return
        now = self._clock()
        with self._lock:
            since: dict[str, tuple[str, float]] = {}
            for ws in current_of(observed).values():
                if not ws.running or ws.health is not HealthState.UNHEALTHY:
                    continue
                seen = self._since.get(ws.id)
                since[ws.id] = seen if seen is not None and seen[0] == ws.backend_ref else (ws.backend_ref, now)
            self._since = since

    def due(self, observed: Sequence[ObservedWorkspace] | None = None) -> dict[str, float]:
        """Workspaces unhealthy for `after_s` or more: id -> seconds. With `observed`, that listing
        is taken in first (the shape `pipeline.heal.Unhealthy` wants)."""
        if observed is not None:
            self.observe(observed)
        if not self.enabled:
            return {}
        now = self._clock()
        with self._lock:
            return {ws: now - at for ws, (_, at) in self._since.items() if now - at >= self.after_s}

    def restarted(self, workspace_ids: Iterable[str]) -> None:
        """A recreate of these was attempted: time them again from the next listing."""
        with self._lock:
            for ws in workspace_ids:
                self._since.pop(ws, None)

    def timing(self) -> Mapping[str, float]:
        """Every workspace being timed: id -> seconds so far (for tests and logs)."""
        now = self._clock()
        with self._lock:
            return {ws: now - at for ws, (_, at) in self._since.items()}
