"""The pieces an end-to-end test drives, the way an operator does: a config repo pushed to the Gitea
emulator, the real `reconciler apply` CLI run as a subprocess, and probes of the real engine.

- `ConfigRepo`: a work clone of `acme/config`; `push(org)` writes the whole repo (baseline files +
  the given org template) and pushes a commit for real over smart HTTP, returning its SHA;
- `Plugins`: work clones of `agents/<plugin>` on the emulator (so `branch:main` can move upstream);
- `Cli`: runs `python -m reconciler apply ...` against the emulator with a unique instance id;
- `Fleet`: what the engine runs for that instance id (`containers()`, `started_at()`, `read()`);
- `baseline_org()`: 2 canary + 3 production workspaces, network none, short health settings.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import yaml

from reconciler.backends.docker_health import parse_docker_time
from tests.support.git_work import Work
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.policy import policy_file

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-gitea-T0KEN-5ecret-0123456789"
SECRET_VALUE = "sk-e2e-SECRET-value-do-not-leak-42"
REPO = "acme/config"
PUBLIC_URL = "http://127.0.0.1:8099/reconciler"
IMAGE = "127.0.0.1:5000/workspace-template-claude-code:latest"
HEALTH = {"port": 8080, "interval_seconds": 1, "timeout_seconds": 1, "retries": 1}
CANARIES = ("acme/lead", "acme/triage")
PRODUCTION = ("acme/research", "acme/scout", "acme/responder")

PLUGIN_FILES = {
    "notes": {"SKILL.md": "# Notes\nKeep notes.\n"},
    "web-search": {"SKILL.md": "# Web search v1\nSearch and cite.\n", "search.sh": "#!/bin/sh\necho search\n"},
}


class Plugins:
    """`agents/<name>` repos on the emulator, each with one commit on main."""

    def __init__(self, emu: GiteaEmulator, work_root: Path) -> None:
        self.clones: dict[str, Work] = {}
        for name, files in PLUGIN_FILES.items():
            emu.create_repo("agents", name)
            self.clones[name] = Work(work_root / name, emu.clone_url("agents", name))
            self.change(name, files, f"{name}: first")

    def change(self, name: str, files: dict[str, str], message: str = "") -> str:
        sha = self.clones[name].commit(files, message or f"{name}: change")
        self.clones[name].push(force=True)
        return sha


def baseline_org() -> dict[str, Any]:
    """2 canary + 3 production workspaces; canaries have an HTTP health check (so one can fail)."""
    return copy.deepcopy({
        "name": "Acme",
        "defaults": {"runtime": "claude-code", "plugins": ["notes"], "env": {"LOG_LEVEL": "info"}},
        "workspaces": [
            {
                "name": "Lead", "key": "lead", "tier": "canary", "files_dir": "files/lead",
                "plugins": ["web-search"], "secrets": ["API_KEY"], "health": HEALTH,
                "children": [
                    {"name": "Triage", "key": "triage", "tier": "canary", "health": HEALTH},
                    {"name": "Research", "key": "research", "files_dir": "files/research", "plugins": ["web-search"]},
                    {"name": "Scout", "key": "scout", "env": {"MAX_PAGES": "20"}},
                    {"name": "Responder", "key": "responder", "env": {"QUEUE": "replies"}},
                ],
            },
        ],
    })


def find(org: dict[str, Any], key: str) -> dict[str, Any]:
    """The workspace mapping with `key` anywhere in an org template (to edit it in a scenario)."""
    stack = list(org["workspaces"])
    while stack:
        ws = stack.pop()
        if ws.get("key") == key:
            return ws
        stack.extend(ws.get("children") or [])
    raise KeyError(key)


class ConfigRepo:
    """The operator's clone of `acme/config`."""

    def __init__(self, emu: GiteaEmulator, path: Path) -> None:
        emu.create_repo(*REPO.split("/"))
        self.clone = Work(path, emu.clone_url(*REPO.split("/")))
        port = emu.url.rsplit(":", 1)[1]
        self.plugin_base = f"http://127.0.0.1:{port}/agents"
        self.settings = {
            "mode": "reconcile",
            "max_delete": 3,
            "allowed_sources": [f"127.0.0.1:{port}/agents/"],
            "health": {"timeout_seconds": 30, "settle_seconds": 1},
            "docker": {"network": "none", "restart_policy": "unless-stopped"},
        }

    def files(self, org_text: str) -> dict[str, str]:
        plugins = {
            "notes": {"source": f"{self.plugin_base}/notes.git", "track": "none"},
            "web-search": {"source": f"{self.plugin_base}/web-search.git", "track": "branch:main"},
        }
        return {
            "reconciler.yaml": yaml.safe_dump(self.settings, sort_keys=False),
            "plugins.yaml": yaml.safe_dump({"plugins": plugins}, sort_keys=False),
            "images.yaml": yaml.safe_dump({"images": {"claude-code": IMAGE}}),
            "orgs/acme/org.yaml": org_text,
            "orgs/acme/files/lead/system-prompt.md": "You lead the Acme agents.\n",
            "orgs/acme/files/research/system-prompt.md": "You research.\n",
        }

    def push(self, org: dict[str, Any] | str, message: str = "config") -> str:
        text = org if isinstance(org, str) else yaml.safe_dump(org, sort_keys=False)
        sha = self.clone.commit(self.files(text), message)
        self.clone.push(force=True)
        return sha


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def explain(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


class Cli:
    """`reconciler apply` as a user runs it, as a subprocess, statuses posted to the emulator."""

    def __init__(self, emu: GiteaEmulator, instance_id: str, work: Path) -> None:
        self.emu, self.instance_id = emu, instance_id
        self.state_dir, self.secrets_dir = work / "state", work / "secrets"
        self.secrets_dir.mkdir(parents=True)
        (self.secrets_dir / "API_KEY").write_text(SECRET_VALUE + "\n")
        self.token_file = work / "gitea-token"
        self.token_file.write_text(TOKEN + "\n")
        port = emu.url.rsplit(":", 1)[1]
        self.policy = policy_file(work, f"127.0.0.1:{port}/agents/")

    def command(self, *extra: str, subcommand: str = "apply") -> list[str]:
        """The command line of `reconciler apply` (or `plan`) against the emulator."""
        forge = ["--gitea-url", self.emu.url, "--gitea-repo", REPO, "--gitea-token-file", str(self.token_file),
                 "--public-url", PUBLIC_URL] if subcommand == "apply" else []
        return [
            sys.executable, "-m", "reconciler", subcommand,
            "--source", self.emu.clone_url(*REPO.split("/")), "--ref", "main", *forge,
            "--instance-id", self.instance_id, "--state-dir", str(self.state_dir),
            "--secrets-dir", str(self.secrets_dir), "--policy", str(self.policy), *extra,
        ]

    @staticmethod
    def environment(env: dict[str, str] | None = None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        return {**base, **(env or {})}

    def apply(self, *extra: str, env: dict[str, str] | None = None, timeout: float = 240) -> Run:
        done = subprocess.run(self.command(*extra), cwd=ROOT, env=self.environment(env), capture_output=True,
                              text=True, timeout=timeout, check=False)
        return Run(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class Box:
    """One container of the fleet, as the engine reports it."""

    id: str
    name: str
    state: str
    labels: dict[str, str]


class Fleet:
    """Probes of what the engine runs for one instance id (never changes anything)."""

    def __init__(self, client: docker.DockerClient, instance_id: str) -> None:
        self.client, self.instance_id = client, instance_id

    def all(self) -> list[Box]:
        rows = self.client.api.containers(all=True, filters={"label": f"reconciler.instance={self.instance_id}"})
        return [Box(r["Id"], r["Names"][0].lstrip("/"), r["State"], r.get("Labels") or {}) for r in rows]

    def containers(self) -> dict[str, Box]:
        """workspace id -> its workload container; fails on duplicates or leftovers (`.prev-*`, helpers)."""
        boxes = self.all()
        assert all(".prev-" not in b.name and "reconciler.role" not in b.labels for b in boxes), boxes
        by_ws: dict[str, Box] = {}
        for box in boxes:
            ws = box.labels["reconciler.workspace"]
            assert ws not in by_ws, f"two containers for {ws}: {by_ws[ws].name}, {box.name}"
            by_ws[ws] = box
        return by_ws

    def ids(self) -> dict[str, str]:
        return {ws: box.id for ws, box in self.containers().items()}

    def started_at(self, container_id: str) -> str:
        return str(self.client.api.inspect_container(container_id)["State"]["StartedAt"])

    def created_at(self, container_id: str) -> float:
        created = parse_docker_time(self.client.api.inspect_container(container_id)["Created"])
        assert created is not None
        return created

    def env(self, container_id: str) -> dict[str, str]:
        pairs = self.client.api.inspect_container(container_id)["Config"]["Env"] or []
        return dict(p.split("=", 1) for p in pairs)

    def read(self, container_id: str, path: str) -> str:
        result = self.client.containers.get(container_id).exec_run(["cat", path])
        assert result.exit_code == 0, f"cat {path} in {container_id[:12]}: {result.output!r}"
        return result.output.decode()

    def volumes(self) -> list[str]:
        vols = self.client.api.volumes(filters={"label": f"reconciler.instance={self.instance_id}"})
        return sorted(v["Name"] for v in vols.get("Volumes") or [])
