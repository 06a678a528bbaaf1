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


def _open(mirror: GitMirror) -> pygit2.Repository:
    return pygit2.Repository(str(mirror.path), RepositoryOpenFlag.NO_SEARCH)


def first_parents(mirror: GitMirror, sha: str, limit: int) -> list[str]:
    """Up to `limit` commits before `sha` along first parents, nearest first (`sha` left out)."""
    try:
        commit = _open(mirror)[sha].peel(pygit2.Commit)
        out: list[str] = []
        while commit.parent_ids and len(out) < limit:
            commit = commit.parents[0]
            out.append(str(commit.id))
        return out
    except (KeyError, ValueError, pygit2.GitError) as exc:
        raise SourceError(f"cannot walk the history of {sha[:12]}: {exc}") from None


def only_in(mirror: GitMirror, head: str, base: str, limit: int) -> list[str] | None:
    """The commits reachable from `head` and not from `base` (`git rev-list base..head`); None when
    there are more than `limit`."""
    try:
        repo = _open(mirror)
        walker = repo.walk(repo[head].peel(pygit2.Commit).id)
        walker.hide(repo[base].peel(pygit2.Commit).id)
        out: list[str] = []
        for commit in walker:
            if len(out) == limit:
                return None
            out.append(str(commit.id))
        return out
    except (KeyError, ValueError, pygit2.GitError) as exc:
        raise SourceError(f"cannot list {base[:12]}..{head[:12]}: {exc}") from None


def merges_to(mirror: GitMirror, merged: str, ours: str, ancestor: str, theirs: str) -> bool:
    """The tree of `merged` is exactly `theirs`'s change since `ancestor` applied to `ours` (a three-way
    merge without conflicts): nothing else came in with it."""
    try:
        repo = _open(mirror)

        def tree(sha: str) -> pygit2.Tree:
            return repo[sha].peel(pygit2.Tree)

        index = repo.merge_trees(tree(ancestor), tree(ours), tree(theirs))
        if index.conflicts is not None:
            return False
        return index.write_tree(repo) == tree(merged).id
    except (KeyError, ValueError, pygit2.GitError) as exc:
        raise SourceError(f"cannot compare {merged[:12]} with its merge: {exc}") from None
