"""A burst of 100 pushes, each with its webhook, while the daemon converges.

Pushes arrive faster than a run takes: they are coalesced (the newest head wins, a queued head is
superseded, a run in its gate ends early), the newest converges, and nothing is left stuck: no run
still `running`, no commit the daemon touched left with a `pending` status.
"""

from __future__ import annotations

from typing import Any

import docker
import pytest

from tests.support.clock import wait_until
from tests.support.daemon import CONTEXTS, Fleet, states, statuses, workspace_containers
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_hooks import ZERO
from tests.support.gitea_repo import NAME, OWNER

pytestmark = pytest.mark.docker


def test_a_burst_of_100_pushes_converges_the_newest_and_leaves_nothing_stuck(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient
) -> None:
    daemon = daemon_factory()
    shas: list[str] = []
    before = ZERO
    for version in range(1, 101):
        fleet.write(str(version))
        shas.append(fleet.commit(f"v{version}"))
        fleet.push()
        assert all(d.status_code == 202 for d in gitea.deliver_push(OWNER, NAME, "refs/heads/main", before, shas[-1]))
        before = shas[-1]
    newest = shas[-1]

    assert wait_until(lambda: states(gitea, newest) == dict.fromkeys(CONTEXTS, "success"), timeout=240), (
        states(gitea, newest), daemon.logs()[-3000:])
    found = workspace_containers(docker_client, daemon.instance)
    assert {row["Labels"]["reconciler.revision"] for row in found.values()} == {newest}
    assert all(row["State"] == "running" for row in found.values())

    def settled() -> bool:
        runs = daemon.runs()
        return bool(runs) and all(r["status"] != "running" for r in runs)

    assert wait_until(settled, timeout=60), daemon.runs()
    runs = daemon.runs()
    ran = {r["revision"] for r in runs}
    assert {r["status"] for r in runs} <= {"success", "superseded"}, runs
    applied = [r for r in runs if r["status"] == "success"]
    assert len(applied) < 100, "every push was applied on its own: nothing was coalesced"
    for sha in ran:  # every commit the daemon touched ends with a final word on each context
        for context, row in statuses(gitea, sha).items():
            assert row["state"] != "pending", (sha, context, row)
