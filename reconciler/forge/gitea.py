"""The Gitea (and Forgejo) REST client: the `Forge` Protocol over `/api/v1`.

Written against Gitea's documented API (Gitea 1.21-1.25, Forgejo) and tolerant of what it
says varies: a status's state is read from `status` with a fallback to `state`, a branch tip from
`commit.id` with a fallback to `commit.sha`, an empty combined status may be a zero object.
Statuses are append-only on Gitea, so `post_status` lists first and skips an identical post; PR
listing always sends `state=open` (Gitea has no default) and pages with `limit` (max 50) by the
`Link` header. Retries, bounded reads and token-free errors live in `forge/http.py`.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ParamSpec, TypeVar, Unpack
from urllib.parse import parse_qs, quote, urlsplit

from reconciler.errors import ForgeError
from reconciler.forge.base import (
    CombinedStatus,
    CommitStatus,
    MergedPullRequest,
    PullRequest,
    PullReview,
    StatusState,
    StatusUpdate,
)
from reconciler.forge.http import ForgeHttp, HttpOptions, Response
from reconciler.logs import mask_secret
from reconciler.model.text import one_line

log = logging.getLogger(__name__)

PAGE_LIMIT = 50  # Gitea's MAX_RESPONSE_ITEMS default: larger limits are clamped
MAX_PAGES = 200
P = ParamSpec("P")
T = TypeVar("T")
_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^,;<]+)*)")


def _mapped(call: Callable[P, T]) -> Callable[P, T]:
    """Turn a response of an unexpected shape (missing key, wrong type) into a ForgeError."""

    @functools.wraps(call)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return call(*args, **kwargs)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            problem = type(exc).__name__
        raise ForgeError(f"Gitea {call.__name__.lstrip('_')}: unexpected response shape ({problem})")

    return wrapper


class GiteaClient:
    """Talks to one repository (`owner/name`) on a Gitea or Forgejo server."""

    def __init__(self, base_url: str, repo: str, token: str | None, **http: Unpack[HttpOptions]) -> None:
        owner, _, name = repo.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"repo must be 'owner/name', got {repo!r}")
        if token:
            mask_secret(token)
        api_url = base_url.rstrip("/")
        if not api_url.endswith("/api/v1"):
            api_url += "/api/v1"
        self.repo = repo
        self._repo_path = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"
        self._http = ForgeHttp(api_url, token, **http)

    def close(self) -> None:
        self._http.close()

    def one_attempt(self) -> GiteaClient:
        """This client with each call tried once (`TriesOnce`); it shares the connections: close the original."""
        twin = copy.copy(self)
        twin._http = self._http.one_attempt()
        return twin

    def __enter__(self) -> GiteaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- branches ---------------------------------------------------------------------------

    @_mapped
    def branch_head(self, branch: str) -> str:
        data = self._get(f"/branches/{quote(branch, safe='/')}").json()
        commit = data.get("commit") if isinstance(data, dict) else None
        sha = (commit or {}).get("id") or (commit or {}).get("sha")
        if not isinstance(sha, str) or not sha:
            raise ForgeError(f"Gitea GET branch {branch!r}: response has no commit id")
        return sha

    # -- pull requests ----------------------------------------------------------------------

    @_mapped
    def open_pull_requests(self, base_branch: str) -> list[PullRequest]:
        params = {"state": "open", "base_branch": base_branch, "sort": "oldest"}
        pulls = [_pull_request(item) for item in self._pages("/pulls", params)]
        return [pr for pr in pulls if pr is not None and pr.base_ref == base_branch]

    @_mapped
    def merged_pull_request(self, sha: str) -> MergedPullRequest | None:
        """`GET /commits/{sha}/pull`: Gitea looks the pull request up by its merge commit (the exact SHA
        given); 404 when the commit is none."""
        response = self._http.request("GET", f"{self._repo_path}/commits/{quote(sha, safe='')}/pull", ok=(200, 404))
        if response.status_code == 404:
            return None
        item = response.json()
        head, base = item.get("head") or {}, item.get("base") or {}
        return MergedPullRequest(
            number=int(item["number"]), url=str(item.get("html_url") or item.get("url") or ""),
            author=_login(item.get("user")), merged=item.get("merged") is True,
            merge_commit_sha=str(item.get("merge_commit_sha") or ""), base_ref=str(base.get("ref") or ""),
            head_sha=str(head.get("sha") or ""), merge_base=str(item.get("merge_base") or ""),
            merged_by=_login(item.get("merged_by")),
        )

    @_mapped
    def pull_reviews(self, number: int) -> list[PullReview]:
        return [PullReview(
            id=int(item.get("id") or 0), user=_login(item.get("user")), state=str(item.get("state") or ""),
            official=item.get("official") is True, stale=item.get("stale") is True,
            dismissed=item.get("dismissed") is True, commit_id=str(item.get("commit_id") or ""),
        ) for item in self._pages(f"/pulls/{int(number)}/reviews", {})]

    # -- commit statuses --------------------------------------------------------------------

    @_mapped
    def post_status(self, sha: str, update: StatusUpdate) -> bool:
        wanted = {
            "state": str(update.state),
            "description": one_line(update.description),
            "target_url": update.target_url.strip(),
            "context": update.context.strip(),
        }
        latest = self._latest_status(sha, wanted["context"])
        if latest is not None and (latest.state, latest.description, latest.target_url) == (
            wanted["state"], wanted["description"], wanted["target_url"]
        ):
            log.info("status unchanged, not posted", extra={"revision": sha, "context": wanted["context"]})
            return False
        path = f"{self._repo_path}/statuses/{quote(sha, safe='')}"
        self._http.request("POST", path, json=wanted, ok=(200, 201))
        log.info("status posted", extra={"revision": sha, "context": update.context, "outcome": update.state})
        return True

    @_mapped
    def combined_status(self, ref: str) -> CombinedStatus:
        head: dict[str, Any] = {}
        rows: list[dict[str, Any]] = []
        for payload in self._page_payloads(f"/commits/{quote(ref, safe='')}/status", {}, _statuses_of):
            head = head or (payload if isinstance(payload, dict) else {})
            rows.extend(_statuses_of(payload))
        return CombinedStatus(
            sha=str(head.get("sha") or ""),
            state=_combined_state(head.get("state")),
            statuses=_latest_per_context(_commit_status(r) for r in rows),
        )

    def _latest_status(self, sha: str, context: str) -> CommitStatus | None:
        """The newest row for `context` (highest per-commit index), reading newest-first pages."""
        path = f"/statuses/{quote(sha, safe='')}"
        best: CommitStatus | None = None
        for payload in self._page_payloads(path, {"sort": "leastindex"}, _items_of):
            for status in map(_commit_status, _items_of(payload)):
                if status.context == context and (best is None or status.id > best.id):
                    best = status
            if best is not None:
                return best  # pages run from the highest index down: later pages are older
        return best

    # -- pull request comments --------------------------------------------------------------

    def upsert_pr_comment(self, number: int, body: str, marker: str) -> int:
        if not marker:
            raise ValueError("a comment marker is required to find the comment again")
        return self._upsert_comment(number, body if marker in body else f"{marker}\n{body}", marker)

    @_mapped
    def _upsert_comment(self, number: int, text: str, marker: str) -> int:
        comments = self._get(f"/issues/{number}/comments").json() or []
        mine = sorted(
            (c for c in comments if isinstance(c, dict) and marker in str(c.get("body") or "")),
            key=lambda c: int(c.get("id", 0)),
        )
        if mine:
            comment_id = int(mine[0]["id"])
            if mine[0].get("body") != text:
                path = f"{self._repo_path}/issues/comments/{comment_id}"
                self._http.request("PATCH", path, json={"body": text}, ok=(200, 204))
            return comment_id
        created = self._http.request(
            "POST", f"{self._repo_path}/issues/{number}/comments", json={"body": text}, ok=(200, 201),
            repeatable=False,
        ).json()
        return int(created["id"])

    # -- plumbing ---------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Response:
        return self._http.request("GET", f"{self._repo_path}{path}", params=params)

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Items of every page of a list endpoint."""
        for payload in self._page_payloads(path, params, _items_of):
            yield from _items_of(payload)

    def _page_payloads(
        self, path: str, params: dict[str, Any], items_of: Callable[[Any], list[dict[str, Any]]]
    ) -> Iterator[Any]:
        """Each page's JSON, following `Link: rel="next"` by page number on our own base URL.

        Only the page number is taken from the link, so the token never goes to a host named by a
        header (ROOT_URL may differ from the address we reach the server at).
        """
        page = 1
        for _ in range(MAX_PAGES):
            response = self._get(path, {**params, "limit": PAGE_LIMIT, "page": page})
            payload = response.json()
            yield payload
            following = _next_page(response.headers.get("Link", ""))
            if following is None or following <= page or not items_of(payload):
                return
            page = following
        raise ForgeError(f"Gitea GET {self._repo_path}{path}: more than {MAX_PAGES} pages")


