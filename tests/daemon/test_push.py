"""Push -> converged with statuses and run pages; bad signatures run nothing; one instance per state dir."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import docker
import httpx

from tests.support.clock import wait_until
from tests.support.daemon import CONTEXTS, Fleet, push, states, statuses, workspace_containers
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_hooks import ZERO, delivery_headers


def test_push_converges_and_every_status_links_to_its_run(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, docker_client: docker.DockerClient
) -> None:
    daemon = daemon_factory()
    fleet.write("1")
    sha = fleet.commit("first")
    push(gitea, fleet, ZERO, sha)

    assert wait_until(lambda: states(gitea, sha) == dict.fromkeys(CONTEXTS, "success"), timeout=90), (
        states(gitea, sha), daemon.logs()[-3000:])
    found = workspace_containers(docker_client, daemon.instance)
    assert sorted(found) == ["acme/ws0", "acme/ws1"]
    assert {row["Labels"]["reconciler.revision"] for row in found.values()} == {sha}
    assert all(row["State"] == "running" for row in found.values())

    runs = daemon.runs(sha)
    assert [(r["status"], r["trigger"]) for r in runs] == [("success", "push")]
    run_url = f"{daemon.url}/runs/{runs[0]['id']}"
    # every status this run posted (pending ones too) links to its page
    assert {row["target_url"] for row in gitea.statuses("org", "config", sha)} == {run_url}
    page = httpx.get(run_url, timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert sha in page.text and "acme/ws0" in page.text and "health gate" in page.text.lower()
    assert "<script" not in page.text.lower()
    listing = daemon.get("/runs")
    assert listing.status_code == 200 and f"runs/{runs[0]['id']}" in listing.text

    health = daemon.get("/healthz")
    assert health.status_code == 200 and health.json()["loop_alive"] is True
    assert health.json()["last_success"] is not None
    metrics = daemon.get("/metrics").text
    assert 'reconciler_runs_total{outcome="success"} 1.0' in metrics
    assert 'reconciler_actions_total{kind="create",outcome="success"} 2.0' in metrics
    assert 'reconciler_webhook_deliveries_total{outcome="accepted"} 1.0' in metrics
    assert "reconciler_last_successful_sync_timestamp_seconds" in metrics

    # structured logs: JSON, with run id and revision on the lines of the run
    lines = [json.loads(line) for line in daemon.logs().splitlines() if line.startswith("{")]
    run_lines = [e for e in lines if e.get("run_id") == runs[0]["id"]]
    assert run_lines and all(e.get("revision") == sha for e in run_lines)
    assert all("run_id" in e and "revision" in e and "workspace" in e for e in lines)
    assert "gitea-TOKEN" not in daemon.logs()


def test_bad_signature_runs_nothing(gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any) -> None:
    daemon = daemon_factory(extra=("--health-timeout", "20"))
    fleet.write("1", canary=0, production=0)
    sha = fleet.commit("empty fleet")
    fleet.push()
    body = json.dumps({"ref": "refs/heads/main", "before": ZERO, "after": sha,
                       "repository": {"full_name": "org/config", "clone_url": gitea.clone_url("org", "config")}})
    forged = delivery_headers("gitea-1.25", b"not-the-secret", body.encode(), "push", "push")
    answer = httpx.post(f"{daemon.url}/hooks/gitea", content=body, headers=forged, timeout=10)
    assert answer.status_code == 401
    unsigned = {k: v for k, v in forged.items() if "Signature" not in k}
    assert httpx.post(f"{daemon.url}/hooks/gitea", content=body, headers=unsigned, timeout=10).status_code == 401
    # the receiver answered synchronously: nothing was enqueued, so nothing ran or was posted
    assert daemon.runs() == [] and statuses(gitea, sha) == {}
    assert 'reconciler_webhook_deliveries_total{outcome="bad_signature"} 2.0' in daemon.get("/metrics").text
    # the same body, correctly signed, does run
    good = delivery_headers("gitea-1.25", b"hook-secret", body.encode(), "push", "push")
    assert hmac.compare_digest(good["X-Gitea-Signature"],
                               hmac.new(b"hook-secret", body.encode(), hashlib.sha256).hexdigest())
    assert httpx.post(f"{daemon.url}/hooks/gitea", content=body, headers=good, timeout=10).status_code == 202
    assert wait_until(lambda: [r["status"] for r in daemon.runs(sha)] == ["success"], timeout=60), daemon.logs()


def test_second_instance_on_the_same_state_dir_exits_with_a_clear_message(daemon_factory: Any) -> None:
    first = daemon_factory(hook=False)
    second = daemon_factory(hook=False, wait=False)
    assert second.wait_exit(60) != 0
    assert "already running" in second.logs() and str(first.state_dir) in second.logs()
    assert first.proc.poll() is None and first.health()["loop_alive"] is True
