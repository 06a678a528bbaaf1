"""One exception root for the whole reconciler; the type decides what happens next.

    ReconcilerError
    ├── ConfigError          the change is wrong (bad YAML, schema, path): status `failure`, never retried
    │   ├── ConfigErrors     several ConfigErrors reported together
    │   └── PolicyRefusal    the change asks for what the operator policy forbids: fails the whole commit,
    │                        even when it is written in one org's template
    ├── SourceError          git fetch/clone/resolve failed (network, auth, missing ref)
    │   └── SourceUnreachable  the remote could not be reached (connection, DNS, timeout, 5xx): never a
    │                        config failure, whatever config names it (the pass is `error`, retried)
    ├── ForgeError           a Gitea API call failed (names the call and the status, never the token)
    └── BackendError         the backend could not do an action
        └── TransientBackendError   worth retrying with backoff (engine unreachable, 5xx, timeout)

Foreign exceptions (docker, pygit2, httpx) are mapped to these at the edge that
imports the foreign library.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class ReconcilerError(Exception):
    """Root of every error the reconciler raises on purpose."""


@dataclass(frozen=True)
class Location:
    """Where in the config repo something came from (1-based line and column)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


class ConfigError(ReconcilerError):
    """A user-caused problem in the config repo: always names file:line:col and what to do."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ConfigErrors(ConfigError):
    """Every config error of one render, reported together (sorted by file, line)."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self.errors = sorted(
            errors, key=lambda e: (e.location.file, e.location.line, e.location.column) if e.location else ("", 0, 0)
        )
        first = self.errors[0] if self.errors else None
        super().__init__(
            first.message if first else "invalid config", first.location if first else None
        )

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class PolicyRefusal(ConfigError):
    """A value outside the operator policy (a source, a reserved env name, a resource ceiling). Unlike
    another error in an org template it is not scoped to that org: the whole commit is refused."""


class SourceError(ReconcilerError):
    """Fetching or reading the config repo (or an external subtree, a plugin) failed."""


class SourceUnreachable(SourceError):
    """The remote did not answer (connection refused, DNS, TLS, timeout, a 5xx): the reconciler's
    trouble, not the change's; retried like any `error`."""


class ForgeError(ReconcilerError):
    """A call to the forge (Gitea) failed; the message names the call and the HTTP status."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


class BackendError(ReconcilerError):
    """The backend failed to carry out an action."""


class TransientBackendError(BackendError):
    """A backend failure worth retrying: unreachable engine, timeout, 5xx. Never means 'dead'."""


class AnotherWriter(ReconcilerError):
    """Another reconciler holds this instance (its state-dir lock, or its lease on the engine): this one
    must not write. The message names the holder."""
