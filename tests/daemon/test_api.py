"""The JSON API (`/api/v1`) of the REAL daemon against the Gitea emulator and the real engine.

- the pages token guards it (401 without it); status shows the fleet, the tiers and the worker;
  sync converges a head the daemon has not heard of, and an older commit of the branch on request,
  while a commit off the branch is refused;
- suspended, a push applies nothing and its statuses say so; the suspension survives a restart;
  a resume converges the head;
- a failed head's hold is listed and released, and an operator's retry runs the failed head again;
- with the policy's `production: manual`, production waits after a passed canary ("waiting for
  approval") until `reconciler promote <sha>`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import httpx

from tests.support.clock import wait_until
from tests.support.daemon import CONTEXTS, ROOT, Fleet, push, states, statuses, workspace_containers
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_hooks import ZERO
from tests.support.gitea_repo import NAME, OWNER
from tests.support.policy import policy_file

TOKEN = "api-token-7"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def api(daemon: Any, method: str, path: str, body: Any = None, *, auth: bool = True, raw: bytes | None = None
        ) -> httpx.Response:
    headers = AUTH if auth else {}
    url = f"{daemon.url}/api/v1/{path}"
    if raw is not None:
        return httpx.request(method, url, content=raw, headers=headers, timeout=60)
    return httpx.request(method, url, json=body, headers=headers, timeout=60)


def with_token(tmp_path: Path) -> tuple[str, ...]:
    (tmp_path / "pages-token").write_text(TOKEN + "\n")
    return ("--pages-token-file", str(tmp_path / "pages-token"))


def converged_daemon(gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, tmp_path: Path) -> tuple[Any, str]:
    """A daemon behind the pages token that has converged a first commit (v1) pushed with its webhook."""
    daemon = daemon_factory(extra=with_token(tmp_path))
    fleet.write("1")
    first = fleet.commit("v1")
    push(gitea, fleet, ZERO, first)
    assert wait_until(lambda: [r["status"] for r in daemon.runs(first)] == ["success"], timeout=90), daemon.logs()
    return daemon, first


def revisions(client: docker.DockerClient, instance: str) -> dict[str, str]:
    try:
        found = workspace_containers(client, instance)
    except AssertionError:  # a `.prev` copy while a run is in progress
        return {}
    return {ws: row["Labels"]["reconciler.revision"] for ws, row in found.items() if row["State"] == "running"}


def test_status_and_sync_need_the_token_and_sync_converges_only_commits_of_the_branch(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    daemon = daemon_factory(extra=with_token(tmp_path))
    for method, path in (("GET", "status"), ("POST", "sync"), ("POST", "suspend"), ("POST", "retry")):
        assert api(daemon, method, path, auth=False).status_code == 401, path
    assert daemon.get("/healthz").status_code == 200

    fleet.write("1")
    first = fleet.commit("v1")
    fleet.push()  # no webhook: the daemon (polling hourly) has not heard of it
    answer = api(daemon, "POST", "sync")
    assert answer.status_code == 202, answer.text
    assert answer.json()["queued"] == first and first[:12] in answer.json()["message"]
    assert wait_until(lambda: [r["status"] for r in daemon.runs(first)] == ["success"], timeout=90), daemon.logs()
    assert [r["trigger"] for r in daemon.runs(first)] == ["operator"]

    status = api(daemon, "GET", "status").json()
    assert status["branch"] == "main" and status["head"]["sha"] == first and status["head"]["status"] == "success"
    assert status["worker"]["alive"] is True and status["worker"]["running"] is None
    assert status["suspended"] == {"everything": False, "since": None, "orgs": {}}
    assert {t: (v["current"], v["last_good"], v["workspaces"]) for t, v in status["tiers"].items()} == {
        "canary": (first, first, 1), "production": (first, first, 1)}
    acme = status["fleet"]["orgs"]["acme"]
    assert acme["canary"]["revisions"] == {first: 1} and acme["production"]["revisions"] == {first: 1}
    assert sorted(w["id"] for w in status["fleet"]["workspaces"]) == ["acme/ws0", "acme/ws1"]
    assert status["holds"] == [] and status["fleet"]["error"] is None

    fleet.write("2")
    second = fleet.commit("v2")
    push(gitea, fleet, first, second)
    assert wait_until(lambda: [r["status"] for r in daemon.runs(second)] == ["success"], timeout=90), daemon.logs()

    # an older commit of the branch, on request: converged again (the daemon still follows main)
    answer = api(daemon, "POST", "sync", {"ref": first[:10]})
    assert answer.status_code == 202 and answer.json()["queued"] == first, answer.text
    assert "older commit" in answer.json()["message"]
    assert wait_until(lambda: revisions(docker_client, daemon.instance) == dict.fromkeys(["acme/ws0", "acme/ws1"],
                                                                                         first), timeout=90)

    # refused: a commit that is not on the branch, a ref that does not exist, bad bodies, unknown paths
    fleet.write("side")
    side = fleet.commit("side branch", branch="side")
    fleet.push("side")
    off = api(daemon, "POST", "sync", {"ref": side})
    assert off.status_code == 409 and "not on main" in off.json()["error"], off.text
    assert api(daemon, "POST", "sync", {"ref": "side"}).status_code == 409
    missing = api(daemon, "POST", "sync", {"ref": "no-such-tag"})
    assert missing.status_code == 404 and missing.json()["status"] == 404 and "not found" in missing.json()["error"]
    assert api(daemon, "POST", "sync", raw=b"{not json").json() == {"error": "the body is not JSON", "status": 400}
    assert api(daemon, "POST", "sync", {"branch": "x"}).status_code == 400
    assert api(daemon, "POST", "sync", {"ref": 7}).status_code == 400
    unknown = api(daemon, "GET", "nothing-here")
    assert unknown.status_code == 404 and "error" in unknown.json()
    assert api(daemon, "GET", "sync").status_code == 405
    assert side not in {r["revision"] for r in daemon.runs()}


def test_suspended_a_push_applies_nothing_across_a_restart_and_resume_converges(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    daemon, first = converged_daemon(gitea, fleet, daemon_factory, tmp_path)

    answer = api(daemon, "POST", "suspend")
    assert answer.status_code == 200 and answer.json()["changed"] is True, answer.text
    assert api(daemon, "POST", "suspend").json()["changed"] is False
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    daemon = daemon_factory(extra=with_token(tmp_path))  # the same state dir: still suspended
    assert api(daemon, "GET", "status").json()["suspended"]["everything"] is True

    fleet.write("2")
    second = fleet.commit("v2")
    fleet.push()
    delivered = gitea.deliver_push(OWNER, NAME, "refs/heads/main", first, second)  # the first daemon's hook too
    assert [d.status_code for d in delivered if d.url.startswith(daemon.url)] == [202], delivered
    assert wait_until(lambda: [r["status"] for r in daemon.runs(second)] == ["skipped"], timeout=60), daemon.logs()
    assert daemon.runs(second)[0]["message"] == "suspended by an operator; not applied"
    assert wait_until(lambda: states(gitea, second) == dict.fromkeys(CONTEXTS, "pending"), timeout=30)
    assert all("suspended by an operator" in row["description"] for row in statuses(gitea, second).values())
    assert revisions(docker_client, daemon.instance) == {"acme/ws0": first, "acme/ws1": first}
    refused = api(daemon, "POST", "sync")
    assert refused.status_code == 409 and "suspended" in refused.json()["error"]
    assert api(daemon, "POST", "retry").status_code == 409

    answer = api(daemon, "POST", "resume")
    assert answer.status_code == 200 and answer.json()["queued"] == second, answer.text
    assert wait_until(lambda: states(gitea, second) == dict.fromkeys(CONTEXTS, "success"), timeout=90), (
        states(gitea, second), daemon.logs()[-3000:])
    assert [(r["status"], r["trigger"]) for r in daemon.runs(second)] == [("skipped", "push"),
                                                                          ("success", "operator")]
    assert revisions(docker_client, daemon.instance) == {"acme/ws0": second, "acme/ws1": second}
    assert api(daemon, "POST", "resume").json()["changed"] is False
    assert api(daemon, "POST", "suspend", {"org": "Not A Slug"}).status_code == 400


def test_with_production_manual_production_waits_until_an_operator_promotes_the_head(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    policy = tmp_path / "manual-policy.yaml"
    policy.write_text(policy_file(tmp_path / "base").read_text() + "production: manual\n")
    daemon = daemon_factory(extra=(*with_token(tmp_path), "--policy", str(policy)))
    fleet.write("1")
    sha = fleet.commit("v1")
    push(gitea, fleet, ZERO, sha)

    def waiting() -> bool:
        found = statuses(gitea, sha)
        return (found.get(CONTEXTS[0], {}).get("state") == "success"
                and "waiting for approval" in found.get(CONTEXTS[1], {}).get("description", ""))

    assert wait_until(waiting, timeout=90), (statuses(gitea, sha), daemon.logs()[-3000:])
    assert statuses(gitea, sha)[CONTEXTS[1]]["state"] == "pending"
    assert f"reconciler promote {sha[:12]}" in statuses(gitea, sha)[CONTEXTS[1]]["description"]
    assert revisions(docker_client, daemon.instance) == {"acme/ws0": sha}  # production waits
    status = api(daemon, "GET", "status").json()
    assert status["production"] == {"mode": "manual", "waiting_for_approval": sha}
    assert status["tiers"]["production"]["last_good"] is None

    assert api(daemon, "POST", "promote", {"sha": "0" * 12}).status_code == 409
    assert api(daemon, "POST", "promote", {"sha": "xyz"}).status_code == 400
    promoted = subprocess.run([sys.executable, "-m", "reconciler", "promote", sha[:10], "--url", daemon.url,
                               "--token-file", str(tmp_path / "pages-token")], capture_output=True, text=True,
                              timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert promoted.returncode == 0 and f"promoted {sha[:12]}" in promoted.stdout, promoted.stderr
    assert wait_until(lambda: states(gitea, sha) == dict.fromkeys(CONTEXTS, "success"), timeout=90), (
        states(gitea, sha), daemon.logs()[-3000:])
    assert revisions(docker_client, daemon.instance) == {"acme/ws0": sha, "acme/ws1": sha}
    assert [(r["status"], r["trigger"]) for r in daemon.runs(sha)] == [("success", "push"), ("success", "operator")]
    again = api(daemon, "POST", "promote", {"sha": sha})
    assert again.status_code == 200 and again.json()["changed"] is False
    assert api(daemon, "GET", "status").json()["production"]["waiting_for_approval"] is None


def test_a_held_version_is_released_and_a_failed_head_is_retried_once_on_request(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, tmp_path: Path
) -> None:
    daemon, good = converged_daemon(gitea, fleet, daemon_factory, tmp_path)
    nothing = api(daemon, "POST", "retry")
    assert nothing.status_code == 409 and "nothing to retry" in nothing.json()["error"]

    fleet.write("2", fail_canary=True, timeout=8)
    bad = fleet.commit("v2: the canary fails its health gate")
    push(gitea, fleet, good, bad)
    assert wait_until(lambda: [r["status"] for r in daemon.runs(bad)] == ["failed"], timeout=90), daemon.logs()
    holds = api(daemon, "GET", "status").json()["holds"]
    assert [(h["kind"], h["subject"], h["revision"]) for h in holds] == [("spec", "acme/ws0", bad)], holds

    missing = api(daemon, "POST", "release", {"hold": "0123456789ab"})
    assert missing.status_code == 404 and holds[0]["id"] in missing.json()["error"]
    assert api(daemon, "POST", "release", {}).status_code == 400
    released = api(daemon, "POST", "release", {"hold": holds[0]["id"]})
    assert released.status_code == 200 and released.json()["released"]["id"] == holds[0]["id"], released.text
    assert "reconciler retry" in released.json()["message"]
    assert api(daemon, "GET", "status").json()["holds"] == []

    answer = api(daemon, "POST", "retry")
    assert answer.status_code == 202 and answer.json()["queued"] == bad, answer.text
    assert wait_until(lambda: [r["status"] for r in daemon.runs(bad) if r["trigger"] != "heal"] == ["failed", "failed"],
                      timeout=90), daemon.runs(bad)
    assert [r["trigger"] for r in daemon.runs(bad) if r["trigger"] != "heal"] == ["push", "operator"]
    assert len(api(daemon, "GET", "status").json()["holds"]) == 1  # held again: it failed again
    assert set(states(gitea, bad).values()) == {"failure"}
