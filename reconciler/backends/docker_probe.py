"""HTTP health checks made by the reconciler itself, inside the workspace's network namespace.

A workspace's `health: {port, path, interval_seconds, timeout_seconds, retries,
start_period_seconds}` used to become a Docker HEALTHCHECK running `wget` in the runtime image: an
image without `sh` and `wget` always failed its gate, and 1,000 workspaces meant a `docker exec`
every interval for each of them. Now the reconciler sends the GET itself, to
`http://127.0.0.1:<port><path>` as seen from inside the container, exactly what the in-image check
asked, whatever the image holds and whatever the network (`none` included):

- **How**: a short-lived thread enters the container's network namespace (`setns`, the path the
  engine reports as `NetworkSettings.SandboxKey`, else `/proc/<State.Pid>/ns/net` once
  `/proc/<pid>/cgroup` names the container), creates a TCP socket there and ends; a socket stays
  in the namespace it was created in, so the connect, the request and the reading of the status
  line happen from the reconciler's own thread. No exec, no helper container, no image needed.
  2xx and 3xx pass (as `wget` did); refused, reset, no answer within `timeout_seconds`, another
  status: a failure.
- **When**: never inline. `health()` (the gate's poll) and `list_owned` (the plan, a resync, the
  metrics) read the last verdict of the container and queue a probe when the last one is older
  than `interval_seconds`; a few daemon worker threads run them (gate probes first). A poll costs
  what it did (one inspect; the listing: none), however slow an endpoint. Only containers
  carrying the probe label are probed, and no more often than their interval.
- **Verdict** (Docker's semantics): STARTING until the first success; HEALTHY after a success,
  until `retries` failures in a row make it UNHEALTHY; failures within `start_period_seconds` of
  the container's start do not count before its first success. A probe the reconciler could not
  make (no privilege, namespace gone, engine error while looking the container up) is UNKNOWN,
  never a failure. A new start of the container (StartedAt, RestartCount) starts over.
- **Which containers**: those created with `health:` while probing is on carry the label
  `reconciler.health-probe` (the settings, JSON) and `HEALTHCHECK NONE` (the image's own check
  would only cost execs and contradict the verdict). A container without that label keeps the
  engine's status: the image's own HEALTHCHECK when no `health:` is set, or the old `wget` check
  of a container created before this version (until its next recreate).
- **When it is on**: entering another network namespace needs CAP_SYS_ADMIN and the engine's
  namespaces in sight: the reconciler runs as root on the engine's host (over its unix socket),
  or in a container given the same (see README). `RECONCILER_HEALTH_PROBE=auto` (default) probes
  when a self-test at first use passes, else falls back to the in-image `wget` HEALTHCHECK
  (logged once); `reconciler` always probes (UNKNOWN where it cannot); `image` always uses the
  in-image check.

Rejected: `docker exec` (image-dependent); a helper container sharing the namespace
(`network_mode: container:<id>`) needs an image the reconciler controls on every engine (none is:
busybox is not available offline) and costs a container per probe; connecting to the container's
address from outside finds nothing on network `none`, misses a workload listening on 127.0.0.1
only (the demo images do), and cannot tell "dead" from "not routable" when a connect times out.

This module decides whether to probe (the mode and its fallback) and schedules the probes (worker
threads, gate first); the parts live apart: entering the namespace in `docker_probe_netns.py`,
the HTTP check in `docker_probe_http.py`, the verdict rules in `docker_probe_verdicts.py`.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import docker
import docker.errors

from reconciler.backends.docker_engine import FOREIGN_ERRORS
from reconciler.backends.docker_probe_http import ProbeConfig, probe
from reconciler.backends.docker_probe_netns import Target, netns_unsupported, socket_in
from reconciler.backends.docker_probe_verdicts import Verdicts
from reconciler.model.config import Health
from reconciler.model.enums import HealthState
from reconciler.model.observed import ObservedWorkspace

log = logging.getLogger(__name__)

PROBE_LABEL = "reconciler.health-probe"  # on workload containers the reconciler probes itself
MODE_ENV = "RECONCILER_HEALTH_PROBE"
MODES = ("auto", "reconciler", "image")
WORKERS = 8
_GATE, _LISTING = 0, 1  # queue priorities: a gate waits on its probes, a listing does not


class HttpProbes:
    """The probes of one backend: mode, verdicts, targets seen, and the workers that probe."""

    def __init__(
        self,
        api: Callable[[], docker.APIClient],
        *,
        clock: Callable[[], float],
        wall: Callable[[], float],
        mode: str | None = None,
        workers: int = WORKERS,
        opener: Callable[[Target], socket.socket] = socket_in,
    ) -> None:
        self._api = api
        self._clock = clock
        self._setting = (mode or os.environ.get(MODE_ENV) or "auto").strip().lower()
        self._enabled: bool | None = None
        self._workers = workers
        self._opener = opener
        self.verdicts = Verdicts(clock, wall)
        self._targets: dict[str, Target] = {}
        self._lock = threading.Lock()
        self._queue: queue.PriorityQueue[tuple[int, int, str, ProbeConfig]] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._threads: list[threading.Thread] = []
        self._warned: set[str] = set()
        self._decoded: dict[str, ProbeConfig | None] = {}

    @property
    def enabled(self) -> bool:
        """Whether workspaces with `health:` are probed by the reconciler (decided once, at first use)."""
        if self._enabled is None:
            setting = self._setting
            if setting not in MODES:
                log.warning("unknown health probe mode; using auto", extra={"mode": setting, "env": MODE_ENV})
                setting = "auto"
            if setting == "auto":
                why = netns_unsupported(self._api())
                self._enabled = why is None
                if why is None:
                    log.info("health checks: the reconciler probes each workspace's HTTP endpoint itself")
                else:
                    log.warning("health checks: the reconciler cannot probe inside containers; the runtime "
                                "image's wget does (a HEALTHCHECK)", extra={"reason": why, "env": MODE_ENV})
            else:
                self._enabled = setting == "reconciler"
        return self._enabled

    def label(self, health: Health) -> str:
        return ProbeConfig.of(health).encode()

    def _config(self, raw: str) -> ProbeConfig | None:
        if raw not in self._decoded:
            if len(self._decoded) > 4096:
                self._decoded.clear()
            self._decoded[raw] = ProbeConfig.decode(raw)
        return self._decoded[raw]

    # -- reading --------------------------------------------------------------------------------
    def state(self, info: Mapping[str, Any]) -> HealthState | None:
        """The health of a running container the engine just described, or None when it does not
        carry the probe label (the engine's own status applies). Queues a probe when one is due."""
        raw = ((info.get("Config") or {}).get("Labels") or {}).get(PROBE_LABEL)
        if raw is None:
            return None
        config = self._config(raw)
        if config is None:
            self._warn_once(f"label:{raw}", "health probe label unreadable: health unknown", {"label": raw})
            return HealthState.UNKNOWN
        if not self.enabled:
            self._warn_once("disabled", "a container asks for reconciler probes, which are off here: health unknown",
                            {"container": str(info.get("Id", ""))[:12], "env": MODE_ENV})
            return HealthState.UNKNOWN
        target = Target.of(info)
        with self._lock:
            self._targets[target.container_id] = target
        reported, due = self.verdicts.look(target.container_id, target.key, config, HealthState.STARTING)
        if due:
            self._submit(_GATE, target.container_id, config)
        return reported

    def overlay(self, rows: Sequence[Mapping[str, Any]], observed: list[ObservedWorkspace]) -> list[ObservedWorkspace]:
        """The listing's health for probed containers: their last verdict (UNKNOWN before any), and
        a probe queued for each one due. Nothing here waits on a probe or calls the engine."""
        probed: dict[str, str] = {}
        listed: list[str] = []
        for row in rows:
            cid = str(row.get("Id", ""))
            listed.append(cid)
            raw = (row.get("Labels") or {}).get(PROBE_LABEL)
            if raw is not None and row.get("State") == "running":
                probed[cid] = raw
        self.verdicts.keep_only(listed)
        with self._lock:
            for cid in [c for c in self._targets if c not in probed]:
                del self._targets[cid]
        if not probed:
            return observed
        if not self.enabled:
            return [o.model_copy(update={"health": HealthState.UNKNOWN})
                    if o.backend_ref in probed and o.running and o.health is not HealthState.UNKNOWN else o
                    for o in observed]
        wanted: dict[str, ProbeConfig] = {}
        for o in observed:
            raw = probed.get(o.backend_ref)
            config = self._config(raw) if raw is not None and o.running else None
            if config is not None:
                wanted[o.backend_ref] = config
        looked = self.verdicts.look_listed(wanted)
        out: list[ObservedWorkspace] = []
        for o in observed:
            if o.backend_ref not in probed or not o.running:
                out.append(o)
                continue
            health, due = looked.get(o.backend_ref, (HealthState.UNKNOWN, False))
            if due:
                self._submit(_LISTING, o.backend_ref, wanted[o.backend_ref])
            out.append(o if health is o.health else o.model_copy(update={"health": health}))
        return out

    def forget(self, container_id: str) -> None:
        self.verdicts.forget(container_id)
        with self._lock:
            self._targets.pop(container_id, None)

    # -- probing --------------------------------------------------------------------------------
    def _submit(self, priority: int, cid: str, config: ProbeConfig) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            while len(self._threads) < self._workers:
                thread = threading.Thread(target=self._work, name="health-probe", daemon=True)
                thread.start()
                self._threads.append(thread)
        self._queue.put((priority, next(self._seq), cid, config))

    def _work(self) -> None:
        while True:
            _, _, cid, config = self._queue.get()
            try:
                self.run_one(cid, config)
            except Exception as exc:  # a worker never dies of one probe; that one is "can't tell"
                log.warning("health probe failed", extra={"container": cid[:12], "error": type(exc).__name__})
                self.verdicts.unclaim(cid)

    def run_one(self, cid: str, config: ProbeConfig) -> HealthState | None:
        """Probe one container now (what a worker does); None when it is not running or not found."""
        with self._lock:
            target = self._targets.get(cid)
        fresh = target is None
        for _ in range(2):
            if target is None:
                target = self._look_up(cid)
                if target is None:
                    self.verdicts.unclaim(cid)
                    return None
                fresh = True
            result = probe(target, config, self._clock, self._opener)
            if result.ok is None and not fresh:  # maybe the container started anew meanwhile: look again
                target = None
                continue
            if result.ok is None:
                self._warn_once(f"cannot:{cid}", "health probe impossible: health unknown",
                                {"container": cid[:12], "reason": result.detail})
            return self.verdicts.record(cid, target.key, config, result)
        return None  # pragma: no cover - the loop always returns

    def _look_up(self, cid: str) -> Target | None:
        try:
            info = self._api().inspect_container(cid)
        except docker.errors.NotFound:
            self.forget(cid)
            return None
        except FOREIGN_ERRORS as exc:  # engine trouble: can't tell; the next poll tries again
            log.debug("health probe: inspect failed", extra={"container": cid[:12], "error": str(exc)})
            return None
        state = info.get("State") or {}
        if not state.get("Running") or state.get("Paused") or state.get("Restarting"):
            return None
        target = Target.of(info)
        with self._lock:
            self._targets[cid] = target
        return target

    def _warn_once(self, key: str, message: str, extra: Mapping[str, Any]) -> None:
        with self._lock:
            if key in self._warned:
                return
            if len(self._warned) > 10_000:
                self._warned.clear()
            self._warned.add(key)
        log.warning(message, extra=dict(extra))

