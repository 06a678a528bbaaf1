"""Webhook verification, parsing and the receiver app, fed by the emulator's real deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from reconciler.forge.webhooks import WebhookPayloadError, parse_event, verify_signature
from tests.forge.conftest import Receiver
from tests.support.git_work import Work
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_hooks import ZERO, delivery_headers
from tests.support.gitea_repo import HOOK_SECRET, NAME, OWNER

BODY = b'{\n  "ref": "refs/heads/main"\n}'


def signed(body: bytes, secret: bytes = HOOK_SECRET, event: str = "push", flavor: str = "gitea-1.25") -> dict:
    return delivery_headers(flavor, secret, body, event, event)


# -- verify_signature ---------------------------------------------------------------------------


def test_good_signature() -> None:
    assert verify_signature(HOOK_SECRET, BODY, signed(BODY))


@pytest.mark.parametrize("header", ["X-Gitea-Signature", "X-Forgejo-Signature", "X-Hub-Signature-256"])
def test_any_one_signature_family_is_enough(header: str) -> None:
    digest = hmac.new(HOOK_SECRET, BODY, hashlib.sha256).hexdigest()
    value = f"sha256={digest}" if header == "X-Hub-Signature-256" else digest
    assert verify_signature(HOOK_SECRET, BODY, {header.lower(): value})


def test_bad_signature() -> None:
    assert not verify_signature(HOOK_SECRET, BODY, signed(BODY, secret=b"wrong"))
    assert not verify_signature(HOOK_SECRET, BODY + b" ", signed(BODY))  # the raw bytes, not the JSON
    assert not verify_signature(HOOK_SECRET, BODY, {"X-Gitea-Signature": "zz" * 32})


def test_missing_signature() -> None:
    assert not verify_signature(HOOK_SECRET, BODY, {})
    assert not verify_signature(HOOK_SECRET, BODY, signed(BODY, secret=b""))  # Gitea: empty headers


def test_empty_secret_rejects_everything() -> None:
    assert not verify_signature(b"", BODY, signed(BODY, secret=b""))
    empty_key = hmac.new(b"", BODY, hashlib.sha256).hexdigest()
    assert not verify_signature(b"", BODY, {"X-Gitea-Signature": empty_key})


# -- parse_event --------------------------------------------------------------------------------


def push_body(ref: str = "refs/heads/main", after: str = "a" * 40) -> bytes:
    return json.dumps({"ref": ref, "before": "b" * 40, "after": after,
                       "repository": {"full_name": "org/config", "clone_url": "http://127.0.0.1/org/config.git"},
                       "head_commit": {"timestamp": "2024-05-01T10:00:00+02:00"}}).encode()


def test_push_to_watched_branch() -> None:
    trigger = parse_event({"X-Gitea-Event": "push", "X-Gitea-Delivery": "d1"}, push_body(), "main")
    assert trigger is not None
    assert (trigger.kind, trigger.ref, trigger.sha, trigger.delivery) == ("push", "refs/heads/main", "a" * 40, "d1")


@pytest.mark.parametrize("body", [
    push_body(ref="refs/heads/other"), push_body(after=ZERO), push_body(ref="refs/tags/v1"),
])
def test_irrelevant_pushes_are_ignored(body: bytes) -> None:
    assert parse_event({"X-Gitea-Event": "push"}, body, "main") is None


def test_other_events_are_ignored() -> None:
    assert parse_event({"X-Gitea-Event": "issues"}, b"{}", "main") is None
    assert parse_event({"X-Gitea-Event": "pull_request"}, json.dumps({
        "action": "label_updated", "number": 1, "repository": {"full_name": "o/r"},
        "pull_request": {"head": {"sha": "a" * 40}, "base": {"ref": "main"}}}).encode(), "main") is None


def test_event_header_fallbacks() -> None:
    assert parse_event({"X-Forgejo-Event": "push"}, push_body(), "main") is not None
    assert parse_event({"X-GitHub-Event": "push"}, push_body(), "main") is not None


def test_malformed_payload_is_an_error() -> None:
    with pytest.raises(WebhookPayloadError):
        parse_event({"X-Gitea-Event": "push"}, b'{"ref": 5}', "main")
    with pytest.raises(WebhookPayloadError):
        parse_event({"X-Gitea-Event": "push"}, b"not json", "main")


# -- the receiver, fed by real deliveries -------------------------------------------------------


@pytest.fixture
def hooked(gitea: GiteaEmulator, receiver: Receiver, work: Work) -> Iterator[tuple[GiteaEmulator, Receiver, Work]]:
    gitea.add_webhook(OWNER, NAME, receiver.url, secret=HOOK_SECRET.decode())
    yield gitea, receiver, work


def test_signed_push_gives_exactly_one_trigger(hooked: tuple[GiteaEmulator, Receiver, Work]) -> None:
    gitea, receiver, work = hooked
    sha = work.commit(message="first")
    work.push("main")
    (delivery,) = gitea.deliver_push(OWNER, NAME, "refs/heads/main", ZERO, sha)
    assert delivery.status_code == 202
    (trigger,) = receiver.triggers
    assert (trigger.kind, trigger.repo, trigger.ref, trigger.sha) == ("push", "org/config", "refs/heads/main", sha)
    assert trigger.clone_url == gitea.clone_url(OWNER, NAME)
    assert trigger.delivery == delivery.delivery_id


def test_duplicate_delivery_is_idempotent(hooked: tuple[GiteaEmulator, Receiver, Work]) -> None:
    gitea, receiver, work = hooked
    sha = work.commit(message="first")
    work.push("main")
    (delivery,) = gitea.deliver_push(OWNER, NAME, "refs/heads/main", ZERO, sha)
    again = httpx.post(receiver.url, content=delivery.body, headers=delivery.headers)
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert len(receiver.triggers) == 1


def test_forged_delivery_gives_no_trigger(gitea: GiteaEmulator, receiver: Receiver, work: Work) -> None:
    gitea.add_webhook(OWNER, NAME, receiver.url, secret="not-the-secret")
    gitea.add_webhook(OWNER, NAME, receiver.url, secret="")  # unsigned: empty signature headers
    sha = work.commit(message="first")
    work.push("main")
    deliveries = gitea.deliver_push(OWNER, NAME, "refs/heads/main", ZERO, sha)
    assert [d.status_code for d in deliveries] == [401, 401]
    assert receiver.triggers == []


def test_empty_configured_secret_rejects_signed_deliveries(
    gitea: GiteaEmulator, receiver_factory: Callable[..., Receiver], work: Work
) -> None:
    receiver = receiver_factory(secret=b"")
    gitea.add_webhook(OWNER, NAME, receiver.url, secret="")
    sha = work.commit(message="first")
    work.push("main")
    assert [d.status_code for d in gitea.deliver_push(OWNER, NAME, "refs/heads/main", ZERO, sha)] == [401]
    assert receiver.triggers == []


def test_push_to_another_branch_is_ignored(hooked: tuple[GiteaEmulator, Receiver, Work]) -> None:
    gitea, receiver, work = hooked
    sha = work.commit(message="elsewhere", branch="other")
    work.push("other")
    (delivery,) = gitea.deliver_push(OWNER, NAME, "refs/heads/other", ZERO, sha)
    assert (delivery.status_code, json.loads(delivery.response)["status"]) == (200, "ignored")
    assert receiver.triggers == []


def test_pull_request_synchronized_gives_the_new_head(hooked: tuple[GiteaEmulator, Receiver, Work]) -> None:
    gitea, receiver, work = hooked
    work.commit(message="base")
    work.push("main")
    work.commit(message="proposal", branch="change")
    work.push("change")
    number = gitea.open_pull_request(OWNER, NAME, "change")
    newer = work.commit(message="proposal, take two")
    work.push("change")
    (delivery,) = gitea.deliver_pull_request(OWNER, NAME, number, action="synchronized")
    assert delivery.headers["X-Gitea-Event"] == "pull_request"
    assert delivery.headers["X-Gitea-Event-Type"] == "pull_request_sync"
    assert delivery.status_code == 202
    (trigger,) = receiver.triggers
    assert (trigger.kind, trigger.sha, trigger.pr_number, trigger.action) == ("pull_request", newer, number,
                                                                              "synchronized")
    assert trigger.ref == f"refs/pull/{number}/head"


def test_pull_request_against_another_base_is_ignored(hooked: tuple[GiteaEmulator, Receiver, Work]) -> None:
    gitea, receiver, work = hooked
    work.commit(message="base", branch="release")
    work.push("release")
    work.commit(message="proposal", branch="change")
    work.push("change")
    number = gitea.open_pull_request(OWNER, NAME, "change", base="release")
    (delivery,) = gitea.deliver_pull_request(OWNER, NAME, number, action="opened")
    assert delivery.status_code == 200 and receiver.triggers == []


def test_forgejo_headers_are_accepted(gitea: GiteaEmulator, receiver: Receiver, work: Work) -> None:
    gitea.flavor = "forgejo"
    gitea.add_webhook(OWNER, NAME, receiver.url, secret=HOOK_SECRET.decode())
    sha = work.commit(message="first")
    work.push("main")
    (delivery,) = gitea.deliver_push(OWNER, NAME, "refs/heads/main", ZERO, sha)
    assert "X-Forgejo-Signature" in delivery.headers and delivery.status_code == 202


def test_oversized_body_is_413_before_anything(receiver_factory: Callable[..., Receiver]) -> None:
    receiver = receiver_factory(max_body=1000)
    big = b"{" + b" " * 2000 + b"}"
    declared = httpx.post(receiver.url, content=big, headers=signed(big))
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        for _ in range(20):
            yield b" " * 100

    streamed = httpx.post(receiver.url, content=chunks(), headers={"X-Gitea-Event": "push"})
    assert streamed.status_code == 413
    assert receiver.triggers == []


def test_unsigned_request_is_401_before_parsing(receiver: Receiver) -> None:
    answer = httpx.post(receiver.url, content=b"not json", headers={"X-Gitea-Event": "push"})
    assert answer.status_code == 401


def test_signed_garbage_is_400(receiver: Receiver) -> None:
    answer = httpx.post(receiver.url, content=b"not json", headers=signed(b"not json"))
    assert answer.status_code == 400 and receiver.triggers == []
