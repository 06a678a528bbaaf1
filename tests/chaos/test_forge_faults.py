"""The forge misbehaving while the daemon converges: 422 on one status, then 500s, 429s and a hang.

The apply must not wait for Gitea or fail because of it; every status Gitea could not take is
delivered once it answers again (the newest state per context wins); the one Gitea rejected is
logged with its reason and dropped, never retried.
"""

from __future__ import annotations

from typing import Any

import docker
import pytest

from tests.support.clock import wait_until
from tests.support.daemon import CONTEXTS, Fleet, push, states, workspace_containers
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_hooks import ZERO
from tests.support.gitea_repo import NAME, OWNER

pytestmark = pytest.mark.docker


def test_gitea_rejecting_one_status_then_failing_for_a_while_leaves_apply_alone_and_statuses_follow(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient
) -> None:
    daemon = daemon_factory()
    fleet.write("1", canary=1, production=1)
    sha = fleet.commit("v1")
    prefix = f"/api/v1/repos/{OWNER}/{NAME}/statuses/{sha}"
    gitea.fail_next(1, "422", path_prefix=prefix, method="POST")  # the first status: rejected for good
    gitea.fail_next(4, "500", path_prefix=prefix, method="POST")
    gitea.fail_next(3, "429", path_prefix=prefix, method="POST")
    gitea.fail_next(1, "timeout", path_prefix=prefix, method="POST")
    gitea.fail_next(1_000, "503", path_prefix=prefix, method="POST")  # down until cleared
    push(gitea, fleet, ZERO, sha)

    assert wait_until(lambda: [r["status"] for r in daemon.runs(sha)] == ["success"], timeout=120), daemon.logs()
    running = workspace_containers(docker_client, daemon.instance)
    assert sorted(running) == ["acme/ws0", "acme/ws1"]
    assert all(r["State"] == "running" for r in running.values())

    gitea.faults.clear()  # Gitea is back
    assert wait_until(lambda: states(gitea, sha) == dict.fromkeys(CONTEXTS, "success"), timeout=90), (
        states(gitea, sha), daemon.logs()[-3000:])
    logs = daemon.logs()
    assert "422" in logs and "dropped" in logs, logs[-3000:]
    posted = [r for r in gitea.api_calls("POST", contains=f"/statuses/{sha}") if r.status == 422]
    assert len(posted) == 1  # the rejected status was never sent again
