"""Fixtures for the forge tests, around the shared `gitea` emulator (tests/support/fixtures.py): a
work clone that pushes to it over smart HTTP, a `GiteaClient` whose sleeps are recorded instead of
slept, and a webhook receiver served by a real uvicorn on loopback.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from reconciler.forge.gitea import GiteaClient
from reconciler.forge.webhooks import Trigger, webhook_app
from tests.support.git_work import Work
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_repo import HOOK_SECRET, NAME, OWNER, TOKEN


@pytest.fixture
def work(gitea: GiteaEmulator, tmp_path: Path) -> Work:
    """A work clone of the config repo; pushes are real smart-HTTP pushes."""
    return Work(tmp_path / "work", gitea.clone_url(OWNER, NAME))


@pytest.fixture
def head(work: Work) -> str:
    """One commit on main, pushed for real."""
    sha = work.commit(message="first")
    work.push("main")
    return sha


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(gitea: GiteaEmulator, sleeps: Sleeps) -> Iterator[GiteaClient]:
    with GiteaClient(gitea.url, f"{OWNER}/{NAME}", TOKEN, timeout=5, sleep=sleeps) as forge:
        yield forge


class Receiver:
    """`webhook_app` under a real uvicorn on 127.0.0.1; `triggers` collects what it accepted."""

    def __init__(self, secret: bytes, branch: str = "main", max_body: int = 1024 * 1024) -> None:
        self.triggers: list[Trigger] = []
        self.app = webhook_app(secret, branch, self.triggers.append, max_body=max_body)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hooks/gitea"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> None:
        self.thread.start()
        ready = threading.Event()
        for _ in range(500):
            if self.server.started:
                return
            ready.wait(0.01)
        raise AssertionError("uvicorn did not start the webhook receiver on loopback")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def make(**kwargs: Any) -> Receiver:
        receiver = Receiver(kwargs.pop("secret", HOOK_SECRET), **kwargs)
        receiver.start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


@pytest.fixture
def receiver(receiver_factory: Callable[..., Receiver]) -> Receiver:
    return receiver_factory()
