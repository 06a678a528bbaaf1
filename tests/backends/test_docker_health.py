"""Health of Docker workspaces on the real engine: HEALTHCHECK status, settle period, gone, unreachable."""

from __future__ import annotations

from pathlib import Path

import docker

from reconciler.backends import labels as lb
from reconciler.backends.docker import DockerBackend
from reconciler.model.config import Health
from reconciler.model.enums import ActionKind, HealthState
from reconciler.model.plan import Action
from tests.backends.conftest import make_desired
from tests.support.clock import FakeClock, wait_until

FAST = Health(port=8080, path="/health", interval_seconds=0.3, timeout_seconds=2, retries=2)


def create(backend: DockerBackend, **kwargs) -> None:
    desired = make_desired(**kwargs)
    backend.apply(
        Action(kind=ActionKind.CREATE, workspace_id=desired.id, tier=desired.tier, reason="t", desired=desired),
        {},
        "rev-1",
    )


def test_healthcheck_healthy_and_failing(make_backend) -> None:
    backend = make_backend()
    create(backend, workspace_id="acme/good", health=FAST)
    create(backend, workspace_id="acme/bad", health=FAST, env={"AGENT_FAIL_HEALTH": "1"})
    assert backend.health("acme/good") in (HealthState.STARTING, HealthState.HEALTHY)
    assert wait_until(lambda: backend.health("acme/good") is HealthState.HEALTHY)
    assert wait_until(lambda: backend.health("acme/bad") is HealthState.UNHEALTHY)
    by_id = {w.id: w for w in backend.list_owned()}
    assert by_id["acme/good"].health is HealthState.HEALTHY


def test_failing_config_file_flips_health(make_backend, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "FAIL_HEALTH").write_text("on purpose\n")
    backend = make_backend()
    create(backend, health=FAST, files_root=files)
    assert wait_until(lambda: backend.health("acme/alpha") is HealthState.UNHEALTHY)


def test_settle_period_without_healthcheck(make_backend, docker_client, instance_id) -> None:
    clock = FakeClock()
    backend = make_backend(settle_seconds=30, clock=clock)
    create(backend)
    assert backend.health("acme/alpha") is HealthState.STARTING
    clock.advance(10)
    assert backend.health("acme/alpha") is HealthState.STARTING
    clock.advance(25)
    assert backend.health("acme/alpha") is HealthState.HEALTHY

    name = lb.container_name(instance_id, "acme/alpha")
    docker_client.api.stop(name, timeout=5)
    assert backend.health("acme/alpha") is HealthState.UNHEALTHY
    docker_client.api.remove_container(name, force=True)
    assert backend.health("acme/alpha") is HealthState.MISSING


def test_unreachable_engine_is_unknown_not_dead(tmp_path: Path) -> None:
    dead = docker.DockerClient(base_url="unix:///tmp/nope.sock", version="1.41", timeout=5)
    assert DockerBackend("tdead", client=dead, state_dir=tmp_path).health("acme/alpha") is HealthState.UNKNOWN
