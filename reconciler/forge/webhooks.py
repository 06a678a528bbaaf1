"""Gitea webhooks in: verify the signature, parse Gitea's own payload shape, turn it into a trigger.

Three layers, each usable alone: `verify_signature` (hex HMAC-SHA256 of the raw body, constant-time,
before anything is parsed), `parse_event` (Gitea `push` and `pull_request` payloads to a `Trigger`,
or None for events the reconciler does not act on) and `webhook_app`, a Starlette app the daemon
mounts at `/hooks/gitea`: 413 for oversized bodies, 401 for a missing or bad signature, 202 for a
trigger, 200 for ignored events (other branches, other repositories) and for duplicate deliveries
(`X-Gitea-Delivery`, remembered in a `DeliveryLog`), which never call `on_trigger` twice. Payload
timestamps are strings on Gitea and are never parsed here.

A trigger is a hint, never a source of truth: a signed payload can still be a replay, or name a
commit that is not the head of its branch. The receiver of a trigger looks at the remote itself
(the branch head, the open pull requests) and acts on what it finds there.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Literal, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
ZERO_SHAS = {"0" * 40, "0" * 64}
PR_ACTIONS = {"opened", "reopened", "synchronized", "synchronize", "edited", "closed"}
# an approving review (X-Gitea-Event `pull_request_approved`, event type `pull_request_review_approved`)
APPROVAL_EVENTS = {"pull_request_approved", "pull_request_review_approved"}
_SIGNATURES = (("X-Gitea-Signature", ""), ("X-Forgejo-Signature", ""), ("X-Hub-Signature-256", "sha256="))
_EVENTS = ("X-Gitea-Event", "X-Forgejo-Event", "X-Gogs-Event", "X-GitHub-Event")
_DELIVERIES = ("X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gogs-Delivery", "X-GitHub-Delivery")


class WebhookPayloadError(ValueError):
    """A signed body that is not the payload its event header says it is."""


class Trigger(BaseModel):
    """"Look at repository R, ref X, commit Y": what a webhook asks the reconciler to do."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["push", "pull_request", "review_approved"]
    repo: str  # full_name of the repository the event is about (the base repo for a PR)
    clone_url: str
    ref: str  # `refs/heads/<branch>` for a push, `refs/pull/<N>/head` (in the base repo) for a PR
    sha: str
    pr_number: int | None = None
    action: str | None = None  # the PR action (`synchronized`, `opened`, ...)
    delivery: str = ""


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Repository(_Loose):
    full_name: str
    clone_url: str = ""


class _Push(_Loose):
    ref: str
    before: str = ""
    after: str
    repository: _Repository


class _Branch(_Loose):
    ref: str = ""
    sha: str = ""


class _PullRequest(_Loose):
    number: int | None = None
    head: _Branch
    base: _Branch


class _PullRequestEvent(_Loose):
    action: str
    number: int
    pull_request: _PullRequest
    repository: _Repository


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value or ""


def verify_signature(secret: bytes, body: bytes, headers: Mapping[str, str]) -> bool:
    """True when a signature header carries hex HMAC-SHA256(secret, body). No secret: always False."""
    if not secret:
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    verified = False
    for name, prefix in _SIGNATURES:
        value = _header(headers, name).strip()
        if not value or not value.lower().startswith(prefix):
            continue
        given = value[len(prefix):].strip().lower()
        # compare every present header, no early exit on the first bad one
        verified |= hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii"))
    return verified


def event_name(headers: Mapping[str, str]) -> str:
    return next((v for v in (_header(headers, n) for n in _EVENTS) if v), "")


def delivery_id(headers: Mapping[str, str]) -> str:
    return next((v for v in (_header(headers, n) for n in _DELIVERIES) if v), "")


