"""Fixtures of the chaos suite: one Gitea emulator with the config and plugin repos, one instance id
per module, everything it made removed afterwards (see `fleet.py` for the scenario)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.fleet import Chaos, ChaosRepo
from tests.e2e.fleet import IMAGE, TOKEN, Cli, Fleet, Plugins
from tests.support.engine import build_demo_images, cleanup, require_engine
from tests.support.gitea_emulator import GiteaEmulator


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chaos]:
    client = require_engine(registry=True)
    build_demo_images(client, IMAGE)
    work = tmp_path_factory.mktemp("chaos")
    sock_dir = Path(f"/tmp/chaos-{uuid.uuid4().hex[:6]}")  # unix socket paths must stay short
    sock_dir.mkdir()
    instance_id = f"chaos{uuid.uuid4().hex[:6]}"
    try:
        with GiteaEmulator(work / "gitea", token=TOKEN) as emu:
            Plugins(emu, work / "plugins")
            repo = ChaosRepo(emu, work / "config")
            repo.settings["max_delete"] = 5
            repo.settings["health"] = {"timeout_seconds": 30, "settle_seconds": 0.5}
            yield Chaos(repo, Cli(emu, instance_id, work), Fleet(client, instance_id), client, sock_dir)
    finally:
        cleanup(client, instance_id)
        for sock in sock_dir.glob("*"):
            sock.unlink()
        sock_dir.rmdir()
