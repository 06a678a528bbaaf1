"""Fixtures for the Docker backend tests: the REAL engine started by scripts/test-env.sh, reached
through the shared `docker_client`, `runtime_image` and `instance_id` (tests/support/fixtures.py).

- `make_backend`, `make_desired`, `read_configs`: builders and probes shared by the test modules.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from reconciler.backends.docker import DockerBackend
from reconciler.errors import Location
from reconciler.model.config import Health, Resources
from reconciler.model.desired import DesiredWorkspace, FilesRef, PluginPinRef
from reconciler.model.enums import Tier
from tests.support.engine import IMAGE, TEST_LABEL


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