def parse_event(headers: Mapping[str, str], body: bytes, branch: str | None = None) -> Trigger | None:
    """A trigger for a relevant, already verified event; None for anything the reconciler ignores.

    With `branch`, pushes to other branches and PRs against other base branches are ignored.
    Raises `WebhookPayloadError` when the body does not have the event's shape.
    """
    event, delivery = event_name(headers), delivery_id(headers)
    try:
        if event == "push":
            push = _Push.model_validate_json(body)
            if not push.ref.startswith("refs/heads/") or push.after in ZERO_SHAS:
                return None  # tag push, or a branch deletion
            if branch is not None and push.ref != f"refs/heads/{branch}":
                return None
            return Trigger(kind="push", repo=push.repository.full_name, clone_url=push.repository.clone_url,
                           ref=push.ref, sha=push.after, delivery=delivery)
        if event == "pull_request":
            pr = _PullRequestEvent.model_validate_json(body)
            if pr.action not in PR_ACTIONS:
                return None
            if branch is not None and pr.pull_request.base.ref != branch:
                return None
            return Trigger(kind="pull_request", repo=pr.repository.full_name,
                           clone_url=pr.repository.clone_url, ref=f"refs/pull/{pr.number}/head",
                           sha=pr.pull_request.head.sha, pr_number=pr.number, action=pr.action,
                           delivery=delivery)
        if event in APPROVAL_EVENTS:  # a hint that a commit waiting for approval may have it now
            pr = _PullRequestEvent.model_validate_json(body)
            if branch is not None and pr.pull_request.base.ref != branch:
                return None
            return Trigger(kind="review_approved", repo=pr.repository.full_name,
                           clone_url=pr.repository.clone_url, ref=f"refs/pull/{pr.number}/head",
                           sha=pr.pull_request.head.sha, pr_number=pr.number, action=pr.action, delivery=delivery)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
        raise WebhookPayloadError(f"{event} payload is malformed ({fields or 'not JSON'})") from None
    return None


def repo_full_name(source: str) -> str:
    """`owner/name` of a repository from its clone URL or path (the last two segments, `.git` stripped)."""
    if "://" in source:
        path = urlsplit(source).path
    elif "@" in source and ":" in source:  # scp-like: git@host:owner/name.git
        path = source.rpartition(":")[2]
    else:
        path = source
    segments = [s for s in path.split("/") if s]
    if segments:
        segments[-1] = segments[-1].removesuffix(".git")
    return "/".join(segments[-2:])


class DeliveryLog(Protocol):
    """Delivery ids already handled (in memory, or kept across restarts by the daemon's journal)."""

    def __contains__(self, delivery: object) -> bool: ...

    def add(self, delivery: str) -> None: ...


class _SeenDeliveries:
    """The last `size` delivery ids, oldest forgotten first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, delivery: object) -> bool:
        return delivery in self._ids

    def add(self, delivery: str) -> None:
        if not delivery:
            return
        self._ids[delivery] = None
        self._ids.move_to_end(delivery)
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)


async def _read_limited(request: Request, max_body: int) -> bytes | None:
    """The raw body, or None as soon as it is longer than `max_body` (whatever Content-Length says)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_app(
    secret: bytes,
    branch: str,
    on_trigger: Callable[[Trigger], None],
    max_body: int = MAX_BODY,
    remember: int = 1000,
    *,
    repo: str | None = None,
    seen: DeliveryLog | None = None,
) -> Starlette:
    """A Starlette app with `POST /hooks/gitea`; `on_trigger` must be quick (enqueue, not work).

    With `repo` (`owner/name`), events about any other repository are ignored (200, logged).
    `seen` remembers delivery ids (default: the last `remember` ones, in memory).
    """
    seen = seen if seen is not None else _SeenDeliveries(remember)

    async def receive(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "")
        if declared and not declared.isdigit():
            return JSONResponse({"error": "bad Content-Length"}, status_code=400)
        if declared and int(declared) > max_body:
            return JSONResponse({"error": "body too large"}, status_code=413)
        body = await _read_limited(request, max_body)
        if body is None:
            return JSONResponse({"error": "body too large"}, status_code=413)
        if not verify_signature(secret, body, request.headers):
            log.warning("webhook rejected: missing or bad signature")
            return JSONResponse({"error": "bad signature"}, status_code=401)
        delivery = delivery_id(request.headers)
        if delivery and delivery in seen:
            return JSONResponse({"status": "duplicate", "delivery": delivery}, status_code=200)
        try:
            trigger = parse_event(request.headers, body, branch)
        except WebhookPayloadError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if trigger is not None and repo and trigger.repo.lower() != repo.lower():
            log.warning("webhook for another repository ignored", extra={"context": trigger.repo})
            trigger = None
        if trigger is None:
            seen.add(delivery)
            return JSONResponse({"status": "ignored", "delivery": delivery}, status_code=200)
        on_trigger(trigger)
        seen.add(delivery)
        log.info("webhook accepted", extra={"revision": trigger.sha, "context": trigger.kind})
        return JSONResponse({"status": "accepted", "delivery": delivery}, status_code=202)

    return Starlette(routes=[Route("/hooks/gitea", receive, methods=["POST"])])
