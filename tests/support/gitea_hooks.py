"""Webhook delivery for the Gitea emulator: real payloads, real headers, real HMAC, real HTTP.

Mixed into `GiteaEmulator`. A test registers a hook (`add_webhook`), pushes with git, then calls
`deliver_push` / `deliver_pull_request`; each matching hook gets one POST the way Gitea's
`services/webhook/deliver.go` sends it: the 2-space-indented JSON body, `X-Gitea-*`, `X-Gogs-*`,
`X-Hub-Signature(-256)` and `X-GitHub-*` headers (plus `X-Forgejo-*` for the forgejo flavor),
empty signature headers when the hook has no secret, a 5 s timeout, one attempt, loopback
targets only (Gitea's ALLOWED_HOST_LIST must be opened to `loopback` for this in real life).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from tests.support import gitea_payloads as shapes

if TYPE_CHECKING:
    import threading
    from collections.abc import Iterator

    from tests.support.gitea_rest import Repo

ZERO = "0" * 40
DELIVER_TIMEOUT_S = 5.0
FEED_MAX_COMMIT_NUM = 5


@dataclass(frozen=True)
class Delivery:
    url: str
    delivery_id: str
    event: str
    status_code: int  # 0 when the request failed before a response
    body: bytes  # the exact bytes sent
    headers: dict[str, str]
    response: str = ""


class WebhookDeliveries:
    """`add_webhook`, `deliver_push`, `deliver_pull_request` for `GiteaEmulator`."""

    deliveries: list[Delivery]
    if TYPE_CHECKING:  # provided by GiteaEmulator and its RestHandlers
        lock: threading.RLock
        _ids: Iterator[int]
        app_url: str
        flavor: str

        def repo(self, owner: str, name: str) -> Repo: ...
        def repo_json(self, repo: Repo) -> dict[str, Any]: ...
        def _user(self) -> dict[str, Any]: ...
        def sync_pull_request(self, owner: str, name: str, number: int) -> str: ...
        def pull_json(self, repo: Repo, pr: dict[str, Any], single: bool = False) -> dict[str, Any]: ...

    def add_webhook(self, owner: str, name: str, url: str, secret: str = "",
                    events: tuple[str, ...] = ("push", "pull_request"), branch_filter: str = "*") -> int:
        host = urlsplit(url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the emulator only delivers to loopback, not {host!r}")
        with self.lock:
            hook: dict[str, Any] = {"id": next(self._ids), "url": url, "secret": secret,
                                    "events": list(events) or ["push"], "branch_filter": branch_filter or "*"}
            self.repo(owner, name).hooks.append(hook)
            return int(hook["id"])

    def deliver_push(self, owner: str, name: str, ref: str, before: str, after: str,
                     ) -> list[Delivery]:
        """POST a `push` event (as after `git push` of `ref` from `before` to `after`) to every hook."""
        repo = self.repo(owner, name)
        if after == ZERO:
            return []  # Gitea sends only a `delete` event for a deleted branch
        span = [after] if before == ZERO else [f"{before}..{after}"]
        limit = ["--max-count=10"] if before == ZERO else []
        shas = shapes.git(repo.path, "rev-list", *limit, *span).split()
        commits = [shapes.payload_commit(self.app_url, repo.full_name, repo.path, s, with_files=True)
                   for s in shas[:FEED_MAX_COMMIT_NUM]]
        head = commits[0] if commits else shapes.payload_commit(
            self.app_url, repo.full_name, repo.path, after, with_files=True)
        sender = self._user()
        payload = {
            "ref": ref, "before": before, "after": after,
            "compare_url": f"{self.app_url}{repo.full_name}/compare/{before}...{after}",
            "commits": commits, "total_commits": len(shas), "head_commit": head,
            "repository": self.repo_json(repo), "pusher": sender, "sender": sender,
        }
        branch = ref.removeprefix("refs/heads/")
        hooks = [h for h in repo.hooks if "push" in h["events"]
                 and (fnmatch.fnmatchcase(branch, h["branch_filter"]) or fnmatch.fnmatchcase(ref, h["branch_filter"]))]
        return [self._send(h, "push", "push", payload) for h in hooks]

    def deliver_pull_request(self, owner: str, name: str, number: int,
                             action: str = "synchronized") -> list[Delivery]:
        """POST a `pull_request` event; `synchronized` first refreshes `refs/pull/N/head` like Gitea."""
        repo = self.repo(owner, name)
        if action in ("synchronized", "opened", "reopened"):
            self.sync_pull_request(owner, name, number)
        with self.lock:
            pr_json = self.pull_json(repo, repo.pulls[number], single=True)
        payload = {
            "action": action, "number": number, "pull_request": pr_json, "requested_reviewer": None,
            "repository": self.repo_json(repo), "sender": self._user(), "commit_id": "", "review": None,
        }
        event_type = "pull_request_sync" if action == "synchronized" else "pull_request"
        hooks = [h for h in repo.hooks if "pull_request" in h["events"]]
        return [self._send(h, "pull_request", event_type, payload) for h in hooks]

    def deliver_review_approved(self, owner: str, name: str, number: int) -> list[Delivery]:
        """POST an approving review's event: X-Gitea-Event `pull_request_approved`, type
        `pull_request_review_approved`, action `reviewed` (hooks with `pull_request` get every PR sub-event)."""
        repo = self.repo(owner, name)
        with self.lock:
            pr_json = self.pull_json(repo, repo.pulls[number], single=True)
        payload = {
            "action": "reviewed", "number": number, "pull_request": pr_json, "requested_reviewer": None,
            "repository": self.repo_json(repo), "sender": self._user(), "commit_id": "",
            "review": {"type": "pull_request_review_approved", "content": ""},
        }
        hooks = [h for h in repo.hooks if "pull_request" in h["events"]]
        return [self._send(h, "pull_request_approved", "pull_request_review_approved", payload) for h in hooks]

    def _send(self, hook: dict[str, Any], event: str, event_type: str,
              payload: dict[str, Any]) -> Delivery:
        body = shapes.go_json(payload)
        headers = delivery_headers(self.flavor, hook["secret"].encode(), body, event, event_type)
        try:
            with httpx.Client(timeout=DELIVER_TIMEOUT_S, follow_redirects=False) as client:
                answer = client.post(hook["url"], content=body, headers=headers)
            status, text = answer.status_code, answer.text[: 1024 * 1024]
        except httpx.HTTPError as exc:
            status, text = 0, type(exc).__name__
        delivery = Delivery(hook["url"], headers["X-Gitea-Delivery"], event, status, body, headers, text)
        with self.lock:
            self.deliveries.append(delivery)
        return delivery


def delivery_headers(flavor: str, secret: bytes, body: bytes, event: str, event_type: str,
                     delivery_id: str | None = None) -> dict[str, str]:
    """The header set Gitea (or Forgejo) sends with one delivery; empty signatures without a secret."""
    delivery_id = delivery_id or str(uuid.uuid4())
    sig256 = hmac.new(secret, body, hashlib.sha256).hexdigest() if secret else ""
    sig1 = hmac.new(secret, body, hashlib.sha1).hexdigest() if secret else ""
    headers: dict[str, str] = {"Content-Type": "application/json", "User-Agent": "Go-http-client/1.1"}
    families = ["Gitea", "Gogs"]
    if flavor == "forgejo":
        families.insert(0, "Forgejo")
    for family in families:
        headers.update({
            f"X-{family}-Delivery": delivery_id, f"X-{family}-Event": event,
            f"X-{family}-Event-Type": event_type, f"X-{family}-Signature": sig256,
        })
    headers.update({
        "X-Hub-Signature": f"sha1={sig1}", "X-Hub-Signature-256": f"sha256={sig256}",
        "X-GitHub-Delivery": delivery_id, "X-GitHub-Event": event, "X-GitHub-Event-Type": event_type,
    })
    if flavor != "forgejo":
        headers["X-Gitea-Hook-Installation-Target-Type"] = "repository"
        headers["X-GitHub-Hook-Installation-Target-Type"] = "repository"
    return headers
