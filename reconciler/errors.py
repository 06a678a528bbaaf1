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


# The files every other file depends on, in the order their errors are shown: a problem in one of them
# is the cause of what goes wrong after it, so it comes first whatever the file names sort to.
ROOT_FILES = ("reconciler.yaml", "images.yaml", "plugins.yaml")


class ConfigError(ReconcilerError):
    """A user-caused problem in the config repo: always names file:line:col and what to do.

    `path` is where the value sits in its file's data (`("plugins", "notes", "track")`), when known.
    `follows` marks an error that only follows from an earlier one (the location of that cause): a
    workspace whose plugin is "not declared" because its entry in plugins.yaml failed. `ConfigErrors`
    does not show those, it counts them under their cause."""

    def __init__(
        self,
        message: str,
        location: Location | None = None,
        *,
        path: tuple[str | int, ...] = (),
        follows: Location | None = None,
    ) -> None:
        self.message = message
        self.location = location
        self.path = path
        self.follows = follows
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


def _order(error: ConfigError) -> tuple[int, str, int, int]:
    """Root files first (reconciler.yaml, images.yaml, plugins.yaml), then the others by file, line, column."""
    at = error.location
    if at is None:
        return (len(ROOT_FILES), "", 0, 0)
    rank = ROOT_FILES.index(at.file) if at.file in ROOT_FILES else len(ROOT_FILES)
    return (rank, at.file, at.line, at.column)


def followers_note(count: int) -> str:
    """The line shown under an error that others only follow from."""
    if count == 1:
        return "1 more error follows from this one and is not shown"
    return f"{count} more errors follow from this one and are not shown"


class ConfigErrors(ConfigError):
    """Every config error of one render, reported together, causes first.

    `errors` are the ones to show, root files first (`ROOT_FILES`), then by file, line, column;
    `suppressed` the ones that only follow from one of them (`ConfigError.follows`), each counted
    under its cause (`followers_of`). `str()` is one line per shown error, each cause followed by an
    indented line saying how many errors follow from it."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        ordered = sorted(errors, key=_order)
        shown = [e for e in ordered if e.follows is None] or ordered
        self.errors: list[ConfigError] = shown
        kept = {id(e) for e in shown}
        self.suppressed: list[ConfigError] = [e for e in ordered if id(e) not in kept]
        self._followers: dict[int, int] = {}
        for follower in self.suppressed:
            cause = _cause_of(follower, shown)
            self._followers[id(cause)] = self._followers.get(id(cause), 0) + 1
        first = shown[0] if shown else None
        super().__init__(first.message if first else "invalid config", first.location if first else None)

    def followers_of(self, error: ConfigError) -> int:
        """How many suppressed errors follow from `error` (one of `errors`)."""
        return self._followers.get(id(error), 0)

    def lines(self) -> list[tuple[ConfigError, int]]:
        """Each error shown, with the number of errors that follow from it."""
        return [(e, self.followers_of(e)) for e in self.errors]

    def __str__(self) -> str:
        out: list[str] = []
        for error, followers in self.lines():
            out.append(str(error))
            if followers:
                out.append(f"  {followers_note(followers)}")
        return "\n".join(out)


def _cause_of(follower: ConfigError, shown: list[ConfigError]) -> ConfigError:
    """The shown error at the follower's cause; else the first one in the cause's file; else the first."""
    cause = follower.follows
    exact = next((e for e in shown if cause is not None and e.location == cause), None)
    same_file = next((e for e in shown if cause is not None and e.location and e.location.file == cause.file), None)
    return exact or same_file or shown[0]


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
