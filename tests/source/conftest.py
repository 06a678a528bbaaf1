"""Fixtures for the git source tests: a real smart-HTTP git server on loopback and a work clone.

`git_server` serves bare repos under a tmp directory through `GitHttpApp`, behind a small WSGI
wrapper that demands HTTP Basic auth (password = `TOKEN`) for repos under `/private/`. `Work`
commits and pushes with the real git CLI.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.git_cli import git
from tests.support.git_http import GitHttpApp, ServedApp, init_bare_repo

TOKEN = "tok-SECRET-123"




class BasicAuthGate:
    """WSGI wrapper: repos under /private/ need Basic auth with TOKEN as password (any username)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.requests = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.requests += 1
        if environ.get("PATH_INFO", "").startswith("/private/"):
            header = environ.get("HTTP_AUTHORIZATION", "")
            ok = False
            if header.startswith("Basic "):
                _, _, password = base64.b64decode(header[6:]).decode().partition(":")
                ok = password == TOKEN
            if not ok:
                start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"'),
                                                    ("Content-Type", "text/plain")])
                return [b"auth required"]
        return self.app(environ, start_response)


class GitServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.gate = BasicAuthGate(GitHttpApp(root))
        self.served = ServedApp(self.gate)
        self.url = self.served.url
        self.host = f"127.0.0.1:{self.served.port}"
        self.running = False

    def repo(self, owner: str, name: str, branch: str = "main") -> Path:
        return init_bare_repo(self.root, owner, name, branch)

    def repo_url(self, owner: str, name: str) -> str:
        return f"{self.url}/{owner}/{name}.git"

    def stop(self) -> None:
        if self.running:
            self.served.__exit__(None, None, None)
            self.running = False


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    server = GitServer(tmp_path / "served")
    server.served.__enter__()
    server.running = True
    try:
        yield server
    finally:
        server.stop()


class Work:
    """A non-bare work clone that pushes to one bare repo (by path: no auth needed to seed data)."""

    def __init__(self, path: Path, bare: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        git("init", "-q", "-b", "main", str(path))
        git("remote", "add", "origin", str(bare), cwd=path)

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        """Write (or delete, for None) files and commit; returns the new commit SHA."""
        for rel, content in files.items():
            target = self.path / rel
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        git("add", "-A", cwd=self.path)
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.path)
        return git("rev-parse", "HEAD", cwd=self.path)

    def push(self, *refs: str, force: bool = False) -> None:
        git("push", "-q", *(["--force"] if force else []), "origin", *(refs or ("main",)), cwd=self.path)

    def run(self, *args: str) -> str:
        return git(*args, cwd=self.path)


@pytest.fixture
def make_work(tmp_path: Path) -> Callable[[Path], Work]:
    count = iter(range(1000))

    def make(bare: Path) -> Work:
        return Work(tmp_path / f"work{next(count)}", bare)

    return make


def dead_port() -> int:
    """A loopback port with nothing listening."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