def _items_of(payload: Any) -> list[dict[str, Any]]:
    if payload is None:
        return []
    if not isinstance(payload, list):
        raise ForgeError("Gitea list endpoint: expected a JSON array")
    return [item for item in payload if isinstance(item, dict)]


def _statuses_of(payload: Any) -> list[dict[str, Any]]:
    rows = payload.get("statuses") if isinstance(payload, dict) else None
    return [r for r in rows or [] if isinstance(r, dict)]


def _next_page(header: str) -> int | None:
    for url, attrs in _LINK.findall(header):
        rels = re.findall(r'rel="?([^";]+)"?', attrs)
        if any("next" in rel.split() for rel in rels):
            page = parse_qs(urlsplit(url).query).get("page", [""])[0]
            return int(page) if page.isdigit() else None
    return None


def _commit_status(row: dict[str, Any]) -> CommitStatus:
    return CommitStatus(
        id=int(row.get("id") or 0),
        context=str(row.get("context") or ""),
        state=str(row.get("status") or row.get("state") or ""),
        description=str(row.get("description") or ""),
        target_url=str(row.get("target_url") or ""),
    )


def _latest_per_context(statuses: Iterable[CommitStatus]) -> tuple[CommitStatus, ...]:
    latest: dict[str, CommitStatus] = {}
    for status in statuses:
        if status.context not in latest or status.id > latest[status.context].id:
            latest[status.context] = status
    return tuple(sorted(latest.values(), key=lambda s: s.context))


def _combined_state(value: Any) -> StatusState | None:
    if not value:
        return None
    try:
        return StatusState(str(value))
    except ValueError:
        return StatusState.PENDING  # e.g. `running` from Gitea 1.19/1.20: not finished


def _login(user: Any) -> str:
    return str(user.get("login") or "") if isinstance(user, dict) else ""


def _pull_request(item: dict[str, Any]) -> PullRequest | None:
    if item.get("state", "open") != "open":
        return None  # a server that ignored state=open
    head, base = item.get("head") or {}, item.get("base") or {}
    head_repo, base_repo = head.get("repo") or {}, base.get("repo") or {}
    is_fork = (
        head.get("repo_id") is not None and head.get("repo_id") != base.get("repo_id")
    ) or (bool(head_repo) and head_repo.get("full_name") != base_repo.get("full_name")) or not head_repo
    return PullRequest(
        number=int(item["number"]),
        head_sha=str(head.get("sha") or ""),
        head_ref=str(head.get("ref") or ""),
        base_ref=str(base.get("ref") or ""),
        url=str(item.get("html_url") or item.get("url") or ""),
        is_fork=bool(is_fork),
    )
