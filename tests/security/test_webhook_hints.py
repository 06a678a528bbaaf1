"""Webhooks are hints: whatever a correctly signed payload names, the daemon converges the branch head
it lists at the remote, and reviews the PR heads the API lists. Replays and duplicates change nothing.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import docker
import httpx

from reconciler.daemon.journal import Journal
from reconciler.daemon.loop import Request
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.reviews import Reviewer
from reconciler.daemon.scheduler import Poller
from reconciler.forge.base import PullRequest
from reconciler.model.enums import Trigger
from tests.support.clock import wait_until
from tests.support.daemon import Fleet, push, states, workspace_containers
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_hooks import ZERO, delivery_headers
from tests.support.gitea_repo import HOOK_SECRET
from tests.support.net import dead_port

HINTED = "branch head listed after a push hint"


# -- the hint receivers, alone ---------------------------------------------------------------------


class Heads:
    def __init__(self, sha: str) -> None:
        self.sha = sha
        self.calls = 0

    def remote_heads(self) -> dict[str, str]:
        heads = {"refs/heads/main": self.sha, "refs/heads/evil": "e" * 40}
        self.calls += 1
        return heads


class Submitted:
    def __init__(self) -> None:
        self.head: str | None = "a" * 40
        self.requests: list[Request] = []

    def submit(self, request: Request) -> bool:
        self.requests.append(request)
        self.head = request.sha
        return True


def test_a_push_hint_polls_on_the_poller_thread_and_submits_the_listed_head() -> None:
    heads, worker = Heads("a" * 40), Submitted()
    poller = Poller(heads, "main", worker)
    poller.start()
    try:
        poller.hint()  # the branch did not move: nothing to run
        assert wait_until(lambda: heads.calls == 1, timeout=10)
        heads.sha = "b" * 40
        poller.hint()
        assert wait_until(lambda: worker.requests, timeout=10)
        assert [(r.sha, r.trigger) for r in worker.requests] == [("b" * 40, Trigger.PUSH)]
    finally:
        poller.shutdown()


class OpenPulls:
    def __init__(self) -> None:
        self.pulls = [PullRequest(number=4, head_sha="c" * 40, head_ref="feature", base_ref="main", url="")]

    def open_pull_requests(self, base: str) -> list[PullRequest]:
        return self.pulls


def test_a_pull_request_sweep_request_reviews_the_head_the_api_lists(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    reviewer = Reviewer(None, "main", journal, Metrics(), OpenPulls(), None, "")
    reviewed: list[tuple[int, str]] = []
    reviewer.review = lambda number, sha, fork: reviewed.append((number, sha))  # the plan itself is not the point
    reviewer.start()
    try:
        reviewer.request_sweep()
        assert wait_until(lambda: reviewed == [(4, "c" * 40)], timeout=10)
        assert wait_until(lambda: reviewer.in_progress() == {}, timeout=10)
    finally:
        reviewer.shutdown(10)


# -- the real daemon -------------------------------------------------------------------------------


def _post(daemon: Any, body: bytes, delivery: str | None = None) -> tuple[int, str]:
    headers = delivery_headers("gitea-1.25", HOOK_SECRET, body, "push", "push", delivery)
    answer = httpx.post(f"{daemon.url}/hooks/gitea", content=body, headers=headers, timeout=10)
    return answer.status_code, answer.json().get("status", "")


def _hinted(daemon: Any, count: int) -> bool:
    return daemon.logs().count(HINTED) >= count


def _fleet_at(client: docker.DockerClient, daemon: Any) -> set[str]:
    return {row["Labels"]["reconciler.revision"] for row in workspace_containers(client, daemon.instance).values()}


def test_signed_pushes_are_hints_only(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    (tmp_path / "pages-token").write_text("pages-token-123\n")
    pages = f"http://127.0.0.1:{dead_port()}"
    extra = ("--listen-pages", pages.removeprefix("http://"), "--pages-token-file", str(tmp_path / "pages-token"))
    daemon = daemon_factory(extra=extra)
    fleet.write("1", canary=1, production=0)
    v1 = fleet.commit("v1")
    push(gitea, fleet, ZERO, v1)
    assert wait_until(lambda: [r["status"] for r in daemon.runs(v1)] == ["success"], timeout=90), daemon.logs()
    fleet.write("2", canary=1, production=0)
    v2 = fleet.commit("v2")
    push(gitea, fleet, v1, v2)
    assert wait_until(lambda: [r["status"] for r in daemon.runs(v2)] == ["success"], timeout=90), daemon.logs()
    assert _fleet_at(docker_client, daemon) == {v2}
    first = gitea.deliveries[0]
    hints = daemon.logs().count(HINTED)
    before = daemon.runs()

    # a replay of the v1 delivery under a fresh id: accepted as a hint, the head is still v2
    assert _post(daemon, first.body) == (202, "accepted")
    assert wait_until(lambda: _hinted(daemon, hints + 1), timeout=30), daemon.logs()[-3000:]

    # correctly signed, for the watched branch, naming a commit that only exists on another branch
    fleet.write("evil", canary=1, production=0)
    evil = fleet.commit("evil", branch="evil")
    fleet.push("evil")
    payload = json.loads(first.body)
    payload.update(before=v2, after=evil)
    body = json.dumps(payload).encode()
    assert _post(daemon, body, "evil-1") == (202, "accepted")
    assert wait_until(lambda: _hinted(daemon, hints + 2), timeout=30), daemon.logs()[-3000:]
    assert _post(daemon, body, "evil-1") == (200, "duplicate")

    # the same, about another repository
    payload["repository"] = {**payload["repository"], "full_name": "someone/else"}
    assert _post(daemon, json.dumps(payload).encode()) == (200, "ignored")
    assert "webhook for another repository ignored" in daemon.logs()

    assert daemon.runs() == before and daemon.runs(evil) == []
    assert states(gitea, evil) == {}
    assert _fleet_at(docker_client, daemon) == {v2}
    assert daemon.health()["head"] == v2

    # the pages on their own listener, behind the token; health and the hook stay open
    assert daemon.get("/runs").status_code == 404 and daemon.get("/healthz").status_code == 200
    assert httpx.get(f"{pages}/runs", timeout=10).status_code == 401
    listing = httpx.get(f"{pages}/runs", headers={"Authorization": "Bearer pages-token-123"}, timeout=10)
    assert listing.status_code == 200 and f"runs/{before[-1]['id']}" in listing.text

    # delivery ids are remembered across a restart
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    restarted = daemon_factory(hook=False, extra=extra)
    assert httpx.post(f"{restarted.url}/hooks/gitea", content=first.body, headers=first.headers,
                      timeout=10).json()["status"] == "duplicate"
    assert _post(restarted, body, "evil-1") == (200, "duplicate")
    assert restarted.runs(evil) == []
