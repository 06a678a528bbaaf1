"""A git work clone for tests: write files, commit and push with the real git CLI."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tests.support.git_cli import git


class Work:
    """A non-bare work clone on branch `main` whose `origin` is a bare repo path (no auth needed to
    seed data) or a smart-HTTP URL (pushes are real HTTP pushes)."""

    def __init__(self, path: Path, origin: str | Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        git("init", "-q", "-b", "main", str(path))
        git("remote", "add", "origin", str(origin), cwd=path)

    def write(self, files: Mapping[str, str | None]) -> None:
        """Write (or delete, for None) files given by path relative to the work tree."""
        for rel, content in files.items():
            target = self.path / rel
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)

    def commit(self, files: Mapping[str, str | None] | None = None, message: str = "change", *,
               branch: str | None = None) -> str:
        """Commit everything (after writing `files`), first moving `branch` here when given
        (`checkout -B`); returns the new commit SHA."""
        if branch:
            git("checkout", "-q", "-B", branch, cwd=self.path)
        self.write(files or {})
        git("add", "-A", cwd=self.path)
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.path)
        return git("rev-parse", "HEAD", cwd=self.path)

    def push(self, *refs: str, force: bool = False) -> None:
        git("push", "-q", *(["--force"] if force else []), "origin", *(refs or ("main",)), cwd=self.path)

    def run(self, *args: str) -> str:
        return git(*args, cwd=self.path)
