"""Newest wins: a burst of pushes runs the head the remote lists; a head replaced while its run waits
on a gate says which commit superseded it."""

from __future__ import annotations

from typing import Any

import docker

from tests.support.clock import wait_until
from tests.support.daemon import CONTEXTS, Fleet, push, states, statuses, workspace_containers
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_hooks import ZERO
from tests.support.gitea_repo import NAME, OWNER


def test_a_burst_of_pushes_converges_the_newest_head_only(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient
) -> None:
    daemon = daemon_factory()
    shas = []
    for version in ("1", "2", "3"):
        fleet.write(version)
        shas.append(fleet.commit(f"v{version}"))
    fleet.push()
    first, second, newest = shas
    # three deliveries back to back, each naming its own commit: hints to look at the branch, whose
    # head at the remote is already the newest
    for before, after in ((ZERO, first), (first, second), (second, newest)):
        assert all(d.status_code == 202 for d in gitea.deliver_push(OWNER, NAME, "refs/heads/main", before, after))

    assert wait_until(lambda: states(gitea, newest) == dict.fromkeys(CONTEXTS, "success"), timeout=120), (
        states(gitea, newest), daemon.logs()[-3000:])
    assert [r["status"] for r in daemon.runs(newest)] == ["success"]
    for old in (first, second):  # never the head the daemon saw: never run, nothing posted
        assert daemon.runs(old) == [] and statuses(gitea, old) == {}
    found = workspace_containers(docker_client, daemon.instance)
    assert {row["Labels"]["reconciler.revision"] for row in found.values()} == {newest}


def test_a_converged_head_is_not_run_again(gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any) -> None:
    daemon = daemon_factory(poll=0.5)
    fleet.write("1", canary=0, production=1)
    sha = fleet.commit("v1")
    push(gitea, fleet, ZERO, sha)
    assert wait_until(lambda: [r["status"] for r in daemon.runs(sha)] == ["success"], timeout=60), daemon.logs()
    # the same head again (a redelivery under a new id, and many polls): no second run
    assert gitea.deliver_push(OWNER, NAME, "refs/heads/main", ZERO, sha)[0].status_code == 202
    polls = len(gitea.request_log)
    assert wait_until(lambda: len(gitea.request_log) > polls + 6, timeout=30)  # several polls went by
    assert [r["status"] for r in daemon.runs(sha)] == ["success"]


def test_a_bad_commit_waiting_on_its_gate_never_blocks_its_fix(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient
) -> None:
    daemon = daemon_factory()
    fleet.write("1", fail_canary=True, timeout=300)  # left alone, the canary gate would wait 5 minutes
    bad = fleet.commit("bad canary")
    push(gitea, fleet, ZERO, bad)
    assert wait_until(lambda: any(r["status"] == "running" for r in daemon.runs(bad))
                      and "pending" in states(gitea, bad).values(), timeout=60), daemon.logs()

    fleet.write("2", timeout=300)
    fix = fleet.commit("fix")
    push(gitea, fleet, bad, fix)
    assert wait_until(lambda: states(gitea, fix) == dict.fromkeys(CONTEXTS, "success"), timeout=120), (
        daemon.logs()[-3000:])
    bad_run = daemon.runs(bad)[-1]
    assert bad_run["status"] == "superseded" and bad_run["superseded_by"] == fix
    assert all(f"superseded by {fix[:12]}" in row["description"] and row["state"] == "warning"
               for row in statuses(gitea, bad).values())  # not red: nothing went wrong with it
    found = workspace_containers(docker_client, daemon.instance)
    assert {row["Labels"]["reconciler.revision"] for row in found.values()} == {fix}
