"""One daemon per state dir: an exclusive, non-blocking `flock` held for the process's lifetime.

Two daemons on one state dir would run two reconcile loops against the same mirror, journal and
workspaces; the second one must refuse to start and say which process holds the lock. The lock
dies with the process (even on `kill -9`), so a stale lock file never blocks a restart.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "daemon.lock"


class AlreadyRunning(Exception):
    """Another daemon holds the state dir."""


class StateDirLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"another reconciler daemon (pid {holder}) is already running with state dir "
                f"{self.path.parent}; stop it first or give this one its own --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
