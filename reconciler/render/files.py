"""Content of a workspace's `files_dir`: every file with its sha256, confined to the tree.

SKILL.md files are hashed apart from the rest: a change to them alone updates files in place
without restarting the workload. Memory stays bounded whatever the tree holds: each file's size is
checked (`stat`) before it is opened, then it is hashed in chunks, and a file that grows while it
is read stops at the limit.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from reconciler.errors import ConfigError, Location
from reconciler.model.desired import FileEntry, FilesRef

MAX_FILES = 2000
MAX_TOTAL_BYTES = 20 * 1024 * 1024
SKILL_FILE = "SKILL.md"
CHUNK = 1024 * 1024


def digest(items: list[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for path, sha in items:
        h.update(f"{path}\0{sha}\n".encode())
    return h.hexdigest()


def scan_files(directory: Path, root: Path, display: str, at: Location) -> FilesRef:
    """Hash every regular file under `directory` (symlinks must stay inside `root`)."""
    if not directory.is_dir():
        raise ConfigError(f"files_dir {display!r} is not a directory in the repository", at)
    entries: list[FileEntry] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=False):
        dirnames.sort()
        for dirname in list(dirnames):
            full = Path(dirpath, dirname)
            if dirname == ".git" or (full.is_symlink() and not _inside(full, root)):
                if dirname != ".git":
                    raise ConfigError(f"files_dir {display!r}: {full.name} links outside the repository", at)
                dirnames.remove(dirname)
        for name in sorted(filenames):
            full = Path(dirpath, name)
            if full.is_symlink() and not _inside(full, root):
                raise ConfigError(f"files_dir {display!r}: {name} links outside the repository", at)
            if not full.is_file():
                continue
            rel = full.relative_to(directory).as_posix()
            if len(entries) >= MAX_FILES:
                raise ConfigError(f"files_dir {display!r} holds more than {MAX_FILES} files", at)
            hashed = None
            if total + full.stat().st_size <= MAX_TOTAL_BYTES:  # checked before the file is opened
                hashed = hash_file(full, MAX_TOTAL_BYTES - total)
            if hashed is None:
                raise ConfigError(f"files_dir {display!r} holds more than {MAX_TOTAL_BYTES} bytes (at {rel})", at)
            sha, size = hashed
            total += size
            entries.append(FileEntry(path=rel, sha256=sha, size=size))
    entries.sort(key=lambda e: e.path)
    plain = [(e.path, e.sha256) for e in entries if Path(e.path).name != SKILL_FILE]
    skills = [(e.path, e.sha256) for e in entries if Path(e.path).name == SKILL_FILE]
    return FilesRef(
        root=str(directory),
        display=display,
        entries=tuple(entries),
        content_hash=digest(plain),
        skills_hash=digest(skills) if skills else "",
    )


def hash_file(path: Path, limit: int) -> tuple[str, int] | None:
    """(sha256, size) of the file read in chunks; None as soon as it holds more than `limit` bytes."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(min(CHUNK, limit - size + 1)):
            size += len(chunk)
            if size > limit:
                return None
            h.update(chunk)
    return h.hexdigest(), size


def _inside(path: Path, root: Path) -> bool:
    resolved = Path(os.path.realpath(path))
    return resolved == root or root in resolved.parents
