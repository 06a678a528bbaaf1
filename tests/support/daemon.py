"""Fixtures for the daemon and security tests (registered by tests/conftest.py): the REAL daemon
process (`python -m reconciler run`) against the shared `gitea` emulator (real git over HTTP,
webhooks delivered to the daemon) and the real Docker engine (the shared `instance_id`).

- `fleet`: a config repo work clone pushing to the emulator; `fleet.write(...)` + `fleet.commit()`;
- `daemon_factory`: starts daemons (the test's instance id, short intervals), stops them all
  (SIGKILL if still alive); the `instance_id` fixture removes their containers and volumes;
- `Daemon.get/json/journal`: HTTP on loopback and a read-only look at the journal.
Waits are bounded polls (`wait_until`); no test asserts how long anything took.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.support.clock import wait_until
from tests.support.git_cli import GIT_ENV
from tests.support.git_work import Work
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_repo import HOOK_SECRET, NAME, OWNER, TOKEN
from tests.support.net import dead_port
from tests.support.policy import policy_file

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "127.0.0.1:5000/workspace-template-claude-code:latest"
REPO = f"{OWNER}/{NAME}"
CONTEXTS = ("reconciler/canary", "reconciler/production")

SETTINGS = """mode: reconcile
health: {timeout_seconds: %(timeout)s, settle_seconds: 1}
docker: {network: none, restart_policy: "no"}
"""
ORG = """name: Acme
defaults:
  runtime: claude-code
  health: {port: 8080, path: /health, interval_seconds: %(interval)s, timeout_seconds: 1, retries: 1}
workspaces:
%(workspaces)s
"""


class Fleet:
    """The config repo: a work clone whose `origin` is the emulator (pushes are real HTTP pushes)."""

    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.work = Work(path, url)

    def write(self, version: str = "1", *, canary: int = 1, production: int = 1, fail_canary: bool = False,
              interval: float = 1, timeout: float = 30, broken: bool = False) -> None:
        items = []
        for i in range(canary + production):
            tier = "canary" if i < canary else "production"
            env = {"VERSION": version}
            if fail_canary and tier == "canary":
                env["AGENT_FAIL_HEALTH"] = "1"
            items.append(f"  - name: ws{i}\n    tier: {tier}\n    env: {json.dumps(env)}")
        if broken:
            items.append("  - name: bad\n    tier: everywhere")
        files = {
            "reconciler.yaml": SETTINGS % {"timeout": timeout},
            "images.yaml": f"images:\n  claude-code: {IMAGE}\n",
            "orgs/acme/org.yaml": ORG % {"interval": interval, "workspaces": "\n".join(items)},
        }
        self.work.write(files)

    def commit(self, message: str = "change", branch: str = "main") -> str:
        return self.work.commit(message=message, branch=branch)

    def push(self, branch: str = "main") -> None:
        self.work.push(branch, force=True)


@pytest.fixture
def fleet(gitea: GiteaEmulator, tmp_path: Path) -> Fleet:
    return Fleet(tmp_path / "work", gitea.clone_url(OWNER, NAME))


class Daemon:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, state_dir: Path, log: Path, instance: str) -> None:
        self.proc, self.url, self.state_dir, self.log, self.instance = proc, url, state_dir, log, instance

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10)

    def health(self) -> dict[str, Any]:
        try:
            return dict(self.get("/healthz").json())
        except (httpx.HTTPError, ValueError):
            return {}

    def wait_ready(self) -> None:
        if not wait_until(lambda: self.proc.poll() is not None or bool(self.health()), timeout=30, step=0.1):
            raise AssertionError(f"daemon did not answer /healthz:\n{self.logs()}")
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.logs()}")

    def runs(self, revision: str | None = None) -> list[dict[str, Any]]:
        """Journal rows (read-only), oldest first."""
        db = sqlite3.connect(f"file:{self.state_dir / 'journal.sqlite'}?mode=ro", uri=True, timeout=10)
        db.row_factory = sqlite3.Row
        try:
            rows = db.execute("SELECT * FROM runs ORDER BY id").fetchall()
        finally:
            db.close()
        return [dict(r) for r in rows if revision is None or r["revision"] == revision]

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"daemon did not exit:\n{self.logs()[-4000:]}") from None


@pytest.fixture
def daemon_factory(gitea: GiteaEmulator, tmp_path: Path, instance_id: str) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "hook-secret").write_bytes(HOOK_SECRET)

    def start(*, poll: float = 3600, resync: float = 3600, state: str = "state", hook: bool = True,
              extra: tuple[str, ...] = (), wait: bool = True) -> Daemon:
        port = dead_port()
        url = f"http://127.0.0.1:{port}"
        state_dir = tmp_path / state
        log = tmp_path / f"daemon-{len(started)}.log"
        args = [
            sys.executable, "-m", "reconciler", "run", "--source", gitea.clone_url(OWNER, NAME),
            "--branch", "main", "--listen", f"127.0.0.1:{port}", "--state-dir", str(state_dir),
            "--poll-interval", str(poll), "--resync-interval", str(resync),
            "--webhook-secret-file", str(tmp_path / "hook-secret"), "--public-url", url,
            "--gitea-url", gitea.url, "--gitea-repo", REPO, "--gitea-token-file", str(tmp_path / "token"),
            "--instance-id", instance_id, "--secrets-dir", str(secrets), "--concurrency", "2",
            "--policy", str(policy_file(tmp_path)), *extra,
        ]
        env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(ROOT)}
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        daemon = Daemon(proc, url, state_dir, log, instance_id)
        started.append(daemon)
        if wait:
            daemon.wait_ready()
            if hook:
                gitea.add_webhook(OWNER, NAME, url + "/hooks/gitea", secret=HOOK_SECRET.decode())
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.send_signal(signal.SIGKILL)
            daemon.proc.wait(30)


def statuses(gitea: GiteaEmulator, sha: str) -> dict[str, dict[str, Any]]:
    """Latest status per context on `sha` (the emulator's stored rows)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in gitea.statuses(OWNER, NAME, sha):
        latest[row["context"]] = row
    return latest


def states(gitea: GiteaEmulator, sha: str) -> dict[str, str]:
    return {ctx: row["state"] for ctx, row in statuses(gitea, sha).items()}


def containers(client: docker.DockerClient, instance: str, all_: bool = True) -> list[dict[str, Any]]:
    return list(client.api.containers(all=all_, filters={"label": f"reconciler.instance={instance}"}))


def workspace_containers(client: docker.DockerClient, instance: str) -> dict[str, dict[str, Any]]:
    """Workspace containers (not helpers) by workspace id; fails on a duplicate."""
    found: dict[str, dict[str, Any]] = {}
    for row in containers(client, instance):
        labels = row.get("Labels") or {}
        if labels.get("reconciler.role"):
            continue
        ws = labels["reconciler.workspace"]
        assert ws not in found, f"two containers for {ws}: {found[ws].get('Names')} and {row.get('Names')}"
        found[ws] = row
    return found


def push(gitea: GiteaEmulator, fleet: Fleet, before: str, after: str) -> None:
    """Push `main` for real and deliver the push webhook the way Gitea does."""
    fleet.push()
    deliveries = gitea.deliver_push(OWNER, NAME, "refs/heads/main", before, after)
    assert deliveries and all(d.status_code == 202 for d in deliveries), [d.response for d in deliveries]
