"""One writer per instance: the state-dir lock, then the engine lease, then recovery.

Every command that changes workspaces (`apply`, `run`) goes through `sole_writer`:
1. the state dir's lock (`<state_dir>/reconciler.lock`, an `flock`): a second process on the same
   state dir is refused at once, naming the holder (its pid, command and start time);
2. the backend's lease on the instance id (for Docker, an object in the engine, see
   `backends/docker_lease.py`): a second reconciler with another state dir, or on another host,
   is refused the same way;
3. `recover`: what a killed predecessor left half-done is finished or undone before anything is
   planned (`Backend.recover`).
Both are released on exit; the kernel drops the lock of a killed process, and a killed holder's
lease goes stale (see the lease's rules).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from reconciler.backends.base import Backend, Lease
from reconciler.errors import AnotherWriter
from reconciler.fsutil import atomic_write_text

log = logging.getLogger(__name__)
LOCK_NAME = "reconciler.lock"


class StateLock:
    """An exclusive, non-blocking `flock` on `<state_dir>/reconciler.lock`, held for as long as the
    command writes; it dies with the process (even on `kill -9`), so a stale file never blocks."""

    def __init__(self, state_dir: Path, command: str) -> None:
        self.path = Path(state_dir) / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0).decode(errors="replace"))
            os.close(fd)
            raise AnotherWriter(f"another reconciler is already running with state dir {self.path.parent}: "
                                f"{holder}; wait for it to finish or stop it (or give this one its own "
                                "--state-dir and --instance-id)") from None
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "command": self.command, "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _describe(raw: str) -> str:
    try:
        info = json.loads(raw)
        return f"pid {info['pid']} on {info.get('host', '?')} (`{info['command']}`, since {info['since']})"
    except (ValueError, KeyError, TypeError):
        return "a process that did not say who it is"


def owner_id(state_dir: Path) -> str:
    """This state dir's id on the engine lease (made once, kept in `<state_dir>/owner-id`)."""
    path = state_dir / "owner-id"
    try:
        value = path.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = uuid.uuid4().hex
    atomic_write_text(path, value + "\n")
    return value


def claim(backend: Backend, state_dir: Path, command: str) -> Lease:
    """The backend's lease on its instance, held (raises AnotherWriter naming the holder)."""
    holder = f"pid {os.getpid()} on {socket.gethostname()} (`{command}`, state dir {state_dir})"
    lease = backend.lease(owner_id(state_dir), holder)
    lease.acquire()
    return lease


def recover(backend: Backend) -> list[str]:
    """Finish or undo what a killed predecessor left half-done; the workspaces it acted on."""
    recovered = backend.recover()
    if recovered:
        log.info("recovered what an interrupted run left half-done",
                 extra={"outcome": f"{len(recovered)} workspace(s)", "context": " ".join(recovered)})
    return recovered


@contextlib.contextmanager
def sole_writer(backend: Backend, state_dir: Path, command: str) -> Iterator[list[str]]:
    """Hold the lock and the lease, recover, then run the body; yields the recovered workspaces."""
    lock = StateLock(state_dir, command)
    lock.acquire()
    try:
        lease = claim(backend, state_dir, command)
        try:
            yield recover(backend)
        finally:
            lease.release()
    finally:
        lock.release()
