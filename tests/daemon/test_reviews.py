"""Pull request review: plan status on each head, ONE comment edited in place, nothing applied."""

from __future__ import annotations

from typing import Any

import docker

from tests.support.clock import wait_until
from tests.support.daemon import Fleet, push, states, statuses, workspace_containers
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_hooks import ZERO
from tests.support.gitea_repo import NAME, OWNER

MARKER = "<!-- reconciler:plan -->"


def _comments(gitea: GiteaEmulator) -> list[dict[str, Any]]:
    return [c for c in gitea.comments.values() if MARKER in c.get("body", "")]


def test_pr_opened_then_updated_gets_one_comment_and_a_plan_status_per_head(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient
) -> None:
    daemon = daemon_factory()
    fleet.write("1")
    base = fleet.commit("v1")
    push(gitea, fleet, ZERO, base)
    assert wait_until(lambda: [r["status"] for r in daemon.runs(base)] == ["success"], timeout=90), daemon.logs()
    before = {ws: row["Id"] for ws, row in workspace_containers(docker_client, daemon.instance).items()}

    # opened: one more workspace and a changed one
    fleet.write("2", production=2)
    head1 = fleet.commit("grow", branch="feature")
    fleet.push("feature")
    number = gitea.open_pull_request(OWNER, NAME, "feature", "main")
    assert gitea.deliver_pull_request(OWNER, NAME, number, "opened")[0].status_code == 202
    assert wait_until(lambda: states(gitea, head1).get("reconciler/plan") == "success", timeout=60), daemon.logs()
    plan_status = statuses(gitea, head1)["reconciler/plan"]
    assert plan_status["description"] == "+1 ~0 -/+2 -0 =0"  # one created, two recreated
    review = daemon.runs(head1)[-1]
    assert review["kind"] == "review" and plan_status["target_url"] == f"{daemon.url}/runs/{review['id']}"
    assert wait_until(lambda: len(_comments(gitea)) == 1, timeout=30)
    first = _comments(gitea)[0]
    assert head1[:12] in first["body"] and "acme/ws2" in first["body"]

    # updated: the new head breaks the config -> failure at file:line, the same comment edited
    fleet.write("2", production=2, broken=True)
    head2 = fleet.commit("typo", branch="feature")
    fleet.push("feature")
    assert gitea.deliver_pull_request(OWNER, NAME, number, "synchronized")[0].status_code == 202
    assert wait_until(lambda: states(gitea, head2).get("reconciler/plan") == "failure", timeout=60), daemon.logs()
    failure = statuses(gitea, head2)["reconciler/plan"]["description"]
    assert failure.startswith("invalid config: orgs/acme/org.yaml:") and "tier" in failure
    assert wait_until(lambda: head2[:12] in _comments(gitea)[0]["body"], timeout=30)
    comments = _comments(gitea)
    assert len(comments) == 1 and comments[0]["id"] == first["id"]
    assert "Invalid config" in comments[0]["body"]
    assert states(gitea, head1)["reconciler/plan"] == "success"  # the old head keeps its own status

    # nothing from the PR was applied
    after = {ws: row["Id"] for ws, row in workspace_containers(docker_client, daemon.instance).items()}
    assert after == before
    assert all(r["kind"] == "review" for r in daemon.runs() if r["revision"] in (head1, head2))
