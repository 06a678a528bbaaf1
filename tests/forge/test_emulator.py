"""The emulator keeps the contract in shared/reference/gitea-api.md: raw HTTP against it, no client."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.forge.conftest import Receiver
from tests.support.git_work import Work
from tests.support.gitea_emulator import GiteaEmulator, combine, combine_legacy
from tests.support.gitea_hooks import ZERO
from tests.support.gitea_repo import NAME, OWNER, TOKEN

AUTH = {"Authorization": f"token {TOKEN}"}


@pytest.fixture
def api(gitea: GiteaEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{gitea.api_url}/repos/{OWNER}/{NAME}", headers=AUTH) as client:
        yield client


def test_token_is_required(gitea: GiteaEmulator, api: httpx.Client, head: str) -> None:
    url = f"{gitea.api_url}/repos/{OWNER}/{NAME}/branches/main"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "token wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Token {TOKEN}"}).status_code == 401  # <=1.24 / Forgejo
    assert httpx.get(url, headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    assert all("Authorization" not in r.headers for r in gitea.request_log)


def test_branch_commit_id_comes_from_the_real_repo(api: httpx.Client, head: str) -> None:
    branch = api.get("/branches/main").json()
    assert branch["commit"]["id"] == head and "sha" not in branch["commit"]
    assert api.get("/branches/nope").status_code == 404


def test_status_shape_and_per_commit_index(api: httpx.Client, work: Work, head: str) -> None:
    other = work.commit(message="second")
    work.push("main")
    created = api.post(f"/statuses/{head}", json={"state": "pending", "context": " c ", "description": " d "})
    assert created.status_code == 201
    row = created.json()
    assert row["status"] == "pending" and "state" not in row
    assert (row["id"], row["context"], row["description"]) == (1, "c", "d")
    assert row["created_at"] == row["updated_at"]
    assert api.post(f"/statuses/{head}", json={"state": "success", "context": "c"}).json()["id"] == 2
    assert api.post(f"/statuses/{other}", json={"state": "success", "context": "c"}).json()["id"] == 1
    listed = api.get(f"/statuses/{head}", params={"sort": "leastindex"}).json()
    assert [r["id"] for r in listed] == [2, 1]  # append-only: both rows kept
    assert api.get(f"/statuses/{head[:10]}").json() == []  # the list route takes the SHA literally
    short = api.post(f"/statuses/{head[:10]}", json={"state": "error", "context": "short"})
    assert short.status_code == 201 and short.json()["url"].endswith(f"/statuses/{head}")


def test_unknown_commit_on_post_status_is_500(api: httpx.Client, head: str) -> None:
    assert api.post(f"/statuses/{'f' * 40}", json={"state": "success"}).status_code == 500


def test_combined_status(api: httpx.Client, head: str) -> None:
    empty = api.get("/commits/main/status").json()
    assert (empty["state"], empty["statuses"], empty["total_count"], empty["sha"]) == ("", None, 0, head)
    api.post(f"/statuses/{head}", json={"state": "failure", "context": "a"})
    api.post(f"/statuses/{head}", json={"state": "success", "context": "a"})
    api.post(f"/statuses/{head}", json={"state": "warning", "context": "b"})
    combined = api.get(f"/commits/{head}/status")
    body = combined.json()
    assert body["state"] == "success" and body["total_count"] == 2
    assert combined.headers["X-Total-Count"] == "2"
    assert api.get("/commits/unknown-ref/status").status_code == 404


@pytest.mark.parametrize(("states", "modern", "legacy"), [
    (["warning"], "success", "warning"),
    (["pending", "warning"], "pending", "warning"),
    (["success", "warning"], "success", "warning"),
    (["skipped", "skipped"], "success", ""),
    (["error"], "failure", "failure"),
    (["success", "error", "pending"], "failure", "failure"),
    (["success", "pending"], "pending", "pending"),
])
def test_combine_algorithms(states: list[str], modern: str, legacy: str) -> None:
    assert combine(states) == modern
    assert combine_legacy(states) == legacy


def test_pull_list_state_default_and_paging(gitea: GiteaEmulator, api: httpx.Client, work: Work, head: str) -> None:
    work.commit(message="pr", branch="change")
    work.push("change")
    numbers = [gitea.open_pull_request(OWNER, NAME, "change") for _ in range(4)]
    gitea.close_pull_request(OWNER, NAME, numbers[0])
    assert len(api.get("/pulls").json()) == 4  # no default state: all of them
    assert len(api.get("/pulls", params={"state": "open"}).json()) == 3
    page = api.get("/pulls", params={"state": "all", "limit": 1, "page": 2})
    assert page.headers["X-Total-Count"] == "4"
    link = page.headers["Link"]
    assert ", " not in link and link.count(",") == 3
    assert 'rel="next"' in link.split(",")[0] and "page=3" in link.split(",")[0]
    pr = page.json()[0]
    assert pr["url"] == pr["html_url"] and pr["head"]["ref"] == "change" and pr["base"]["ref"] == "main"


def test_page_size_is_clamped(gitea: GiteaEmulator, api: httpx.Client, head: str) -> None:
    for n in range(60):
        api.post(f"/statuses/{head}", json={"state": "success", "context": f"c{n}"})
    assert len(api.get(f"/statuses/{head}", params={"limit": 100}).json()) == 50
    assert len(api.get(f"/statuses/{head}").json()) == 30
    assert len(api.get(f"/statuses/{head}", params={"limit": 50, "page": 2}).json()) == 10


def test_comments(gitea: GiteaEmulator, api: httpx.Client, work: Work, head: str) -> None:
    work.commit(message="pr", branch="change")
    work.push("change")
    number = gitea.open_pull_request(OWNER, NAME, "change")
    assert api.post(f"/issues/{number}/comments", json={"body": ""}).status_code == 422
    assert api.post("/issues/99/comments", json={"body": "x"}).status_code == 500
    created = api.post(f"/issues/{number}/comments", json={"body": "hello"})
    assert created.status_code == 201
    cid = created.json()["id"]
    edited = api.patch(f"/issues/comments/{cid}", json={"body": "edited"})
    assert edited.status_code == 200 and edited.json()["body"] == "edited"
    listed = api.get(f"/issues/{number}/comments")
    assert [c["body"] for c in listed.json()] == ["edited"] and listed.headers["X-Total-Count"] == "1"
    assert api.patch("/issues/comments/424242", json={"body": "x"}).status_code == 404


def test_git_refs_is_a_prefix_match_returning_an_array(api: httpx.Client, work: Work, head: str) -> None:
    work.commit(message="x", branch="main2")
    work.push("main2")
    refs = api.get("/git/refs/heads/main").json()
    assert sorted(r["ref"] for r in refs) == ["refs/heads/main", "refs/heads/main2"]
    assert api.get("/git/refs/heads/zzz").status_code == 404


def test_faults_match_their_prefix(gitea: GiteaEmulator, api: httpx.Client, head: str) -> None:
    gitea.fail_next(1, "503", path_prefix="/api/v1/repos/org/config/pulls")
    assert api.get("/branches/main").status_code == 200
    assert api.get("/pulls").status_code == 503
    assert api.get("/pulls").status_code == 200


def test_push_delivery_is_faithful(gitea: GiteaEmulator, receiver: Receiver, work: Work) -> None:
    gitea.add_webhook(OWNER, NAME, receiver.url, secret="s3")
    first = work.commit(message="one")
    shas = [work.commit(message=f"commit {n}") for n in range(6)]
    work.push("main")
    (delivery,) = gitea.deliver_push(OWNER, NAME, "refs/heads/main", first, shas[-1])
    assert delivery.body.startswith(b'{\n  "ref": "refs/heads/main",\n  "before": ')
    expected = hmac.new(b"s3", delivery.body, hashlib.sha256).hexdigest()
    headers = delivery.headers
    assert headers["X-Gitea-Signature"] == expected == headers["X-Gogs-Signature"]
    assert headers["X-Hub-Signature-256"] == f"sha256={expected}"
    assert headers["X-Hub-Signature"].startswith("sha1=")
    assert headers["X-Gitea-Delivery"] == headers["X-GitHub-Delivery"] == headers["X-Gogs-Delivery"]
    assert headers["X-Gitea-Event"] == headers["X-GitHub-Event"] == "push"
    payload = json.loads(delivery.body)
    assert payload["total_commits"] == 6 and len(payload["commits"]) == 5  # FEED_MAX_COMMIT_NUM
    assert payload["commits"][0]["id"] == shas[-1] == payload["head_commit"]["id"]
    assert isinstance(payload["head_commit"]["timestamp"], str)
    assert payload["repository"]["full_name"] == "org/config" and payload["pusher"]["username"] == "reconciler"
    assert gitea.deliver_push(OWNER, NAME, "refs/heads/main", shas[-1], ZERO) == []  # deletion: no push


def test_webhooks_only_go_to_loopback(gitea: GiteaEmulator) -> None:
    with pytest.raises(ValueError, match="loopback"):
        gitea.add_webhook(OWNER, NAME, "http://192.0.2.1/hooks", secret="s")
