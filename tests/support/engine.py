"""The real Docker engine and registry for tests: reach them or fail loudly, build the demo
images once, and remove everything a test labelled. Shared by every test area that needs Docker."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
# where scripts/test-env.sh starts the registry (it reads the same variable)
REGISTRY = f"http://{os.environ.get('RECONCILER_TEST_REGISTRY', '127.0.0.1:5000')}/v2/"
IMAGE = "workspace-template-claude-code:latest"  # the demo runtime image, built by scripts/build-images.sh
TEST_LABEL = "reconciler-test"  # on foreign containers tests create, so cleanup finds them too
START = "start it with `scripts/test-env.sh start` (after `scripts/setup.sh` on a fresh machine)"


def engine_problem(timeout: float) -> str | None:
    """Why no Docker engine answers, as `Docker engine at <where>: <reason>` (None when one does)."""
    try:
        docker.from_env(timeout=timeout).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means the same thing here
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return f"Docker engine at {where}: {' '.join(str(exc).split())}"
    return None


def registry_problem(timeout: float) -> str | None:
    """Why no registry answers, as `registry at <url>: <reason>` (None when one does)."""
    try:
        httpx.get(REGISTRY, timeout=timeout).raise_for_status()
    except httpx.HTTPError as exc:
        return f"registry at {REGISTRY}: {' '.join(str(exc).split())}"
    return None


def require_engine(registry: bool = False) -> docker.DockerClient:
    """A client of the engine started by scripts/test-env.sh; the test fails (not skips) without it."""
    problem = engine_problem(timeout=60) or (registry_problem(timeout=5) if registry else None)
    if problem:
        pytest.fail(f"environment not running ({problem}): {START}", pytrace=False)
    return docker.from_env(timeout=60)


def build_demo_images(client: docker.DockerClient, image: str) -> None:
    """scripts/build-images.sh (quick when already built); `image` must exist afterwards."""
    done = subprocess.run([str(ROOT / "scripts" / "build-images.sh")], capture_output=True, text=True,
                          timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail(f"scripts/build-images.sh failed:\n{done.stderr}", pytrace=False)
    client.images.get(image)


def cleanup(client: docker.DockerClient, instance_id: str) -> None:
    """Remove every container and volume labelled with this instance id (or the test label)."""
    for label in (f"reconciler.instance={instance_id}", f"{TEST_LABEL}={instance_id}"):
        for row in client.api.containers(all=True, filters={"label": label}):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                client.api.remove_container(row["Id"], force=True)
    for label in (f"reconciler.instance={instance_id}", f"reconciler.lease={instance_id}"):
        for vol in client.api.volumes(filters={"label": label}).get("Volumes") or []:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                client.api.remove_volume(vol["Name"], force=True)
