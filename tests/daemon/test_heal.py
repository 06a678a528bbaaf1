"""Healing with the real daemon and engine: a failed head does not stop it, and an unhealthy
container does not stay so.

- the head fails its canary gate; a production container removed by hand comes back within a
  resync at the last verified revision, as a `heal` run, and the head's statuses stay as they were;
- a container whose health check keeps failing is recreated (a new container, same spec) once it
  has been unhealthy for `--heal-unhealthy-after`, as a `heal` run.
"""

from __future__ import annotations

from typing import Any

import docker

from tests.support.clock import wait_until
from tests.support.daemon import CONTEXTS, Fleet, push, states, workspace_containers
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_hooks import ZERO
from tests.support.gitea_repo import NAME, OWNER


def _running_at(client: docker.DockerClient, instance: str, ws: str, sha: str) -> dict[str, Any] | None:
    try:
        row = workspace_containers(client, instance).get(ws)
    except AssertionError:  # a `.prev` copy while a run is in progress
        return None
    ok = row is not None and row["State"] == "running" and row["Labels"]["reconciler.revision"] == sha
    return row if ok else None


def test_a_failed_head_still_heals_a_removed_container_at_its_last_verified_spec(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient
) -> None:
    daemon = daemon_factory(resync=2)
    fleet.write("1")
    good = fleet.commit("v1")
    push(gitea, fleet, ZERO, good)
    assert wait_until(lambda: [r["status"] for r in daemon.runs(good)] == ["success"], timeout=90), daemon.logs()

    fleet.write("2", fail_canary=True, timeout=10)
    bad = fleet.commit("v2: the canary fails its health gate")
    push(gitea, fleet, good, bad)
    assert wait_until(lambda: [r["status"] for r in daemon.runs(bad)] == ["failed"], timeout=90), daemon.logs()
    assert wait_until(lambda: states(gitea, bad) == dict.fromkeys(CONTEXTS, "failure"), timeout=30), (
        states(gitea, bad))
    posted = len(gitea.statuses(OWNER, NAME, bad))

    gone = workspace_containers(docker_client, daemon.instance)["acme/ws1"]
    docker_client.api.remove_container(gone["Id"], force=True)
    assert wait_until(lambda: _running_at(docker_client, daemon.instance, "acme/ws1", good) is not None,
                      timeout=90), daemon.logs()[-3000:]
    assert wait_until(lambda: daemon.runs(bad)[-1]["status"] == "success", timeout=60), daemon.runs(bad)
    heal = daemon.runs(bad)[-1]
    assert heal["trigger"] == "heal" and "production at " + good[:7] in heal["message"]
    assert [r["trigger"] for r in daemon.runs(bad)] == ["push", "heal"]
    assert _running_at(docker_client, daemon.instance, "acme/ws0", good) is not None  # canary: rolled back, kept
    assert len(gitea.statuses(OWNER, NAME, bad)) == posted  # the head stays red, untouched
    assert set(states(gitea, bad).values()) == {"failure"}


def test_a_container_unhealthy_for_too_long_is_recreated_at_its_spec(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient
) -> None:
    daemon = daemon_factory(resync=2, extra=("--heal-unhealthy-after", "3"))
    fleet.write("1", canary=0, production=1)
    sha = fleet.commit("v1")
    push(gitea, fleet, ZERO, sha)
    assert wait_until(lambda: [r["status"] for r in daemon.runs(sha)] == ["success"], timeout=90), daemon.logs()
    before = workspace_containers(docker_client, daemon.instance)["acme/ws0"]
    exec_id = docker_client.api.exec_create(before["Id"], ["sh", "-c", "kill -STOP $(pidof httpd)"])
    docker_client.api.exec_start(exec_id)  # the agent hangs: its health check fails, the container runs on

    def replaced() -> bool:
        row = _running_at(docker_client, daemon.instance, "acme/ws0", sha)
        return row is not None and row["Id"] != before["Id"]

    assert wait_until(replaced, timeout=45), daemon.logs()[-3000:]
    assert wait_until(lambda: daemon.runs(sha)[-1]["status"] == "success", timeout=60), daemon.runs(sha)
    assert daemon.runs(sha)[-1]["trigger"] == "heal"  # journalled; the head's statuses are left alone
    assert [r["status"] for r in daemon.runs(sha) if r["trigger"] != "heal"] == ["success"]
    assert "workspace unhealthy for too long" in daemon.logs()
    metrics = daemon.get("/metrics").text
    assert 'reconciler_heals_total{outcome="success",reason="unhealthy"} 1.0' in metrics
