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
"""

from __future__ import annotations

import ctypes
import itertools
import json
import logging
import os
import queue
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from reconciler.backends.docker_engine import FOREIGN_ERRORS
from reconciler.backends.docker_health import parse_docker_time
from reconciler.model.config import Health
from reconciler.model.enums import HealthState
from reconciler.model.observed import ObservedWorkspace

log = logging.getLogger(__name__)

PROBE_LABEL = "reconciler.health-probe"  # on workload containers the reconciler probes itself
MODE_ENV = "RECONCILER_HEALTH_PROBE"
MODES = ("auto", "reconciler", "image")
CLONE_NEWNET = 0x40000000
WORKERS = 8
_GATE, _LISTING = 0, 1  # queue priorities: a gate waits on its probes, a listing does not
_MAX_STATUS_LINE = 1024
NETNS_DIRS = ("/var/run/docker/netns", "/run/docker/netns")  # where a rootful engine mounts them
UNSEEN = ("", 0)  # the start of a container known from a listing only (no StartedAt there)


@dataclass(frozen=True)
class ProbeConfig:
    port: int
    path: str
    interval: float
    timeout: float
    retries: int
    start_period: float

    @classmethod
    def of(cls, health: Health) -> ProbeConfig:
        return cls(port=health.port, path=health.path, interval=health.interval_seconds,
                   timeout=health.timeout_seconds, retries=health.retries, start_period=health.start_period_seconds)

    def encode(self) -> str:
        return json.dumps({"port": self.port, "path": self.path, "interval": self.interval, "timeout": self.timeout,
                           "retries": self.retries, "start_period": self.start_period}, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str) -> ProbeConfig | None:
        try:
            d = json.loads(raw)
            config = cls(port=int(d["port"]), path=str(d["path"]), interval=float(d["interval"]),
                         timeout=float(d["timeout"]), retries=int(d["retries"]),
                         start_period=float(d.get("start_period", 0)))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        ok = 0 < config.port < 65536 and config.path.startswith("/") and not any(c in config.path for c in " \r\n")
        return config if ok and config.interval > 0 and config.timeout > 0 and config.retries >= 1 else None


@dataclass(frozen=True)
class Target:
    """Where one running container's network namespace is, and which start of it that is."""

    container_id: str
    sandbox: str  # NetworkSettings.SandboxKey: the engine's bind mount of the namespace
    pid: int  # State.Pid, as the engine's pid namespace numbers it
    started_at: str
    restart_count: int

    @property
    def key(self) -> tuple[str, int]:
        return self.started_at, self.restart_count

    @classmethod
    def of(cls, info: Mapping[str, Any]) -> Target:
        state = info.get("State") or {}
        return cls(container_id=str(info.get("Id", "")),
                   sandbox=str((info.get("NetworkSettings") or {}).get("SandboxKey") or ""),
                   pid=int(state.get("Pid") or 0), started_at=str(state.get("StartedAt") or ""),
                   restart_count=int(info.get("RestartCount") or 0))


@dataclass(frozen=True)
class ProbeResult:
    ok: bool | None  # None: the reconciler could not probe (never counted as a failure)
    detail: str = ""


class CannotProbe(Exception):
    """The reconciler could not make the probe: says nothing about the workload."""


# -- entering a network namespace ------------------------------------------------------------

_libc: list[Any] = [None]


def _setns(fd: int) -> None:
    native = getattr(os, "setns", None)  # Python 3.12+
    if native is not None:
        native(fd, CLONE_NEWNET)
        return
    if _libc[0] is None:
        _libc[0] = ctypes.CDLL(None, use_errno=True)
    if _libc[0].setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _in_fresh_thread(path: str, make: Callable[[], socket.socket] | None) -> socket.socket | None:
    """Enter the namespace at `path` in a new thread (which then ends: no other thread ever leaves
    its own namespace) and create the socket there. Raises CannotProbe."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            out["sock"] = make() if make is not None else None
        except Exception as exc:  # noqa: BLE001 - whatever it is, this probe could not be made
            out["error"] = exc

    thread = threading.Thread(target=run, name="netns-probe", daemon=True)
    thread.start()
    thread.join()
    if "error" in out:
        exc = out["error"]
        raise CannotProbe(f"cannot enter {path}: {getattr(exc, 'strerror', None) or exc}")
    sock: socket.socket | None = out.get("sock")
    if make is not None and sock is None:
        raise CannotProbe(f"cannot enter {path}")
    return sock


def _tcp_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def _names_container(pid: int, container_id: str) -> bool:
    """`/proc/<pid>` is that container's process (a pid alone could be another namespace's, or reused)."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as f:
            return container_id in f.read()
    except OSError:
        return False


