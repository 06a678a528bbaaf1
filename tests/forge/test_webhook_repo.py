"""The receiver checks the repository's full name and remembers deliveries where it is told to."""

from __future__ import annotations

import json
import warnings

import pytest

from reconciler.forge.webhooks import Trigger, repo_full_name, webhook_app
from tests.support.gitea_hooks import delivery_headers
from tests.support.gitea_repo import HOOK_SECRET

with warnings.catch_warnings():  # Starlette 1.x would rather have httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def push(full_name: str) -> bytes:
    return json.dumps({"ref": "refs/heads/main", "before": "b" * 40, "after": "a" * 40,
                       "repository": {"full_name": full_name, "clone_url": f"http://h/{full_name}.git"}}).encode()


def pull_request(full_name: str) -> bytes:
    return json.dumps({"action": "opened", "number": 3, "repository": {"full_name": full_name},
                       "pull_request": {"head": {"sha": "c" * 40}, "base": {"ref": "main"}}}).encode()


def post(client: TestClient, body: bytes, event: str = "push", delivery: str | None = None) -> tuple[int, str]:
    headers = delivery_headers("gitea-1.25", HOOK_SECRET, body, event, event, delivery)
    answer = client.post("/hooks/gitea", content=body, headers=headers)
    return answer.status_code, answer.json().get("status", "")


@pytest.mark.parametrize("body, event", [(push("evil/config"), "push"), (pull_request("evil/config"), "pull_request")])
def test_an_event_about_another_repository_is_ignored(body: bytes, event: str) -> None:
    triggers: list[Trigger] = []
    client = TestClient(webhook_app(HOOK_SECRET, "main", triggers.append, repo="org/config"))
    assert post(client, body, event) == (200, "ignored")
    assert triggers == []
    assert post(client, push("Org/Config")) == (202, "accepted")  # Gitea names are case-insensitive
    assert [t.repo for t in triggers] == ["Org/Config"]


def test_deliveries_are_remembered_in_the_log_given() -> None:
    class Log(set[str]):
        pass

    seen, triggers = Log({"known"}), []  # e.g. remembered by a process that ran before
    client = TestClient(webhook_app(HOOK_SECRET, "main", triggers.append, repo="org/config", seen=seen))
    assert post(client, push("org/config"), delivery="known") == (200, "duplicate")
    assert post(client, push("org/config"), delivery="fresh") == (202, "accepted")
    assert post(client, push("org/config"), delivery="fresh") == (200, "duplicate")
    assert post(client, push("evil/config"), delivery="other") == (200, "ignored")
    assert seen == {"known", "fresh", "other"} and len(triggers) == 1


@pytest.mark.parametrize("source, name", [
    ("http://127.0.0.1:3000/org/config.git", "org/config"),
    ("https://gitea.example.com/sub/path/acme/config", "acme/config"),
    ("git@gitea.example.com:acme/config.git", "acme/config"),
    ("ssh://git@gitea.example.com:2222/acme/config.git", "acme/config"),
    ("/srv/git/acme/config.git/", "acme/config"),
])
def test_repo_full_name_from_the_source(source: str, name: str) -> None:
    assert repo_full_name(source) == name
