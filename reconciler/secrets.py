"""Secret values: read from the secrets directory the reconciler is given, never from git.

Lookup is most specific first: `<dir>/<org>/<key>/<NAME>`, `<dir>/<org>/<NAME>`, `<dir>/<NAME>`.
Values leave this module only for a workload's environment; everything else sees a keyed hash
(HMAC-SHA256 with a per-installation key), so rotating a secret changes the spec hash without
the hash revealing the value.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets as pysecrets
from pathlib import Path

from reconciler.errors import ReconcilerError

MAX_SECRET_BYTES = 64 * 1024


class SecretStore:
    def __init__(self, directory: Path | None, hash_key: bytes) -> None:
        self.directory = directory
        self._key = hash_key

    @classmethod
    def open(cls, directory: Path | None, state_dir: Path) -> SecretStore:
        """Use `state_dir/secret-hash.key` as the HMAC key, creating it (0600) on first use."""
        key_file = state_dir / "secret-hash.key"
        if not key_file.exists():
            state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pysecrets.token_bytes(32))
        return cls(directory, key_file.read_bytes())

    def _path(self, org: str, key: str, name: str) -> Path | None:
        if self.directory is None:
            return None
        for candidate in (self.directory / org / key / name, self.directory / org / name, self.directory / name):
            if candidate.is_file():
                return candidate
        return None

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """(path, size, mtime) of every file under the directory: changes when a secret is rotated."""
        if self.directory is None or not self.directory.is_dir():
            return ()
        found: list[tuple[str, int, int]] = []
        for dirpath, _dirs, files in os.walk(self.directory):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                found.append((path, st.st_size, st.st_mtime_ns))
        return tuple(sorted(found))

    def has(self, org: str, key: str, name: str) -> bool:
        return self._path(org, key, name) is not None

    def value(self, org: str, key: str, name: str) -> str:
        path = self._path(org, key, name)
        if path is None:
            raise ReconcilerError(f"secret {name} for {org}/{key} not found in the secrets directory")
        data = path.read_bytes()[:MAX_SECRET_BYTES]
        return data.decode("utf-8").rstrip("\r\n")

    def digest(self, org: str, key: str, name: str) -> str:
        return hmac.new(self._key, self.value(org, key, name).encode(), hashlib.sha256).hexdigest()[:16]

    def env_for(self, org: str, key: str, names: tuple[str, ...]) -> dict[str, str]:
        return {name: self.value(org, key, name) for name in names}
