"""The verdict of a container's probes so far, Docker's way. Pure but for the injected clocks; thread-safe.

STARTING until the first success; HEALTHY after a success, until `retries` failures in a row make
it UNHEALTHY; failures within `start_period_seconds` of the container's start do not count before
its first success. A probe the reconciler could not make is UNKNOWN, never a failure. A new start
of the container (StartedAt, RestartCount) starts over. Also decides when a probe is due (one in
flight at a time, no more often than the interval). Kept apart from the workers that run the probes
(`docker_probe.py`): the rules, without threads or sockets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from reconciler.backends.docker_health import parse_docker_time
from reconciler.backends.docker_probe_http import ProbeConfig, ProbeResult
from reconciler.model.enums import HealthState

UNSEEN = ("", 0)  # the start of a container known from a listing only (no StartedAt there)


@dataclass
class _Entry:
    key: tuple[str, int]
    started: float | None  # wall time of the start
    config: ProbeConfig
    verdict: HealthState = HealthState.STARTING
    failures: int = 0
    results: int = 0
    cannot: str | None = None
    detail: str = ""
    done_at: float | None = None  # monotonic: when the last probe finished
    queued: bool = False

    def reported(self, before_first: HealthState) -> HealthState:
        if self.cannot is not None:
            return HealthState.UNKNOWN
        return self.verdict if self.results else before_first


class Verdicts:
    """Per container: the verdict of its probes so far, Docker's way (see the module docstring). Pure
    but for the injected clocks; thread-safe."""

    def __init__(self, clock: Callable[[], float], wall: Callable[[], float]) -> None:
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def _entry(self, cid: str, key: tuple[str, int], config: ProbeConfig) -> _Entry:
        """The entry of this start of the container: a new one when it started anew."""
        entry = self._entries.get(cid)
        if entry is not None and entry.config == config:
            if entry.key == key:
                return entry
            if entry.key == UNSEEN:  # made by a listing: now the start is known
                entry.key, entry.started = key, parse_docker_time(key[0])
                return entry
        queued = entry.queued if entry is not None else False  # a probe of the old start may be in flight
        entry = _Entry(key=key, started=parse_docker_time(key[0]), config=config, queued=queued)
        self._entries[cid] = entry
        return entry

    def look(self, cid: str, key: tuple[str, int] | None, config: ProbeConfig,
             before_first: HealthState) -> tuple[HealthState, bool]:
        """(what to report now, whether a probe is due: then the caller has claimed it and queues it).
        `key` None: the listing, which knows no StartedAt; the entry it finds is the current start."""
        with self._lock:
            return self._look(cid, key, config, before_first, self._clock())

    def look_listed(self, wanted: Mapping[str, ProbeConfig]) -> dict[str, tuple[HealthState, bool]]:
        """`look` for every container of a listing (UNKNOWN before any result), under one lock."""
        with self._lock:
            now = self._clock()
            return {cid: self._look(cid, None, config, HealthState.UNKNOWN, now) for cid, config in wanted.items()}

    def _look(self, cid: str, key: tuple[str, int] | None, config: ProbeConfig, before_first: HealthState,
              now: float) -> tuple[HealthState, bool]:
        found = self._entries.get(cid)
        if key is None and found is not None and found.config == config:
            entry = found
        else:
            entry = self._entry(cid, key or UNSEEN, config)
        due = not entry.queued and (entry.done_at is None or now - entry.done_at >= config.interval)
        if due:
            entry.queued = True
        return entry.reported(before_first), due

    def record(self, cid: str, key: tuple[str, int], config: ProbeConfig, result: ProbeResult) -> HealthState:
        """Take in one probe's result; one about another start of the container (or a forgotten one)
        is dropped."""
        with self._lock:
            entry = self._entries.get(cid)
            if entry is None:
                return HealthState.UNKNOWN
            if entry.config != config or (entry.key != key and entry.key != UNSEEN):
                entry.queued = False
                return entry.reported(HealthState.UNKNOWN)
            if entry.key == UNSEEN:
                entry.key, entry.started = key, parse_docker_time(key[0])
            entry.queued = False
            entry.done_at = self._clock()
            entry.detail = result.detail
            if result.ok is None:
                entry.cannot = result.detail
                return HealthState.UNKNOWN
            entry.cannot = None
            entry.results += 1
            if result.ok:
                entry.verdict, entry.failures = HealthState.HEALTHY, 0
            elif not (entry.verdict is HealthState.STARTING and self._in_start_period(entry)):
                entry.failures += 1
                if entry.failures >= config.retries:
                    entry.verdict = HealthState.UNHEALTHY
            return entry.verdict

    def _in_start_period(self, entry: _Entry) -> bool:
        if entry.config.start_period <= 0:
            return False
        return entry.started is not None and self._wall() - entry.started < entry.config.start_period

    def unclaim(self, cid: str) -> None:
        with self._lock:
            entry = self._entries.get(cid)
            if entry is not None:
                entry.queued = False

    def detail(self, cid: str) -> str:
        with self._lock:
            entry = self._entries.get(cid)
            return entry.detail if entry is not None else ""

    def forget(self, cid: str) -> None:
        with self._lock:
            self._entries.pop(cid, None)

    def keep_only(self, cids: Iterable[str]) -> None:
        keep = set(cids)
        with self._lock:
            for cid in [c for c in self._entries if c not in keep]:
                del self._entries[cid]
