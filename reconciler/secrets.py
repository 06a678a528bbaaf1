"""Secret values: read from the secrets directory the reconciler is given, never from git.

Lookup is most specific first: `<dir>/<org>/<key>/<NAME>`, `<dir>/<org>/<NAME>`, `<dir>/<NAME>`.
Values leave this module only for a workload's environment; everything else sees a keyed hash
(HMAC-SHA256), so rotating a secret changes the spec hash without the hash revealing the value.

The hash key lives with the secrets, in `<dir>/.hash-key` (no secret name can start with a dot, so
no workspace can ask for it): the same secrets give the same spec hashes on a fresh state dir and
on a second reconciler host, and losing the state dir recreates nothing. It is created once (0600)
when the directory is writable; a read-only secrets mount must carry it (create it with
`head -c 32 /dev/urandom > <dir>/.hash-key`). Without a secrets directory, or when it is read-only
and has none, the key falls back to `<state-dir>/secret-hash.key` (with a warning).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets as pysecrets
import tempfile
from pathlib import Path

from reconciler.errors import ReconcilerError

MAX_SECRET_BYTES = 64 * 1024
HASH_KEY_FILE = ".hash-key"
log = logging.getLogger(__name__)


def _read_or_create_key(path: Path) -> bytes | None:
    """The key in `path`, created (0600, exclusively: two processes agree) when missing; None if unwritable."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".hash-key.", dir=path.parent)  # 0600
        with os.fdopen(fd, "wb") as fh:
            fh.write(pysecrets.token_bytes(32))
        try:
            os.link(tmp, path)  # atomic and exclusive: a second process creating it at once keeps the first key
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    except OSError:
        return None
    return path.read_bytes()


class SecretStore:
    def __init__(self, directory: Path | None, hash_key: bytes) -> None:
        self.directory = directory
        self._key = hash_key

    @classmethod
    def open(cls, directory: Path | None, state_dir: Path) -> SecretStore:
        """The store for `directory`, its HMAC key read (or created once) beside the secrets."""
        if directory is not None and directory.is_dir():
            key = _read_or_create_key(directory / HASH_KEY_FILE)
            if key is not None:
                return cls(directory, key)
            log.warning("no %s in the read-only secrets directory; spec hashes of secrets depend on the state dir",
                        HASH_KEY_FILE, extra={"path": str(directory)})
        key = _read_or_create_key(state_dir / "secret-hash.key")
        if key is None:
            raise ReconcilerError(f"cannot create the secret hash key in {state_dir}")
        return cls(directory, key)

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
            where = f"the secrets directory {self.directory}" if self.directory else "a secrets directory (none given)"
            raise ReconcilerError(f"secret {name} for {org}/{key} not found in {where}")
        return _read_text(name, path)

    def digest(self, org: str, key: str, name: str) -> str:
        return hmac.new(self._key, self.value(org, key, name).encode(), hashlib.sha256).hexdigest()[:16]

    def env_for(self, org: str, key: str, names: tuple[str, ...]) -> dict[str, str]:
        return {name: self.value(org, key, name) for name in names}


def _read_text(name: str, path: Path) -> str:
    """A secret file as the text of one env value (an empty file is an empty value), or an error that
    names the secret and its path, never a byte of its content."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ReconcilerError(f"secret {name} ({path}) cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise ReconcilerError(f"secret {name} ({path}) is over the {MAX_SECRET_BYTES} byte limit")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ReconcilerError(f"secret {name} ({path}) is not UTF-8 text; store it as text") from None
    if "\x00" in text:
        raise ReconcilerError(f"secret {name} ({path}) contains a NUL byte, which no env value can hold")
    return text.rstrip("\r\n")
