"""Faults: drift healed by resync, Gitea down while posting, SIGTERM mid-run, kill -9 mid-run."""

from __future__ import annotations

import signal
from typing import Any

import docker

from tests.support.clock import wait_until
from tests.support.daemon import CONTEXTS, Fleet, containers, push, states, workspace_containers
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_hooks import ZERO
from tests.support.gitea_repo import NAME, OWNER


def _converged(daemon: Any, client: docker.DockerClient, sha: str, count: int) -> bool:
    try:
        found = workspace_containers(client, daemon.instance)
    except AssertionError:  # a `.prev` copy kept for rollback while a run is in progress
        return False
    return len(found) == count and all(
        r["Labels"]["reconciler.revision"] == sha and r["State"] == "running" for r in found.values())


def test_a_container_removed_by_hand_comes_back_within_a_resync(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient
) -> None:
    daemon = daemon_factory(resync=2)
    fleet.write("1")
    sha = fleet.commit("v1")
    push(gitea, fleet, ZERO, sha)
    assert wait_until(lambda: [r["status"] for r in daemon.runs(sha)] == ["success"], timeout=90), daemon.logs()
    gone = workspace_containers(docker_client, daemon.instance)["acme/ws1"]
    docker_client.api.remove_container(gone["Id"], force=True)

    assert wait_until(lambda: _converged(daemon, docker_client, sha, 2), timeout=90), daemon.logs()[-3000:]
    assert workspace_containers(docker_client, daemon.instance)["acme/ws1"]["Id"] != gone["Id"]
    want = [("success", "push"), ("success", "resync")]
    assert wait_until(lambda: [(r["status"], r["trigger"]) for r in daemon.runs(sha)] == want, timeout=60), (
        daemon.runs(sha))


def test_gitea_down_while_posting_statuses_apply_completes_and_statuses_follow(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient
) -> None:
    daemon = daemon_factory()
    fleet.write("1", canary=1, production=0)
    sha = fleet.commit("v1")
    gitea.fail_next(100_000, "500", path_prefix=f"/api/v1/repos/{OWNER}/{NAME}/statuses")
    push(gitea, fleet, ZERO, sha)

    assert wait_until(lambda: [r["status"] for r in daemon.runs(sha)] == ["success"], timeout=90), daemon.logs()
    assert _converged(daemon, docker_client, sha, 1)
    assert states(gitea, sha) == {}  # nothing got through while Gitea failed

    gitea.faults.clear()  # Gitea is back
    assert wait_until(lambda: states(gitea, sha) == dict.fromkeys(CONTEXTS, "success"), timeout=60), (
        states(gitea, sha), daemon.logs()[-3000:])


def _mid_run(daemon: Any, sha: str) -> bool:
    """A run of `sha` is applying: its canary action is journalled and the run has not finished."""
    rows = daemon.runs(sha)
    if not rows or rows[-1]["status"] != "running":
        return False
    import sqlite3

    db = sqlite3.connect(f"file:{daemon.state_dir / 'journal.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        done = db.execute("SELECT COUNT(*) FROM actions WHERE run_id=?", (rows[-1]["id"],)).fetchone()[0]
    finally:
        db.close()
    return bool(done)


def test_sigterm_mid_run_finishes_the_action_records_interrupted_and_exits_0(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient
) -> None:
    daemon = daemon_factory()
    fleet.write("1", fail_canary=True, timeout=120)  # the canary gate would wait two minutes
    sha = fleet.commit("bad canary")
    push(gitea, fleet, ZERO, sha)
    assert wait_until(lambda: _mid_run(daemon, sha), timeout=60), daemon.logs()

    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0, daemon.logs()[-3000:]
    run = daemon.runs(sha)[-1]
    assert run["status"] == "interrupted" and run["recovered"] == 0
    assert set(states(gitea, sha).values()) == {"error"}  # not verified: said so on the commit
    assert "acme/ws0" in workspace_containers(docker_client, daemon.instance)  # the action was finished


def test_kill_9_mid_run_then_restart_converges_without_duplicates_or_leaks(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient
) -> None:
    daemon = daemon_factory()
    fleet.write("1")
    first = fleet.commit("v1")
    push(gitea, fleet, ZERO, first)
    assert wait_until(lambda: [r["status"] for r in daemon.runs(first)] == ["success"], timeout=90), daemon.logs()

    fleet.write("2", interval=3)  # recreates both; the canary gate takes a few seconds
    second = fleet.commit("v2")
    push(gitea, fleet, first, second)
    assert wait_until(lambda: _mid_run(daemon, second), timeout=60), daemon.logs()
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit(30)

    restarted = daemon_factory(hook=False)  # same state dir: the journal says a run was cut short
    assert wait_until(lambda: _converged(restarted, docker_client, second, 2), timeout=120), restarted.logs()
    assert wait_until(lambda: restarted.runs(second)[-1]["status"] == "success", timeout=60), restarted.logs()
    statuses = [r["status"] for r in restarted.runs(second)]
    assert statuses[0] == "interrupted" and statuses[-1] == "success"
    # no duplicates, no leftovers: prev copies, helpers, snapshots
    assert sorted(workspace_containers(docker_client, daemon.instance)) == ["acme/ws0", "acme/ws1"]
    rows = containers(docker_client, daemon.instance)
    assert len(rows) == 2, [r["Names"] for r in rows]
    volumes = docker_client.api.volumes(filters={"label": f"reconciler.instance={daemon.instance}"})["Volumes"]
    assert len(volumes or []) == 2, [v["Name"] for v in volumes or []]
    # the run is journalled first, then its final statuses are posted: wait for them too
    assert wait_until(lambda: set(states(gitea, second).values()) == {"success"}, timeout=30), states(gitea, second)
