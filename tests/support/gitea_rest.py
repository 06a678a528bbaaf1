"""The REST handlers of the Gitea emulator, mixed into `GiteaEmulator`: one method per route.

Each handler gets the repository, the query parameters and the raw body, runs with the emulator
lock held and returns `(status, extra headers, JSON)`. Faithful to `shared/reference/gitea-api.md`:
statuses are append-only rows with a per-commit index and trimmed fields, POST to an unknown
commit is a 500, the status list takes the SHA literally while `commits/{ref}/...` resolves
branch, tag, then commit-ish; page/limit (30 default, 50 max) with `X-Total-Count` and `Link`;
the PR list has no default state; combined status per Gitea >=1.25 or the legacy algorithm.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.support import gitea_payloads as shapes

_STATES = ("pending", "success", "error", "failure", "warning")


@dataclass
class Repo:
    rid: int
    owner: str
    name: str
    path: Path
    default_branch: str
    parent: Repo | None = None
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    issue_counter: int = 0
    hooks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


class ApiError(Exception):
    def __init__(self, status: int, message: str = "") -> None:
        self.status, self.message = status, message


class RestHandlers:
    """Route handlers and the helpers they share; the state lives on `GiteaEmulator`."""

    repos: dict[str, Repo]
    comments: dict[int, dict[str, Any]]
    app_url: str
    login: str
    flavor: str
    lock: threading.RLock
    _ids: Iterator[int]

    def _user(self) -> dict[str, Any]:
        return shapes.user(self.app_url, self.login, 1)

    def repo_json(self, repo: Repo) -> dict[str, Any]:
        parent = self.repo_json(repo.parent) if repo.parent else None
        return shapes.repository(self.app_url, repo.rid, repo.owner, repo.name, repo.default_branch, parent)

    def resolve(self, repo: Repo, ref: str) -> str | None:
        """Branch, then tag, then a commit-ish of at least 7 hex characters (Gitea's order)."""
        for candidate in (f"refs/heads/{ref}", f"refs/tags/{ref}"):
            sha = shapes.git(repo.path, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}", check=False)
            if sha:
                return sha
        if re.fullmatch(r"[0-9a-fA-F]{7,64}", ref):
            return shapes.git(repo.path, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False) or None
        return None

    def paginate(self, items: list[Any], params: dict[str, str], path: str) -> tuple[list[Any], list[tuple[str, str]]]:
        """Gitea's page/limit (default 30, max 50), X-Total-Count and Link (no space after commas)."""
        page = max(1, _int(params.get("page"), 1))
        limit = _int(params.get("limit"), 0)
        limit = 30 if limit <= 0 else min(limit, 50)
        total = len(items)
        pages = max(1, -(-total // limit))
        links = []
        wanted = [("next", page + 1, page < pages), ("last", pages, page < pages),
                  ("first", 1, page > 1), ("prev", page - 1, page > 1)]
        for rel, target, present in wanted:
            if present:
                query = urlencode(sorted({**params, "page": str(target)}.items()))
                links.append(f'<{self.app_url}{path.lstrip("/")}?{query}>; rel="{rel}"')
        headers = [("X-Total-Count", str(total)), ("Access-Control-Expose-Headers", "X-Total-Count, Link")]
        if links:
            headers.append(("Link", ",".join(links)))
        return items[(page - 1) * limit: page * limit], headers

    # -- handlers (called with the lock held) -----------------------------------------------

    def _get_repo(self, repo: Repo, params: dict[str, str], body: bytes, path: str) -> Any:
        return 200, [], self.repo_json(repo)

    def _get_branch(self, repo: Repo, params: dict[str, str], body: bytes, path: str, branch: str) -> Any:
        sha = shapes.git(repo.path, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
        if not sha:
            raise ApiError(404, "The target couldn't be found.")
        commit = shapes.payload_commit(self.app_url, repo.full_name, repo.path, sha, with_files=False)
        return 200, [], {
            "name": branch, "commit": commit, "protected": False, "required_approvals": 0,
            "enable_status_check": False, "status_check_contexts": [], "user_can_push": True,
            "user_can_merge": True, "effective_branch_protection_name": "",
        }

    def _get_refs(self, repo: Repo, params: dict[str, str], body: bytes, path: str, prefix: str = "") -> Any:
        lines = shapes.git(repo.path, "for-each-ref", "--format=%(refname) %(objectname) %(objecttype)")
        wanted = "refs/" + prefix
        found = [line.split() for line in lines.splitlines() if line.startswith(wanted)]
        if not found:
            raise ApiError(404, "The target couldn't be found.")
        api = f"{self.app_url}api/v1/repos/{repo.full_name}/git"
        return 200, [], [{"ref": ref, "url": f"{api}/{ref}", "object": {
            "type": kind, "sha": sha, "url": f"{api}/{'tags' if kind == 'tag' else 'commits'}/{sha}"}}
            for ref, sha, kind in found]

    def _post_status(self, repo: Repo, params: dict[str, str], body: bytes, path: str, sha: str) -> Any:
        try:
            option = json.loads(body or b"{}")
        except ValueError as exc:
            raise ApiError(422, "[]: invalid JSON") from exc
        full = self.resolve(repo, sha) if sha else None
        if not full:
            raise ApiError(500, "")  # Gitea: GetCommit fails -> APIErrorInternal, not 404
        rows = repo.statuses.setdefault(full, [])
        row = {
            "index": len(rows) + 1, "state": str(option.get("state") or ""),
            "target_url": str(option.get("target_url") or "").strip(),
            "description": str(option.get("description") or "").strip(),
            "context": str(option.get("context") or "").strip(), "created": time.time(),
        }
        rows.append(row)
        return 201, [], shapes.commit_status(self.app_url, repo.full_name, full, row, self._user())

    def _status_list(self, repo: Repo, sha: str, params: dict[str, str], path: str) -> Any:
        rows = list(repo.statuses.get(sha, []))
        if params.get("state") in _STATES:
            rows = [r for r in rows if r["state"] == params["state"]]
        order = {
            "oldest": (lambda r: r["created"], False), "leastupdate": (lambda r: r["created"], False),
            "recentupdate": (lambda r: r["created"], True), "leastindex": (lambda r: r["index"], True),
            "highestindex": (lambda r: r["index"], False),
        }.get(params.get("sort", ""), (lambda r: r["created"], True))
        rows.sort(key=order[0], reverse=order[1])
        page, headers = self.paginate(rows, params, path)
        return 200, headers, [shapes.commit_status(self.app_url, repo.full_name, sha, r, self._user()) for r in page]

    def _list_statuses(self, repo: Repo, params: dict[str, str], body: bytes, path: str, sha: str) -> Any:
        return self._status_list(repo, sha, params, path)  # literal: a short SHA or a branch gives []

    def _list_ref_statuses(self, repo: Repo, params: dict[str, str], body: bytes, path: str, ref: str) -> Any:
        sha = self.resolve(repo, ref)
        if sha is None:
            raise ApiError(404, "The target couldn't be found.")
        return self._status_list(repo, sha, params, path)

    def _combined_status(self, repo: Repo, params: dict[str, str], body: bytes, path: str, ref: str) -> Any:
        sha = self.resolve(repo, ref)
        if sha is None:
            raise ApiError(404, "The target couldn't be found.")
        latest: dict[str, dict[str, Any]] = {}
        for row in repo.statuses.get(sha, []):
            latest[row["context"]] = row  # rows are in index order: the last one wins
        rows = list(latest.values())
        page, headers = self.paginate(rows, params, path)
        modern = self.flavor == "gitea-1.25"
        repo_url = f"{self.app_url}api/v1/repos/{repo.full_name}"
        if not rows:
            if not modern:
                return 200, headers, {"state": "", "sha": "", "total_count": 0, "statuses": None,
                                      "repository": None, "commit_url": "", "url": ""}
            return 200, headers, {"state": "", "sha": sha, "total_count": 0, "statuses": None,
                                  "repository": self.repo_json(repo), "commit_url": f"{repo_url}/commits/{sha}",
                                  "url": f"{repo_url}/commits/{sha}/status"}
        state = combine([r["state"] for r in rows]) if modern else combine_legacy([r["state"] for r in rows])
        return 200, headers, {
            "state": state, "sha": sha, "total_count": len(page),
            "statuses": [shapes.commit_status(self.app_url, repo.full_name, sha, r, self._user()) for r in page],
            "repository": self.repo_json(repo),
            "commit_url": f"{repo_url}/commits/{sha}" if modern else "",
            "url": f"{repo_url}/commits/{sha}/status" if modern else "",
        }

    def pull_json(self, repo: Repo, pr: dict[str, Any], single: bool = False) -> dict[str, Any]:
        head_repo = self.repos.get(pr["head_repo"])
        tip = ""
        if single and head_repo is not None:
            tip = shapes.git(head_repo.path, "rev-parse", "--verify", "--quiet", f"refs/heads/{pr['head']}",
                             check=False)
        if not tip:
            tip = shapes.git(repo.path, "rev-parse", "--verify", "--quiet", f"refs/pull/{pr['number']}/head",
                             check=False)
        branch_alive = head_repo is not None and bool(shapes.git(
            head_repo.path, "rev-parse", "--verify", "--quiet", f"refs/heads/{pr['head']}", check=False))
        head_ref = pr["head"] if branch_alive else f"refs/pull/{pr['number']}/head"
        base_sha = shapes.git(repo.path, "rev-parse", "--verify", "--quiet", f"refs/heads/{pr['base']}", check=False)
        base_json = self.repo_json(repo)
        head = shapes.branch_ref(pr["head"], head_ref, tip, self.repo_json(head_repo) if head_repo else None)
        base = shapes.branch_ref(pr["base"], pr["base"], base_sha, base_json)
        poster = shapes.user(self.app_url, pr.get("author") or self.login, 1 if pr.get("author") in (None, self.login)
                             else 2)
        return shapes.pull_request(self.app_url, base_json, pr, head, base, poster)

    def _list_pulls(self, repo: Repo, params: dict[str, str], body: bytes, path: str) -> Any:
        pulls = list(repo.pulls.values())
        if params.get("state") in ("open", "closed"):  # no default: omitted or `all` lists every state
            pulls = [p for p in pulls if p["state"] == params["state"]]
        if params.get("base_branch"):
            pulls = [p for p in pulls if p["base"] == params["base_branch"]]
        pulls.sort(key=lambda p: p["seq"], reverse=params.get("sort") != "oldest")
        page, headers = self.paginate(pulls, params, path)
        return 200, headers, [self.pull_json(repo, p) for p in page]

    def _get_pull(self, repo: Repo, params: dict[str, str], body: bytes, path: str, number: str) -> Any:
        pr = repo.pulls.get(int(number))
        if pr is None:
            raise ApiError(404, "The target couldn't be found.")
        return 200, [], self.pull_json(repo, pr, single=True)

    def _list_comments(self, repo: Repo, params: dict[str, str], body: bytes, path: str, number: str) -> Any:
        rows = [c for c in self.comments.values() if c["repo"] == repo.full_name and c["issue"] == int(number)]
        return 200, [("X-Total-Count", str(len(rows)))], [
            shapes.comment(self.app_url, repo.full_name, c, self._user()) for c in rows]

    def _comment_body(self, body: bytes) -> str:
        try:
            text = json.loads(body or b"{}").get("body")
        except (ValueError, AttributeError) as exc:
            raise ApiError(422, "[]: invalid JSON") from exc
        if not isinstance(text, str) or not text:
            raise ApiError(422, "[Body]: Required")
        return text

    def _post_comment(self, repo: Repo, params: dict[str, str], body: bytes, path: str, number: str) -> Any:
        text = self._comment_body(body)
        if int(number) not in repo.pulls:
            raise ApiError(500, "")  # Gitea: a missing index is APIErrorInternal
        now = time.time()
        row: dict[str, Any] = {"id": next(self._ids), "repo": repo.full_name, "issue": int(number), "body": text,
               "created": now, "updated": now}
        self.comments[row["id"]] = row
        return 201, [], shapes.comment(self.app_url, repo.full_name, row, self._user())

    def _patch_comment(self, repo: Repo, params: dict[str, str], body: bytes, path: str, cid: str) -> Any:
        text = self._comment_body(body)
        row = self.comments.get(int(cid))
        if row is None or row["repo"] != repo.full_name:
            raise ApiError(404, "The target couldn't be found.")
        if row["body"] != text:
            row.update(body=text, updated=time.time())
        return 200, [], shapes.comment(self.app_url, repo.full_name, row, self._user())


def combine(states: list[str]) -> str:
    """Gitea >=1.25 `CommitStatusStates.Combine` over the latest status per context."""
    ok = 0
    for state in states:
        if state in ("error", "failure"):
            return "failure"
        if state in ("success", "warning", "skipped"):
            ok += 1
    return "success" if states and ok == len(states) else "pending"


def combine_legacy(states: list[str]) -> str:
    """Gitea 1.21-1.24 and Forgejo: the worst by priority, `error` reported as `failure`."""
    priority = {"error": 0, "failure": 1, "warning": 2, "pending": 3, "success": 4}
    result: str | None = None
    for state in states:
        if state in priority and (result is None or priority[state] <= priority[result]):
            result = state
    return "failure" if result == "error" else (result or "")


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
