"""`reconciler apply` with production manual (an org's `production: manual`, or the policy's): canary
is applied, production's changes wait (its status would say "waiting for approval"), a line on stderr
says how to approve, and the exit code is 0; `--promote` approves production for the run."""

from __future__ import annotations

from pathlib import Path

import docker

from tests.cli.conftest import committed, reconciler

IMAGE = "127.0.0.1:5000/workspace-template-claude-code:latest"
ORG = """\
name: Acme
production: manual
defaults: {runtime: claude-code}
workspaces:
  - {name: Probe, tier: canary}
  - {name: Lead}
"""


def running(client: docker.DockerClient, instance: str) -> dict[str, str]:
    found = client.api.containers(filters={"label": f"reconciler.instance={instance}"})
    return {row["Labels"]["reconciler.workspace"]: row["Labels"]["reconciler.tier"] for row in found
            if not row["Labels"].get("reconciler.role")}


def test_apply_keeps_production_waiting_until_promote(
    instance_id: str, tmp_path: Path, common: list[str], docker_client: docker.DockerClient
) -> None:
    path, sha = committed(tmp_path, ORG, IMAGE, "canary and production")
    source = ["--source", str(path), "--instance-id", instance_id, *common]

    done = reconciler("apply", *source, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert running(docker_client, instance_id) == {"acme/probe": "canary"}  # production waits
    assert "waiting for approval (1 change)" in done.stdout, done.stdout
    assert (f"production waits for approval: 1 change kept back (production: manual); to apply them: reconciler "
            f"apply --source {path} --ref {sha[:12]} --promote") in done.stderr
    plan = reconciler("plan", *source)
    assert "acme/lead" in plan.stdout and "create" in plan.stdout  # still to do

    promoted = reconciler("apply", *source, "--promote", timeout=240)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert running(docker_client, instance_id) == {"acme/probe": "canary", "acme/lead": "production"}
    assert "waits for approval" not in promoted.stderr and "approval" not in promoted.stdout
