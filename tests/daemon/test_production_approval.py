"""The real daemon with an org that asks for manual production (`production: manual` in its
org.yaml, the policy saying auto): only that org's production waits after a passed canary, the other
org converges; an operator's promotion, then an official approval on the merged pull request (told
by its webhook), let it through, while an approval that does not count leaves it waiting."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import docker

from tests.daemon.test_api import api, revisions, with_token
from tests.support.clock import wait_until
from tests.support.daemon import CONTEXTS, ORG, Fleet, push, statuses
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_hooks import ZERO
from tests.support.gitea_repo import NAME, OWNER


def write(fleet: Fleet, acme: str, beta: str) -> None:
    fleet.write(acme)
    items = "\n".join(f"  - name: ws{i}\n    tier: {tier}\n    env: {{\"VERSION\": \"{beta}\"}}"
                      for i, tier in enumerate(("canary", "production")))
    fleet.work.write({"orgs/beta/org.yaml": ORG.replace("name: Acme\n", "name: Beta\nproduction: manual\n") % {
        "interval": 1, "workspaces": items}})


def waiting(gitea: GiteaEmulator, sha: str) -> bool:
    found = statuses(gitea, sha)
    return (found.get(CONTEXTS[0], {}).get("state") == "success"
            and "waiting for approval (1 change)" in found.get(CONTEXTS[1], {}).get("description", ""))


def approvals(daemon: Any) -> dict[str, str]:
    db = sqlite3.connect(f"file:{daemon.state_dir / 'journal.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        return {r[0]: r[1] for r in db.execute("SELECT revision, by FROM approvals")}
    finally:
        db.close()


def test_an_orgs_manual_production_waits_alone_and_an_official_review_on_the_merged_pull_request_approves(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    daemon = daemon_factory(extra=with_token(tmp_path))
    write(fleet, "1", "1")
    v1 = fleet.commit("v1")
    push(gitea, fleet, ZERO, v1)
    assert wait_until(lambda: waiting(gitea, v1), timeout=120), (statuses(gitea, v1), daemon.logs()[-3000:])
    assert statuses(gitea, v1)[CONTEXTS[1]]["state"] == "pending"
    assert revisions(docker_client, daemon.instance) == {"acme/ws0": v1, "acme/ws1": v1, "beta/ws0": v1}
    assert api(daemon, "POST", "promote", {"sha": v1}).status_code == 202  # policy auto, the org manual
    assert wait_until(lambda: revisions(docker_client, daemon.instance).get("beta/ws1") == v1, timeout=90), (
        daemon.logs()[-3000:])
    assert approvals(daemon) == {v1: "operator"}

    fleet.work.run("checkout", "-q", "-B", "change")  # a pull request by dev changes beta
    write(fleet, "1", "2")
    fleet.commit("beta v2", branch="change")
    fleet.work.push("change", force=True)
    number = gitea.open_pull_request(OWNER, NAME, "change", author="dev")
    gitea.add_review(OWNER, NAME, number, "eve", official=False)  # no write access: does not count
    merged = gitea.merge_pull_request(OWNER, NAME, number)
    deliveries = gitea.deliver_push(OWNER, NAME, "refs/heads/main", v1, merged)
    assert all(d.status_code == 202 for d in deliveries)
    assert wait_until(lambda: waiting(gitea, merged), timeout=120), (statuses(gitea, merged), daemon.logs()[-3000:])
    assert revisions(docker_client, daemon.instance)["beta/ws1"] == v1

    gitea.add_review(OWNER, NAME, number, "bob")  # official: approves, told by the review's webhook
    assert all(d.status_code == 202 for d in gitea.deliver_review_approved(OWNER, NAME, number))
    assert wait_until(lambda: {c: statuses(gitea, merged).get(c, {}).get("state") for c in CONTEXTS}
                      == dict.fromkeys(CONTEXTS, "success"), timeout=120), (statuses(gitea, merged),
                                                                            daemon.logs()[-3000:])
    assert revisions(docker_client, daemon.instance)["beta/ws1"] == merged
    assert approvals(daemon)[merged] == f"bob (review on #{number})"
    assert "production approved by a review" in daemon.logs()
