"""From `--source` and `--ref` to a tree on disk at an exact revision.

A plain directory is rendered as it is (no revision: nothing to post statuses on). A local git
repository or a git URL goes through a `GitMirror` under the state dir: fetched incrementally,
resolved to a full SHA, exported immutably per SHA, so two renders never share a checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import SourceError
from reconciler.model.credentials import Credentials
from reconciler.source.mirror import GitMirror


@dataclass(frozen=True)
class Checkout:
    root: Path  # the tree to render
    revision: str | None  # full commit SHA, None for a plain directory
    ref: str | None  # what was asked for (branch, tag, SHA)
    mirror: GitMirror | None = None


def is_git_source(source: str) -> bool:
    if "://" in source or source.startswith("git@"):
        return True
    path = Path(source)
    return (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())


def checkout(source: str, ref: str | None, state_dir: Path, auth: Credentials | None = None) -> Checkout:
    if not is_git_source(source):
        path = Path(source)
        if not path.is_dir():
            raise SourceError(f"--source {source!r} is neither a directory nor a git repository URL")
        if ref:
            raise SourceError(f"--ref {ref!r} needs a git source; {source} is a plain directory")
        return Checkout(path.resolve(), None, None)
    mirror = GitMirror(source if "://" in source else str(Path(source).resolve()), state_dir, auth=auth)
    mirror.fetch()
    sha = mirror.resolve(ref or "HEAD")
    return Checkout(mirror.export_tree(sha), sha, ref or "HEAD", mirror)
