"""Fixtures of the end-to-end tests: the REAL engine, registry and demo images, one Gitea emulator
with `acme/config` and the `agents/<plugin>` repos, and one converged fleet shared by a module.

- `engine` (session): the Docker engine and the registry answer (else the test fails, naming
  scripts/test-env.sh), and the demo runtime images are built and pushed (scripts/build-images.sh,
  quick when already done);
- `e2e` (module): emulator + config repo + plugins + CLI runner + fleet probes under ONE unique
  instance id; the scenarios of a module run in order on the same fleet (each pushes the config it
  needs, so a failed scenario does not leave the next one on a wrong config). Afterwards every
  container and volume labelled with that instance id (or `reconciler-test=<id>`) is removed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import pytest

from reconciler.forge.base import CombinedStatus
from reconciler.forge.gitea import GiteaClient
from tests.e2e.fleet import IMAGE, REPO, TOKEN, Cli, ConfigRepo, Fleet, Plugins, Run, baseline_org
from tests.support.engine import build_demo_images, cleanup, require_engine
from tests.support.gitea_emulator import GiteaEmulator


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    client = require_engine(registry=True)
    build_demo_images(client, IMAGE)
    return client


@dataclass
class E2E:
    """Everything a scenario touches."""

    emu: GiteaEmulator
    repo: ConfigRepo
    plugins: Plugins
    cli: Cli
    fleet: Fleet
    instance_id: str

    def statuses(self, sha: str) -> CombinedStatus:
        with GiteaClient(self.emu.url, REPO, TOKEN, timeout=10) as forge:
            return forge.combined_status(sha)

    def converge(self, org: dict[str, Any] | None = None, message: str = "baseline") -> tuple[str, Run]:
        """Push `org` (default: the baseline) and apply it; the run must succeed."""
        sha = self.repo.push(org or baseline_org(), message)
        run = self.cli.apply()
        assert run.code == 0, run.explain()
        return sha, run


@pytest.fixture(scope="module")
def e2e(engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    work = tmp_path_factory.mktemp("e2e")
    instance_id = f"e2e{uuid.uuid4().hex[:8]}"
    try:
        with GiteaEmulator(work / "gitea", token=TOKEN) as emu:
            plugins = Plugins(emu, work / "plugins")
            repo = ConfigRepo(emu, work / "config")
            yield E2E(emu, repo, plugins, Cli(emu, instance_id, work), Fleet(engine, instance_id), instance_id)
    finally:
        cleanup(engine, instance_id)
