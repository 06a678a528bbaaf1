"""Whether one commit of a mirror is reachable from another (the watched branch's head): local, no network."""

from __future__ import annotations

import pygit2
from pygit2.enums import RepositoryOpenFlag

from reconciler.errors import SourceError
from reconciler.source.mirror import GitMirror


def reachable(mirror: GitMirror, sha: str, head: str) -> bool:
    """`sha` is `head` or one of its ancestors, in the mirror as last fetched."""
    if sha == head:
        return True
    try:
        repo = pygit2.Repository(str(mirror.path), RepositoryOpenFlag.NO_SEARCH)
        return bool(repo.descendant_of(head, sha))
    except (KeyError, ValueError, pygit2.GitError) as exc:
        raise SourceError(f"cannot tell whether {sha[:12]} is reachable from {head[:12]}: {exc}") from None
