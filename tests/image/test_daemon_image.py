"""The daemon's container image, built from the real `Dockerfile` and run against the real engine
and the Gitea emulator: healthy through the image's own HEALTHCHECK (on the port the operator set),
and one push converged from inside the container (workspaces created, both statuses `success`).

The image is built on a local Debian base (scripts/base-image.sh) with the runtime wheels served on
loopback (tests/support/daemon_image.py); both are cached, so only the first run is slow. The
daemon runs as the image's non-root user, reaching the engine's socket through `--group-add`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from tests.support.clock import wait_until
from tests.support.daemon import CONTEXTS, REPO, Fleet, push, states, workspace_containers
from tests.support.daemon_image import build_daemon_image
from tests.support.engine import TEST_LABEL
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_hooks import ZERO
from tests.support.gitea_repo import HOOK_SECRET, NAME, OWNER, TOKEN
from tests.support.net import dead_port
from tests.support.policy import policy_file

UID = 10001  # the image's user (Dockerfile: USER 10001:10001)
SECOND = 1_000_000_000  # the engine counts health check periods in nanoseconds


@pytest.fixture(scope="session")
def daemon_image(docker_client: docker.DockerClient) -> str:
    return build_daemon_image(docker_client)


def engine_socket() -> Path:
    """The test engine's socket on this host (scripts/test-env.sh: the default one, or DOCKER_HOST's)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    assert host.startswith("unix://"), f"DOCKER_HOST={host}: the daemon container needs the engine's unix socket"
    return Path(host.removeprefix("unix://"))


def health(container: Any) -> dict[str, Any]:
    container.reload()
    return dict(container.attrs["State"].get("Health") or {})


@pytest.mark.timeout(1500)  # the first run debootstraps the base and builds every layer
def test_the_image_runs_the_daemon_healthy_and_it_converges_a_push(
    daemon_image: str, docker_client: docker.DockerClient, instance_id: str, gitea: GiteaEmulator, fleet: Fleet,
    tmp_path: Path,
) -> None:
    image = docker_client.images.get(daemon_image)
    assert image.attrs["Config"]["User"] == f"{UID}:{UID}"
    image_check = image.attrs["Config"]["Healthcheck"]["Test"]

    state = tmp_path / "state"  # the daemon's state, kept by the host as a volume would be
    state.mkdir()
    os.chown(state, UID, UID)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "hook-secret").write_bytes(HOOK_SECRET)
    policy = policy_file(tmp_path / "policy")
    socket = engine_socket()
    port = dead_port()
    url = f"http://127.0.0.1:{port}"

    container = docker_client.containers.run(
        daemon_image,
        ["run", "--source", gitea.clone_url(OWNER, NAME), "--branch", "main", "--public-url", url,
         "--gitea-url", gitea.url, "--gitea-repo", REPO, "--instance-id", instance_id,
         "--poll-interval", "3600", "--resync-interval", "3600"],
        detach=True, name=f"reconciler-image-{instance_id}", labels={TEST_LABEL: instance_id},
        network_mode="host",  # the emulator, the registry and this test are on the host's loopback
        group_add=[str(socket.stat().st_gid)],
        environment={
            "RECONCILER_LISTEN": f"127.0.0.1:{port}",  # not the image's 0.0.0.0:8080: the check must follow
            "RECONCILER_POLICY": "/etc/reconciler/policy.yaml",
            "RECONCILER_GITEA_TOKEN_FILE": "/run/secrets/gitea_token",
            "RECONCILER_WEBHOOK_SECRET_FILE": "/run/secrets/webhook_secret",
        },
        volumes={
            str(socket): {"bind": "/var/run/docker.sock", "mode": "rw"},
            str(state): {"bind": "/var/lib/reconciler", "mode": "rw"},
            str(policy): {"bind": "/etc/reconciler/policy.yaml", "mode": "ro"},
            str(secrets): {"bind": "/secrets", "mode": "ro"},
            str(tmp_path / "token"): {"bind": "/run/secrets/gitea_token", "mode": "ro"},
            str(tmp_path / "hook-secret"): {"bind": "/run/secrets/webhook_secret", "mode": "ro"},
        },
        # the image's check, run more often than its 30 s so the test need not wait for it
        healthcheck={"interval": SECOND, "timeout": 5 * SECOND, "retries": 3, "start_period": 60 * SECOND},
    )
    try:
        def logs() -> str:
            return container.logs(tail=60).decode(errors="replace")

        container.reload()
        assert container.attrs["Config"]["Healthcheck"]["Test"] == image_check  # not replaced by the run
        assert wait_until(lambda: health(container).get("Status") == "healthy"
                          or container.attrs["State"]["Status"] != "running", timeout=90, step=0.5), (
            health(container), logs())
        assert container.attrs["State"]["Status"] == "running", (container.attrs["State"], logs())
        assert health(container)["Status"] == "healthy", (health(container), logs())
        answer = httpx.get(url + "/healthz", timeout=10)
        assert answer.status_code == 200 and answer.json()["loop_alive"] is True

        gitea.add_webhook(OWNER, NAME, url + "/hooks/gitea", secret=HOOK_SECRET.decode())
        fleet.write("1")
        sha = fleet.commit("first")
        push(gitea, fleet, ZERO, sha)
        assert wait_until(lambda: states(gitea, sha) == dict.fromkeys(CONTEXTS, "success"), timeout=120), (
            states(gitea, sha), logs())
        found = workspace_containers(docker_client, instance_id)
        assert sorted(found) == ["acme/ws0", "acme/ws1"]
        assert {row["Labels"]["reconciler.revision"] for row in found.values()} == {sha}
        assert all(row["State"] == "running" for row in found.values())
        assert (state / "journal.sqlite").exists()
        assert health(container)["Status"] == "healthy"
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
