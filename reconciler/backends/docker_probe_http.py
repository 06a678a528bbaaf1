"""One HTTP health check: GET `http://127.0.0.1:<port><path>` over a socket made inside the container.

What a probe asks (`ProbeConfig`, carried as JSON in the container's probe label) and how its answer
reads: 2xx and 3xx pass (as the in-image `wget` did); refused, reset, no answer within the timeout,
another status or no HTTP at all is a failure; a socket that could not be made
(`docker_probe_netns.py`) is "cannot probe" (`ok=None`), which says nothing about the workload.
Kept apart from the scheduling (`docker_probe.py`) and the verdicts (`docker_probe_verdicts.py`):
this is the only part that speaks to the workload.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.backends.docker_probe_netns import CannotProbe, Target, socket_in
from reconciler.model.config import Health

_MAX_STATUS_LINE = 1024


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
class ProbeResult:
    ok: bool | None  # None: the reconciler could not probe (never counted as a failure)
    detail: str = ""


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
