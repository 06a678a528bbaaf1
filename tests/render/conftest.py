"""Helpers to write small config repositories on disk for render tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.errors import ConfigErrors
from reconciler.model.desired import DesiredState
from reconciler.render import render_repo
from tests.support.policy import policy_for

IMAGES = "images:\n  claude-code: 127.0.0.1:5000/ws-claude:latest\n  langgraph: 127.0.0.1:5000/ws-lg:v1\n"
WriteRepo = Callable[[dict[str, str]], Path]


@pytest.fixture
def write_repo(tmp_path: Path) -> WriteRepo:
    """Write {relative path: text} under a fresh repo dir (images.yaml added unless given)."""

    def write(files: dict[str, str], root: Path | None = None) -> Path:
        repo = root or tmp_path / "repo"
        files = {"images.yaml": IMAGES, **files}
        for rel, text in files.items():
            path = repo / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        (repo / "orgs").mkdir(parents=True, exist_ok=True)
        return repo

    return write


POLICY = policy_for("127.0.0.1:3000/agents/", "git.example.com/acme/", "127.0.0.1:3000/acme/")


def render_ok(repo: Path, **kw: object) -> DesiredState:
    kw.setdefault("policy", POLICY)
    return render_repo(repo, **kw)  # type: ignore[arg-type]


def render_errors(repo: Path, **kw: object) -> list[str]:
    kw.setdefault("policy", POLICY)
    with pytest.raises(ConfigErrors) as info:
        render_repo(repo, **kw)  # type: ignore[arg-type]
    return [str(e) for e in info.value.errors]


class LocalFetcher:
    """Serves `!external` from `<base>/<repo>/<ref>/` directories and records every call."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.calls: list[tuple[str, str]] = []

    def fetch(self, repo: str, ref: str, url: str | None) -> Path:
        self.calls.append((repo, ref))
        return self.base / repo / ref
