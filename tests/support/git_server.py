"""A real smart-HTTP git server on loopback for tests: bare repos under a directory, served through
`devtools.git_http.GitHttpApp` behind a small WSGI wrapper that demands HTTP Basic auth (password =
`TOKEN`) for repos under `/private/`."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from devtools.git_http import GitHttpApp, ServedApp, init_bare_repo

TOKEN = "tok-SECRET-123"


class BasicAuthGate:
    """WSGI wrapper: repos under /private/ need Basic auth with TOKEN as password (any username)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.requests = 0
        self.authorizations: list[str] = []  # every Authorization header received, as sent

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.requests += 1
        if environ.get("HTTP_AUTHORIZATION"):
            self.authorizations.append(environ["HTTP_AUTHORIZATION"])
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
    """Serves `<root>/<owner>/<name>.git` at `<url>/<owner>/<name>.git` once `start()`ed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.gate = BasicAuthGate(GitHttpApp(root))
        self.served = ServedApp(self.gate)
        self.url = self.served.url
        self.host = f"127.0.0.1:{self.served.port}"
        self.running = False

    def start(self) -> GitServer:
        self.served.__enter__()
        self.running = True
        return self

    def repo(self, owner: str, name: str, branch: str = "main") -> Path:
        return init_bare_repo(self.root, owner, name, branch)

    def repo_url(self, owner: str, name: str) -> str:
        return f"{self.url}/{owner}/{name}.git"

    def stop(self) -> None:
        if self.running:
            self.served.__exit__(None, None, None)
            self.running = False
