"""After a full scenario (a push converged, a pull request reviewed, a config error), the token and a
secret value appear nowhere: not in the state dir (mirrors, journal, caches, trees), the logs,
commit statuses, the PR comment, the run pages or the metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker

from tests.support.clock import wait_until
from tests.support.daemon import IMAGE, Fleet, push, states, workspace_containers
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_hooks import ZERO
from tests.support.gitea_repo import HOOK_SECRET, NAME, OWNER, TOKEN

SECRET = "sk-live-DO-NOT-LEAK-9c41e7"
ORG = """name: Acme
defaults:
  runtime: claude-code
  secrets: [API_KEY]
  health: {port: 8080, path: /health, interval_seconds: 1, timeout_seconds: 1, retries: 1}
workspaces:
  - {name: Lead, tier: canary, env: {VERSION: "%s"}}
  - {name: Worker, env: {VERSION: "%s"}}
"""


def write(fleet: Fleet, version: str, broken: bool = False) -> None:
    org = ORG % (version, version) + ("  - {name: Bad, tier: everywhere}\n" if broken else "")
    fleet.work.write({"reconciler.yaml": "health: {timeout_seconds: 60, settle_seconds: 1}\n"
                                         "docker: {network: none, restart_policy: 'no'}\n",
                      "images.yaml": f"images:\n  claude-code: {IMAGE}\n", "orgs/acme/org.yaml": org})


def everything_text(gitea: GiteaEmulator, daemon: Any, shas: list[str]) -> dict[str, bytes]:
    seen: dict[str, bytes] = {}
    for path in Path(daemon.state_dir).rglob("*"):
        if path.is_file():
            seen[f"state:{path}"] = path.read_bytes()
    seen["log"] = daemon.log.read_bytes()
    for sha in shas:
        seen[f"statuses:{sha}"] = repr(gitea.statuses(OWNER, NAME, sha)).encode()
    seen["comments"] = repr(gitea.comments).encode()
    seen["runs"] = daemon.get("/runs").content
    for row in daemon.runs():
        seen[f"run:{row['id']}"] = daemon.get(f"/runs/{row['id']}").content
    seen["metrics"] = daemon.get("/metrics").content
    seen["healthz"] = daemon.get("/healthz").content
    return seen


def test_no_token_or_secret_value_anywhere_after_a_full_scenario(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient, tmp_path: Path,
) -> None:
    (tmp_path / "secrets" / "API_KEY").write_text(SECRET)  # the daemon's --secrets-dir
    daemon = daemon_factory()
    write(fleet, "1")
    good = fleet.commit("v1")
    push(gitea, fleet, ZERO, good)
    assert wait_until(lambda: states(gitea, good).get("reconciler/production") == "success", timeout=120), \
        daemon.logs()[-3000:]
    lead = workspace_containers(docker_client, daemon.instance)["acme/lead"]
    env = docker_client.api.inspect_container(lead["Id"])["Config"]["Env"]
    assert f"API_KEY={SECRET}" in env  # the value reaches the workload (so the search below means something)

    write(fleet, "2")
    head = fleet.commit("v2", branch="feature")
    fleet.push("feature")
    number = gitea.open_pull_request(OWNER, NAME, "feature", "main")
    gitea.deliver_pull_request(OWNER, NAME, number, "opened")
    assert wait_until(lambda: states(gitea, head).get("reconciler/plan") == "success", timeout=90), daemon.logs()

    fleet.work.run("checkout", "-q", "main")
    write(fleet, "3", broken=True)
    bad = fleet.commit("broken")
    push(gitea, fleet, good, bad)
    assert wait_until(lambda: states(gitea, bad).get("reconciler/canary") == "failure", timeout=90), daemon.logs()

    leaks = [where for where, data in everything_text(gitea, daemon, [good, head, bad]).items()
             if any(value.encode() in data for value in (TOKEN, SECRET, HOOK_SECRET.decode()))]
    assert leaks == []