def _made(sock: socket.socket | None) -> socket.socket:
    if sock is None:
        raise CannotProbe("no socket")
    return sock


def socket_in(target: Target) -> socket.socket:
    """A TCP socket created inside the target's network namespace. Raises CannotProbe."""
    reasons: list[str] = []
    if target.sandbox:
        try:
            return _made(_in_fresh_thread(target.sandbox, _tcp_socket))
        except CannotProbe as exc:
            reasons.append(str(exc))
    if target.pid > 0 and target.container_id and _names_container(target.pid, target.container_id):
        return _made(_in_fresh_thread(f"/proc/{target.pid}/ns/net", _tcp_socket))
    reasons.append(f"pid {target.pid} is not this container's in the reconciler's view")
    raise CannotProbe("; ".join(reasons))


def netns_unsupported(api: Any) -> str | None:
    """Why this process cannot enter the engine's containers' network namespaces (None: it can)."""
    base = str(getattr(api, "base_url", ""))
    if base != "http+docker://localhost":
        return f"the engine is not on a local unix socket ({base or 'unknown'})"
    if not os.path.isdir("/proc/self/ns"):
        return "no /proc/self/ns (not Linux?)"
    try:
        _in_fresh_thread("/proc/self/ns/net", None)
    except CannotProbe as exc:
        return f"{exc} (needs root, CAP_SYS_ADMIN)"
    if not any(os.path.isdir(d) for d in NETNS_DIRS):
        return f"the engine's network namespaces are not in sight (no {NETNS_DIRS[0]})"
    return None


# -- the probe --------------------------------------------------------------------------------

def http_status(sock: socket.socket, port: int, path: str, timeout: float,
                clock: Callable[[], float]) -> ProbeResult:
    """GET `path` from 127.0.0.1:`port` over `sock` (closed afterwards); 2xx/3xx pass."""
    deadline = clock() + timeout

    def remaining() -> float:
        left = deadline - clock()
        if left <= 0:
            raise TimeoutError
        return left

    try:
        with sock:
            sock.settimeout(remaining())
            sock.connect(("127.0.0.1", port))
            request = (f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: reconciler-health-probe\r\n"
                       "Accept: */*\r\nConnection: close\r\n\r\n")
            sock.settimeout(remaining())
            sock.sendall(request.encode("ascii"))
            head = b""
            while b"\r\n" not in head and b"\n" not in head and len(head) < _MAX_STATUS_LINE:
                sock.settimeout(remaining())
                chunk = sock.recv(_MAX_STATUS_LINE - len(head))
                if not chunk:
                    break
                head += chunk
    except TimeoutError:
        return ProbeResult(False, f"no answer within {timeout:g}s")
    except ConnectionRefusedError:
        return ProbeResult(False, f"connection refused on port {port}")
    except OSError as exc:
        return ProbeResult(False, f"{type(exc).__name__}: {exc.strerror or exc}")
    line = head.split(b"\n", 1)[0].decode("latin-1").strip()
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return ProbeResult(False, f"no HTTP answer ({line[:60]!r})" if line else "closed without an answer")
    code = int(parts[1])
    return ProbeResult(200 <= code < 400, f"HTTP {code}")


def probe(target: Target, config: ProbeConfig, clock: Callable[[], float],
          opener: Callable[[Target], socket.socket] = socket_in) -> ProbeResult:
    try:
        sock = opener(target)
    except CannotProbe as exc:
        return ProbeResult(None, str(exc))
    return http_status(sock, config.port, config.path, config.timeout, clock)


# -- verdicts ---------------------------------------------------------------------------------

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


# -- the prober ---------------------------------------------------------------------------------

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

