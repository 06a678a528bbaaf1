"""A Gitea emulator for tests: the REST subset the reconciler calls, plus real smart-HTTP git.

One threaded WSGI server on 127.0.0.1 serves `/api/v1/...` (faithful to
`shared/reference/gitea-api.md`, Gitea 1.25 by default, `flavor="gitea-1.24"` or `"forgejo"` for
the legacy combined state and header set) and `/<owner>/<name>.git/...` through `GitHttpApp`, so a
test `git push`es for real and branch heads come from the bare repository (`git rev-parse`).
Test control is Python, not HTTP: `create_repo`, `open_pull_request`, `merge_pull_request`,
`add_review`, `add_webhook`,
`deliver_push`, `deliver_pull_request`, `fail_next` (500 / 429 / timeout), `request_log`.
Statuses are append-only with a per-commit index; comments get global ids; PRs share the issue
index counter. Route handlers live in `gitea_rest.py` (merges and reviews: `gitea_reviews.py`),
webhook delivery in `gitea_hooks.py`
(both mixed into `GiteaEmulator`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qsl, unquote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from devtools.git_http import GitHttpApp, init_bare_repo
from tests.support import gitea_payloads as shapes
from tests.support.gitea_hooks import Delivery, WebhookDeliveries
from tests.support.gitea_rest import ApiError, Repo, RestHandlers, combine, combine_legacy
from tests.support.gitea_reviews import PullReviewsMixin

Flavor = Literal["gitea-1.25", "gitea-1.24", "forgejo"]
StartResponse = Callable[..., Any]
_REPO = r"^/api/v1/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
__all__ = ["ApiError", "GiteaEmulator", "LoggedRequest", "Repo", "combine", "combine_legacy"]


class LoggedRequest(NamedTuple):
    method: str
    path: str  # raw path as sent (still percent-encoded), without the query
    headers: dict[str, str]  # without Authorization
    status: int
    query: str = ""


@dataclass
class Fault:
    remaining: int
    kind: str  # "500" or any status code, "429" (with Retry-After: 1), "timeout", "huge" (a 6 MiB body)
    path_prefix: str | None
    method: str | None = None


class _Handler(WSGIRequestHandler):
    def get_environ(self) -> dict[str, Any]:
        env = super().get_environ()
        env["RAW_URI"] = self.path  # wsgiref decodes PATH_INFO; routing needs the raw %2F
        return env

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - wsgiref's signature
        pass


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class GiteaEmulator(RestHandlers, PullReviewsMixin, WebhookDeliveries):
    """Start with `with GiteaEmulator(tmp) as emu:`; `emu.url` is the ROOT_URL without the slash."""

    def __init__(self, root: Path, token: str | None = "emulator-token", *, user: str = "reconciler",
                 flavor: Flavor = "gitea-1.25", hang_s: float = 10.0) -> None:
        self.root, self.token, self.login, self.flavor, self.hang_s = root, token, user, flavor, hang_s
        self.repos: dict[str, Repo] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self.request_log: list[LoggedRequest] = []
        self.deliveries: list[Delivery] = []
        self.faults: list[Fault] = []
        self.lock = threading.RLock()
        self._release = threading.Event()
        self._ids = iter(range(1, 1 << 30))
        self.git_app = GitHttpApp(root)
        self.server = make_server("127.0.0.1", 0, self, server_class=_Server, handler_class=_Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.app_url = self.url + "/"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            ("GET", re.compile(_REPO + r"$"), self._get_repo),
            ("GET", re.compile(_REPO + r"/branches/(?P<branch>.+)$"), self._get_branch),
            ("GET", re.compile(_REPO + r"/git/refs(?:/(?P<prefix>.+))?$"), self._get_refs),
            ("POST", re.compile(_REPO + r"/statuses/(?P<sha>[^/]+)$"), self._post_status),
            ("GET", re.compile(_REPO + r"/statuses/(?P<sha>[^/]+)$"), self._list_statuses),
            ("GET", re.compile(_REPO + r"/commits/(?P<ref>.+)/statuses$"), self._list_ref_statuses),
            ("GET", re.compile(_REPO + r"/commits/(?P<ref>.+)/status$"), self._combined_status),
            ("GET", re.compile(_REPO + r"/pulls$"), self._list_pulls),
            ("GET", re.compile(_REPO + r"/pulls/(?P<number>\d+)$"), self._get_pull),
            ("GET", re.compile(_REPO + r"/pulls/(?P<number>\d+)/reviews$"), self._list_reviews),
            ("GET", re.compile(_REPO + r"/commits/(?P<sha>[^/]+)/pull$"), self._commit_pull),
            ("GET", re.compile(_REPO + r"/issues/(?P<number>\d+)/comments$"), self._list_comments),
            ("POST", re.compile(_REPO + r"/issues/(?P<number>\d+)/comments$"), self._post_comment),
            ("PATCH", re.compile(_REPO + r"/issues/comments/(?P<cid>\d+)$"), self._patch_comment),
        ]

    # -- lifecycle and test control ---------------------------------------------------------

    def __enter__(self) -> GiteaEmulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v1"

    def create_repo(self, owner: str, name: str, default_branch: str = "main",
                    fork_of: str | None = None) -> Path:
        with self.lock:
            path = init_bare_repo(self.root, owner, name, default_branch)
            parent = self.repos[fork_of] if fork_of else None
            if parent is not None:
                shapes.git(path, "fetch", "-q", str(parent.path), "+refs/heads/*:refs/heads/*")
            self.repos[f"{owner}/{name}"] = Repo(next(self._ids), owner, name, path, default_branch, parent)
            return path

    def clone_url(self, owner: str, name: str) -> str:
        return f"{self.url}/{owner}/{name}.git"

    def repo(self, owner: str, name: str) -> Repo:
        return self.repos[f"{owner}/{name}"]

    def open_pull_request(self, owner: str, name: str, head: str, base: str = "main", *,
                          head_repo: str | None = None, title: str = "", author: str | None = None) -> int:
        """Open PR `head` -> `base` (head branch in `head_repo`, a fork, when given); returns its number."""
        with self.lock:
            repo = self.repo(owner, name)
            repo.issue_counter += 1
            number = repo.issue_counter
            repo.pulls[number] = {
                "id": next(self._ids), "number": number, "title": title or f"change {number}",
                "head": head, "base": base, "head_repo": head_repo or repo.full_name,
                "state": "open", "merged": False, "created": time.time(), "seq": next(self._ids),
                "author": author or self.login,
            }
            self.sync_pull_request(owner, name, number)
            return number

    def close_pull_request(self, owner: str, name: str, number: int, merged: bool = False) -> None:
        with self.lock:
            self.repo(owner, name).pulls[number].update(state="closed", merged=merged)

    def sync_pull_request(self, owner: str, name: str, number: int) -> str:
        """Point `refs/pull/N/head` in the base repo at the head branch tip (Gitea does it after a push)."""
        repo = self.repo(owner, name)
        pr = repo.pulls[number]
        source = self.repos[pr["head_repo"]]
        shapes.git(repo.path, "fetch", "-q", str(source.path), f"+refs/heads/{pr['head']}:refs/pull/{number}/head")
        head = shapes.git(repo.path, "rev-parse", f"refs/pull/{number}/head")
        self.mark_stale(pr, head)
        return head

    def fail_next(self, n: int = 1, kind: str = "500", path_prefix: str | None = None,
                  method: str | None = None) -> None:
        """Make the next `n` API calls (matching `path_prefix` and `method`, if given) fail with `kind`."""
        with self.lock:
            self.faults.append(Fault(n, kind, path_prefix, method))

    def statuses(self, owner: str, name: str, sha: str) -> list[dict[str, Any]]:
        return list(self.repo(owner, name).statuses.get(sha, []))

    def api_calls(self, method: str | None = None, contains: str = "") -> list[LoggedRequest]:
        return [r for r in self.request_log if r.path.startswith("/api/")
                and (method is None or r.method == method) and contains in r.path]

    # -- WSGI -------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        raw = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
        path, _, query = raw.partition("?")
        method = environ["REQUEST_METHOD"]
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items()
                   if k.startswith("HTTP_") and k != "HTTP_AUTHORIZATION"}
        if not path.startswith("/api/") and self.git_app.handles(path):
            statuses: list[int] = []

            def recording(status: str, hdrs: list[tuple[str, str]], *a: Any) -> Any:
                statuses.append(int(status.split()[0]))
                return start_response(status, hdrs, *a)

            body = self.git_app(environ, recording)
            self.request_log.append(LoggedRequest(method, path, headers, statuses[0] if statuses else 0, query))
            return body
        status, extra, payload = self._api(environ, method, path, query)
        self.request_log.append(LoggedRequest(method, path, headers, status, query))
        data = b"" if payload is None else json.dumps(payload).encode()
        reason = {200: "OK", 201: "Created", 204: "No Content"}.get(status, "Error")
        out = [("Content-Type", "application/json;charset=utf-8"), ("Content-Length", str(len(data))), *extra]
        start_response(f"{status} {reason}", out)
        return [data]

    def _api(self, environ: dict[str, Any], method: str, path: str, query: str
             ) -> tuple[int, list[tuple[str, str]], Any]:
        fault = self._take_fault(method, path)
        if fault == "timeout":
            self._release.wait(self.hang_s)
            return 504, [], {"message": "", "url": self._swagger}
        if fault == "huge":
            return 200, [], {"message": "x" * (6 * 1024 * 1024)}
        if fault == "429":
            return 429, [("Retry-After", "1")], {"message": "rate limited", "url": self._swagger}
        if fault is not None:
            return int(fault), [], {"message": "", "url": self._swagger}
        if self.token is not None and not self._authorized(environ.get("HTTP_AUTHORIZATION", "")):
            return 401, [], {"message": "token is required", "url": self._swagger}
        for route_method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match and route_method == method:
                args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                params = dict(parse_qsl(query, keep_blank_values=True))
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = environ["wsgi.input"].read(length) if length else b""
                try:
                    with self.lock:
                        repo = self.repos.get(f"{args.pop('owner')}/{args.pop('name')}")
                        if repo is None:
                            raise ApiError(404, "The target couldn't be found.")
                        answer: tuple[int, list[tuple[str, str]], Any] = handler(
                            repo, params, body, path=path, **args)
                        return answer
                except ApiError as exc:
                    return exc.status, [], {"message": exc.message, "url": self._swagger}
        return 404, [], {"message": "not found", "url": self._swagger}

    @property
    def _swagger(self) -> str:
        return f"{self.app_url}api/swagger"

    def _take_fault(self, method: str, path: str) -> str | None:
        with self.lock:
            for fault in self.faults:
                if fault.remaining > 0 and (fault.path_prefix is None or path.startswith(fault.path_prefix)) \
                        and fault.method in (None, method):
                    fault.remaining -= 1
                    return fault.kind
        return None

    def _authorized(self, header: str) -> bool:
        parts = header.split()
        if len(parts) != 2:
            return False
        scheme, value = parts
        # `token` must be lowercase on Gitea <=1.24 and Forgejo; `bearer` is case-insensitive everywhere
        return (scheme == "token" or scheme.lower() == "bearer") and value == self.token
