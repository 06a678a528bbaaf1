"""Fixtures for the Docker backend tests: the REAL engine started by scripts/test-env.sh.

- `docker_client` (session): fails loudly, naming scripts/test-env.sh, when no engine answers;
- `runtime_image` (session): built once by scripts/build-images.sh (quick when already built);
- `instance_id`: unique per test; afterwards every container and volume labelled with it (or with
  `reconciler-test=<id>`, for the foreign containers tests create) is removed;
- `make_backend`, `desired`, `read_configs`: builders and probes shared by the test modules.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from reconciler.backends.docker import DockerBackend
from reconciler.errors import Location
from reconciler.model.config import Health, Resources
from reconciler.model.desired import DesiredWorkspace, FilesRef, PluginPinRef
from reconciler.model.enums import Tier
from tests.support.engine import TEST_LABEL, build_demo_images, cleanup, require_engine

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "workspace-template-claude-code:latest"


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    return require_engine()


@pytest.fixture(scope="session")
def runtime_image(docker_client: docker.DockerClient) -> str:
    build_demo_images(docker_client, IMAGE)
    return IMAGE


@pytest.fixture
def instance_id(docker_client: docker.DockerClient, runtime_image: str) -> Iterator[str]:
    ident = f"t{uuid.uuid4().hex[:8]}"
    yield ident
    cleanup(docker_client, ident)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def make_backend(docker_client: docker.DockerClient, instance_id: str, tmp_path: Path) -> Callable[..., DockerBackend]:
    def make(**kwargs: Any) -> DockerBackend:
        kwargs.setdefault("client", docker_client)
        kwargs.setdefault("state_dir", tmp_path / "state")
        kwargs.setdefault("stop_timeout", 5)
        return DockerBackend(kwargs.pop("instance", instance_id), **kwargs)

    return make


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def make_desired(
    workspace_id: str = "acme/alpha",
    *,
    spec_hash: str = "hash-1",
    files_root: Path | None = None,
    plugins: tuple[PluginPinRef, ...] = (),
    env: dict[str, str] | None = None,
    secrets: tuple[str, ...] = (),
    health: Health | None = None,
    resources: Resources | None = None,
    tier: Tier = Tier.CANARY,
    image: str = IMAGE,
) -> DesiredWorkspace:
    org, key = workspace_id.split("/")
    files = None
    if files_root is not None:
        files = FilesRef(root=str(files_root), display=f"orgs/{org}/files", content_hash=f"files-{files_root.name}")
    return DesiredWorkspace(
        id=workspace_id,
        org=org,
        key=key,
        name=key.title(),
        tier=tier,
        runtime="claude-code",
        image=image,
        env={"WORKSPACE_ID": workspace_id, **(env or {})},
        secrets=secrets,
        secret_digests={s: f"digest-of-{s}" for s in secrets},
        plugins=plugins,
        files=files,
        resources=resources,
        health=health,
        source=Location(file=f"orgs/{org}/org.yaml", line=3),
        spec_parts={"image": "i1", "env.WORKSPACE_ID": "e1", "files": spec_hash[-4:]},
        spec_hash=spec_hash,
    )


def plugin(name: str, root: Path, sha: str) -> PluginPinRef:
    return PluginPinRef(
        name=name,
        source=f"http://127.0.0.1:9/agents/{name}.git",
        track="branch:main",
        resolved_sha=sha,
        local_path=str(root),
        content_hash=f"c-{sha[:6]}",
        skills_hash=f"s-{sha[:6]}",
    )


@pytest.fixture
def read_configs(docker_client: docker.DockerClient, instance_id: str) -> Callable[[str], dict[str, str]]:
    """Every regular file of a /configs volume (path relative to /configs -> content)."""
    script = 'cd /configs && find . -type f | sort | while read -r f; do echo "@@ ${f#./}"; cat "$f"; done'

    def read(volume: str) -> dict[str, str]:
        out = docker_client.containers.run(
            IMAGE,
            entrypoint=["/bin/sh", "-c", script],
            volumes={volume: {"bind": "/configs", "mode": "ro"}},
            network_mode="none",
            labels={TEST_LABEL: instance_id},
            remove=True,
        ).decode()
        files: dict[str, str] = {}
        current = None
        for line in out.splitlines(keepends=True):
            if line.startswith("@@ "):
                current = line[3:].strip()
                files[current] = ""
            elif current is not None:
                files[current] += line
        return files

    return read


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, step: float = 0.2) -> bool:
    """Poll `predicate` (bounded); the caller asserts the outcome, never the time it took."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
