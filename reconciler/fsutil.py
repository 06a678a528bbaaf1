"""Small file-system helpers shared by the modules that keep state in files: atomic writes, a
cross-process lock, and directories written once and trusted only with a completion marker."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` through a temp file beside it and a rename: readers see old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive `flock` on `path`: serialises threads (one open file each) and processes alike."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".complete")


def is_complete(target: Path) -> bool:
    """A materialised directory is trusted only when its completion marker sits beside it."""
    return _marker(target).is_file() and target.is_dir() and not target.is_symlink()


def materialize(target: Path, write: Callable[[Path], None]) -> Path:
    """Create directory `target` once: `write` fills a temp dir, renamed into place, then marked complete.

    A leftover without its marker (a crash half-way) is removed and written again. Writers of one
    target take turns under a lock; writers of different targets never wait for each other.
    """
    if is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.with_name(target.name + ".lock")):
        if is_complete(target):
            return target
        _marker(target).unlink(missing_ok=True)
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            write(tmp)
            tmp.chmod(0o755)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _marker(target).write_text(f"complete {time.time():.0f}\n")
    return target


def remove_materialized(target: Path) -> bool:
    """Remove what `materialize` wrote at `target` (its marker first, so a half-removed directory is
    never trusted), under the writers' lock; True when there was something to remove."""
    lock = target.with_name(target.name + ".lock")
    with file_lock(lock):
        marker = _marker(target)
        found = marker.exists() or target.exists() or target.is_symlink()
        marker.unlink(missing_ok=True)
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
    lock.unlink(missing_ok=True)
    return found


S = TypeVar("S")
_SHARED: dict[tuple[object, Path], Any] = {}
_SHARED_LOCK = threading.Lock()


def one_per_file(make: Callable[[Path], S], path: Path) -> S:
    """The one `make(path)` of this process for the file at `path` (by its resolved path), so stores
    built by different callers never hold diverging copies of the same file."""
    key = (make, path.resolve())
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = make(path)
        found: S = _SHARED[key]
        return found
