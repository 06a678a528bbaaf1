"""Fixtures for the pins tests: REAL registry, engine and git server, all on loopback.

- `pusher`: builds tiny variants of the demo runtime image (a LABEL, optionally ENV
  AGENT_FAIL_HEALTH=1: no new layer) and pushes them under one repository unique to the test;
- `own_registry`: a second registry (Debian's docker-registry) this test starts on a free loopback
  port and may stop, to prove what "registry down" does without touching the shared one;
- `plugin_repo`: a plugin repository on a real smart-HTTP git server, with a work clone to commit,
  tag and push;
- `config`: writes a config repository (1 canary + 1 production workspace, network none, short
  health settings) and runs ONE pass over it with `pipeline.passes.run_pass`, the real Docker backend,
  the live pin resolver and the hold store, as `reconciler apply` does.
Engine objects are removed through the `instance_id` fixture of the backend tests.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import yaml

from reconciler.backends.docker import DockerBackend
from reconciler.model.config import ReconcilerFile
from reconciler.model.events import ApplyEvent
from reconciler.model.policy import Policy, image_repository
from reconciler.pipeline.compose import Parts, build_parts
from reconciler.pipeline.passes import PassOutcome, run_pass
from reconciler.pipeline.settings import Settings
from reconciler.render.pins import PinResolver
from reconciler.source.checkout import Checkout
from reconciler.source.pins import LivePinResolver
from reconciler.source.registry import RegistryClient
from tests.support.engine import IMAGE
from tests.support.git_server import GitServer
from tests.support.git_work import Work
from tests.support.policy import TEST_REGISTRY, policy_for

SHARED_REGISTRY = "127.0.0.1:5000"
HEALTH = {"port": 8080, "interval_seconds": 0.3, "timeout_seconds": 2, "retries": 2}


def _registry_answers(host: str) -> bool:
    try:
        return httpx.get(f"http://{host}/v2/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def shared_registry() -> str:
    if not _registry_answers(SHARED_REGISTRY):
        pytest.fail(f"no registry answers on {SHARED_REGISTRY}; start it with `scripts/test-env.sh start`",
                    pytrace=False)
    return SHARED_REGISTRY


class Pusher:
    def __init__(self, client: docker.DockerClient, registry: str) -> None:
        self.client, self.registry = client, registry
        self.repo = f"{registry}/pins-{uuid.uuid4().hex[:8]}/agent"
        self.tags: list[str] = []

    def push(self, tag: str = "latest", *, fail_health: bool = False) -> str:
        """Build a new variant, push it as `<repo>:<tag>`; returns its digest (`sha256:...`)."""
        lines = [f"FROM {IMAGE}", f"LABEL reconciler-test.variant={uuid.uuid4().hex}"]
        if fail_health:
            lines.append("ENV AGENT_FAIL_HEALTH=1")
        target = f"{self.repo}:{tag}"
        self.client.images.build(fileobj=io.BytesIO("\n".join(lines).encode()), tag=target, rm=True)
        self.tags.append(target)
        for message in self.client.api.push(self.repo, tag=tag, stream=True, decode=True):
            if message.get("error"):
                raise AssertionError(f"docker push {target} failed: {message['error']}")
        return RegistryClient().digest(target)

    def ref(self, tag: str = "latest") -> str:
        return f"{self.repo}:{tag}"


def _untag(client: docker.DockerClient, pusher: Pusher) -> None:
    for tag in pusher.tags:  # untags only: containers still being cleaned up keep their image
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(tag, force=True)


@pytest.fixture
def pusher(docker_client: docker.DockerClient, shared_registry: str) -> Iterator[Pusher]:
    p = Pusher(docker_client, shared_registry)
    yield p
    _untag(docker_client, p)


class OwnRegistry:
    """A registry process of this test only, on its own loopback port."""

    def __init__(self, root: Path) -> None:
        if shutil.which("docker-registry") is None:
            pytest.fail("docker-registry is not installed; run scripts/setup.sh", pytrace=False)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        config = root / "registry.yml"
        config.write_text(yaml.safe_dump({
            "version": 0.1, "log": {"level": "error"},
            "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
            "http": {"addr": self.host},
        }))
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if _registry_answers(self.host):
                return
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"the test's own registry did not come up on {self.host}", pytrace=False)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def own_registry(tmp_path: Path) -> Iterator[OwnRegistry]:
    reg = OwnRegistry(tmp_path / "own-registry")
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def own_pusher(docker_client: docker.DockerClient, own_registry: OwnRegistry) -> Iterator[Pusher]:
    p = Pusher(docker_client, own_registry.host)
    yield p
    _untag(docker_client, p)


@dataclass
class PluginRepo:
    url: str
    work: Work
    allowed: str  # allowed_sources prefix

    def release(self, tag: str, files: dict[str, str | None]) -> str:
        """Commit `files`, (re)point `tag` at the commit, push both; returns the commit SHA."""
        sha = self.work.commit(files, f"release {tag}")
        self.work.run("tag", "-f", tag)
        self.work.push("main", f"refs/tags/{tag}", force=True)
        return sha


@pytest.fixture
def plugin_repo(tmp_path: Path, make_work: Callable[[Path], Work]) -> Iterator[PluginRepo]:
    server = GitServer(tmp_path / "served")
    server.served.__enter__()
    server.running = True
    bare = server.repo("agents", "tools")
    try:
        yield PluginRepo(server.repo_url("agents", "tools"), make_work(bare), f"{server.host}/agents/")
    finally:
        server.stop()


@dataclass
class Config:
    """A config repository on disk and the passes run over it."""

    root: Path
    state_dir: Path
    instance: str
    client: docker.DockerClient
    images: dict[str, str] = field(default_factory=dict)
    plugins: dict[str, dict[str, str]] = field(default_factory=dict)
    allowed: list[str] = field(default_factory=list)
    events: list[ApplyEvent] = field(default_factory=list)

    def write(self) -> None:
        files = {
            "reconciler.yaml": {"allowed_sources": self.allowed,
                                "health": {"timeout_seconds": 30, "settle_seconds": 0},
                                "docker": {"network": "none", "restart_policy": "no"}},
            "images.yaml": {"images": self.images},
            "plugins.yaml": {"plugins": self.plugins},
            "orgs/acme/org.yaml": {
                "name": "Acme",
                "defaults": {"runtime": "claude-code", "health": HEALTH, "plugins": sorted(self.plugins)},
                "workspaces": [{"name": "Canary", "key": "canary", "tier": "canary"}, {"name": "Prod", "key": "prod"}],
            },
        }
        for rel, data in files.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(data, sort_keys=False))

    def policy(self) -> Policy:
        """The operator policy of this test: its registries and the plugin sources it allows."""
        registries = sorted({image_repository(ref).split("/", 1)[0] for ref in self.images.values()})
        return policy_for(*self.allowed, registries=tuple(registries) or (TEST_REGISTRY,))

    def policy_args(self) -> list[str]:
        policy = self.policy()
        return [*(f"--allow-source={s}" for s in policy.sources), *(f"--allow-registry={r}" for r in policy.registries)]

    def backend(self) -> DockerBackend:
        return DockerBackend(self.instance, client=self.client, network="none", restart_policy="no",
                             settle_seconds=0, state_dir=self.state_dir, stop_timeout=2)

    def run(self, *, apply: bool = True, registry: RegistryClient | None = None) -> PassOutcome:
        self.write()
        self.events.clear()
        settings = Settings(instance_id=self.instance, state_dir=self.state_dir, secrets_dir=None, max_delete=100,
                            health_timeout_s=30, policy=self.policy())
        parts = _Parts(**vars(build_parts(settings)))
        parts.config, parts.registry = self, registry or RegistryClient()
        return run_pass(Checkout(self.root, None, None), parts, apply=apply, on_event=self.events.append)

    def containers(self) -> dict[str, dict[str, Any]]:
        """Workload containers of this instance by workspace id: {id, image label, plugins label}."""
        rows = self.client.api.containers(all=True, filters={"label": [f"reconciler.instance={self.instance}",
                                                                      "reconciler.managed=true"]})
        return {r["Labels"]["reconciler.workspace"]: r for r in rows if not any(".prev-" in n for n in r["Names"])}

    def read(self, workspace_id: str, path: str) -> str:
        cid = self.containers()[workspace_id]["Id"]
        out = self.client.api.exec_start(self.client.api.exec_create(cid, ["cat", path]))
        return out.decode()


class _Parts(Parts):
    """The pipeline's parts with this test's backend (its client, short stop timeout) and registry."""

    config: Config
    registry: RegistryClient

    def backend(self, repo: ReconcilerFile) -> DockerBackend:
        return self.config.backend()

    def resolver(self) -> PinResolver:
        return LivePinResolver(self.config.state_dir, self.registry)


@pytest.fixture
def config(tmp_path: Path, instance_id: str, docker_client: docker.DockerClient) -> Config:
    return Config(tmp_path / "repo", tmp_path / "state", instance_id, docker_client)

