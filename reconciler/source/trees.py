"""Writing a commit's tree to a directory: blobs with their modes, symlinks kept as symlinks (never
followed), submodules skipped, unsafe entry names refused, bounded in size and entry count.
(`GitMirror.export_tree` writes into a temp directory renamed into place once complete.)"""

from __future__ import annotations

import os
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from reconciler.errors import SourceError

MAX_TREE_BYTES = 512 * 1024 * 1024
MAX_TREE_ENTRIES = 200_000


class TreeWriter:
    """Blobs become files with their mode, symlinks stay symlinks (never followed), submodules skipped."""

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self.bytes = 0
        self.entries = 0

    def write(self, tree: pygit2.Tree, into: Path) -> None:
        for entry in tree:
            name = entry.name or ""
            if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
                raise SourceError(f"tree contains an unsafe entry name {name!r}")
            self.entries += 1
            if self.entries > MAX_TREE_ENTRIES:
                raise SourceError(f"tree has more than {MAX_TREE_ENTRIES} entries")
            path = into / name
            mode = entry.filemode
            if mode == FileMode.TREE:
                path.mkdir(mode=0o755)
                self.write(self.repo[entry.id].peel(pygit2.Tree), path)
            elif mode == FileMode.LINK:
                os.symlink(os.fsdecode(self.repo[entry.id].peel(pygit2.Blob).data), path)
            elif mode in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
                executable = mode == FileMode.BLOB_EXECUTABLE
                self._file(path, self.repo[entry.id].peel(pygit2.Blob).data, 0o755 if executable else 0o644)
            # FileMode.COMMIT (a submodule) is skipped on purpose.

    def _file(self, path: Path, data: bytes, mode: int) -> None:
        self.bytes += len(data)
        if self.bytes > MAX_TREE_BYTES:
            raise SourceError(f"tree is larger than {MAX_TREE_BYTES} bytes")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
