"""Entering a container's network namespace: a TCP socket that lives inside the workspace's network.

The part of the reconciler's own health probes (`docker_probe.py`) that needs privilege: a
short-lived thread enters the namespace (`setns`, the path the engine reports as
`NetworkSettings.SandboxKey`, else `/proc/<State.Pid>/ns/net` once `/proc/<pid>/cgroup` names the
container), creates the socket and ends, so no long-lived thread ever leaves its own namespace. A
socket stays in the namespace it was created in, so what is sent over it (`docker_probe_http.py`)
happens from the reconciler's own thread. Kept apart because it is the only code here that touches
namespaces and /proc, and `netns_unsupported` is what decides whether probing is possible at all.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

CLONE_NEWNET = 0x40000000
NETNS_DIRS = ("/var/run/docker/netns", "/run/docker/netns")  # where a rootful engine mounts them


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



class CannotProbe(Exception):
    """The reconciler could not make the probe: says nothing about the workload."""


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
