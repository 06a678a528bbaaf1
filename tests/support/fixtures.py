"""Fixtures shared by several test folders, registered for all of them by tests/conftest.py
(`pytest_plugins`); a folder's conftest keeps only what that folder uses.

- `docker_client` (session): the REAL engine started by scripts/test-env.sh (the test fails, naming
  the script, when none answers);
- `runtime_image` (session): the demo runtime image, built once by scripts/build-images.sh (quick when
  already built);
- `instance_id`: unique per test; afterwards every container and volume labelled with it (or with
  `reconciler-test=<id>`, for the foreign containers tests create) is removed;
- `git_server`: a real smart-HTTP git server on loopback (`tests.support.git_server`);
- `make_work`: `make_work(bare)` gives a work clone pushing to that bare repo by path;
- `gitea`: a running Gitea emulator holding the empty config repo of `tests.support.gitea_repo`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from tests.support import gitea_repo
from tests.support.engine import IMAGE, build_demo_images, cleanup, require_engine
from tests.support.git_server import GitServer
from tests.support.git_work import Work
from tests.support.gitea_emulator import GiteaEmulator


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


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    server = GitServer(tmp_path / "served").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_work(tmp_path: Path) -> Callable[[Path], Work]:
    count = iter(range(1000))

    def make(bare: Path) -> Work:
        return Work(tmp_path / f"work{next(count)}", bare)

    return make


@pytest.fixture
def gitea(tmp_path: Path) -> Iterator[GiteaEmulator]:
    with GiteaEmulator(tmp_path / "gitea", token=gitea_repo.TOKEN) as emu:
        emu.create_repo(gitea_repo.OWNER, gitea_repo.NAME)
        yield emu
