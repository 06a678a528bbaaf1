"""The chaos scenarios' fleet: two configs, A and B, whose switch exercises every kind of step, the
real `reconciler apply` run as a subprocess (through a `KillProxy` when it is to be killed), and the
invariants that must hold after one more plain apply.

- A -> B: lead's SKILL.md changes (in-place /configs update), triage's env (recreate), scout loses a
  plugin (recreate with a /configs sync), newbie is created on a fresh volume with a plugin,
  research is deleted; B -> A the other way round (a plugin install, a create, a delete).
- `Chaos.invariants()`: one container per workspace, running, under its own name (no `.prev-*`,
  `.new-*`, helper); no volume but each workspace's /configs; every /configs complete; every
  workspace at the spec an uninterrupted switch left it at (nothing older than the config); and,
  when asked, a fresh `reconciler plan` finds nothing to change.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from reconciler.backends import labels as lb
from tests.chaos.kill_proxy import KillProxy
from tests.e2e.fleet import ROOT, Cli, ConfigRepo, Fleet

SKILL = {"A": "# Lead\nLead the agents.\n", "B": "# Lead\nLead the agents, carefully.\n"}
LEAD = "You lead the Acme agents.\n"
RESEARCH = "You research.\n"
READ_FILES = ('cd /configs && for f in "$@"; do'
              ' if [ -f "$f" ]; then cat "$f"; else printf MISSING; fi; printf "\\0"; done')


class ChaosRepo(ConfigRepo):
    """The e2e config repo, with a SKILL.md of the lead following the state (only SKILL.md content
    changes: an update of /configs in place, the container keeps running)."""

    skill = SKILL["A"]

    def files(self, org_text: str) -> dict[str, str]:
        return {**super().files(org_text), "orgs/acme/files/lead/skills/lead/SKILL.md": self.skill}


def org(state: str) -> dict[str, Any]:
    """The two configs the runs switch between (no HTTP health checks: the gate is 'running')."""
    ws = [
        {"name": "Lead", "key": "lead", "tier": "canary", "files_dir": "files/lead", "plugins": ["notes"]},
        {"name": "Triage", "key": "triage", "tier": "canary", "env": {"LEVEL": "1" if state == "A" else "2"}},
        {"name": "Scout", "key": "scout", "plugins": ["notes", "web-search"] if state == "A" else ["notes"]},
        {"name": "Responder", "key": "responder", "env": {"QUEUE": "replies"}},
    ]
    if state == "A":
        ws.append({"name": "Research", "key": "research", "files_dir": "files/research"})
    else:
        ws.append({"name": "Newbie", "key": "newbie", "files_dir": "files/research", "plugins": ["web-search"]})
    return {"name": "Acme", "defaults": {"runtime": "claude-code", "plugins": []}, "workspaces": ws}


def expected_configs(state: str) -> dict[str, dict[str, str | None]]:
    """workspace -> path under /configs -> content (None: must exist)."""
    want: dict[str, dict[str, str | None]] = {
        "acme/lead": {"system-prompt.md": LEAD, "skills/lead/SKILL.md": SKILL[state],
                      "plugins/notes/.installed": None},
        "acme/triage": {},
        "acme/scout": {"plugins/notes/.installed": None},
        "acme/responder": {},
    }
    if state == "A":
        want["acme/scout"]["plugins/web-search/.installed"] = None
        want["acme/scout"]["plugins/web-search/search.sh"] = "#!/bin/sh\necho search\n"
        want["acme/research"] = {"system-prompt.md": RESEARCH}
    else:
        want["acme/newbie"] = {"system-prompt.md": RESEARCH, "plugins/web-search/.installed": None}
    return want


@dataclass
class Chaos:
    repo: ChaosRepo
    cli: Cli
    fleet: Fleet
    client: docker.DockerClient
    sock_dir: Path
    state: str = "A"
    specs: dict[str, dict[str, str]] = field(default_factory=dict)  # state -> workspace -> spec hash

    def push(self, state: str) -> str:
        self.state = state
        self.repo.skill = SKILL[state]
        return self.repo.push(org(state), f"state {state}")

    def apply(self, proxy: KillProxy | None = None, delay: float | None = None, serial: bool = True) -> tuple[int, str]:
        """Run apply (through `proxy`, which may kill it; or killed after `delay` seconds); `serial`:
        one action at a time, so the engine calls come in the order they were recorded."""
        env = self.cli.environment({"DOCKER_HOST": proxy.docker_host} if proxy else None)
        proc = subprocess.Popen(self.cli.command("--concurrency", "1" if serial else "4"), cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proxy is not None:
            proxy.pid = proc.pid
        try:
            out, _ = proc.communicate(timeout=delay) if delay else proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            if not delay:
                raise
            proc.kill()
            out, _ = proc.communicate(timeout=30)
        return proc.returncode, out

    def recorded(self, state: str) -> list[str]:
        """The engine calls of an uninterrupted switch to `state`."""
        self.push(state)
        with KillProxy(self.sock_dir / f"rec-{uuid.uuid4().hex[:6]}.sock") as proxy:
            code, out = self.apply(proxy)
        assert code == 0, out
        self.specs[state] = self.running_specs()
        return proxy.log

    def running_specs(self) -> dict[str, str]:
        """workspace -> the spec hash it runs (its label, or the override an in-place update left)."""
        path = self.cli.state_dir / f"docker-{self.fleet.instance_id}-overrides.json"
        overrides = json.loads(path.read_text()) if path.exists() else {}
        specs: dict[str, str] = {}
        for box in self.fleet.all():
            ws = box.labels.get(lb.WORKSPACE, "")
            if box.labels.get(lb.ROLE) or box.name != lb.container_name(self.fleet.instance_id, ws):
                continue
            override = overrides.get(ws) or {}
            specs[ws] = override["spec_hash"] if override.get("container_id") == box.id else box.labels[lb.SPEC_HASH]
        return specs

    def invariants(self, plan: bool = False) -> list[str]:
        """What is wrong with the fleet after a recovery apply (empty: all good); `plan`: also ask
        a fresh `reconciler plan` (slower: a process)."""
        problems: list[str] = []
        want = expected_configs(self.state)
        boxes = self.fleet.all()
        seen: dict[str, str] = {}
        for box in boxes:
            ws = box.labels.get(lb.WORKSPACE, "?")
            if box.labels.get(lb.ROLE):
                problems.append(f"helper left: {box.name}")
            elif box.name != lb.container_name(self.fleet.instance_id, ws):
                problems.append(f"copy left: {box.name}")
            elif ws in seen:
                problems.append(f"duplicate: {ws}")
            else:
                seen[ws] = box.id
                if box.state != "running":
                    problems.append(f"{ws} is {box.state}")
        if set(seen) != set(want):
            problems.append(f"workspaces {sorted(seen)} != {sorted(want)}")
        volumes = set(self.fleet.volumes())
        wanted_volumes = {lb.volume_name(self.fleet.instance_id, ws) for ws in want}
        if volumes != wanted_volumes:
            problems.append(f"volumes: extra {sorted(volumes - wanted_volumes)}, "
                            f"missing {sorted(wanted_volumes - volumes)}")
        for ws, files in want.items():
            if ws not in seen or not files:
                continue
            got = self.client.containers.get(seen[ws]).exec_run(["sh", "-c", READ_FILES, "sh", *files])
            contents = got.output.decode().split("\0")
            for (path, content), found in zip(files.items(), contents, strict=False):
                if found == "MISSING":
                    problems.append(f"{ws}: /configs/{path} missing")
                elif content is not None and found != content:
                    problems.append(f"{ws}: /configs/{path} is {found!r}")
        if self.state in self.specs and self.running_specs() != self.specs[self.state]:
            problems.append(f"specs {self.running_specs()} != those of state {self.state}: {self.specs[self.state]}")
        if plan:
            problems += self.plan_changes()
        return problems

    def plan_changes(self) -> list[str]:
        done = subprocess.run(self.cli.command("--json", subcommand="plan"), cwd=ROOT, env=self.cli.environment(),
                              capture_output=True, text=True, timeout=120, check=False)
        try:
            summary = json.loads(done.stdout)["plan"]["summary"]
            changes = {k: v for k, v in summary.items() if k not in ("noop", "hold") and v}
        except (ValueError, KeyError, TypeError):
            changes = {"unreadable plan": done.stdout[-300:] + done.stderr[-300:]}
        return [f"not converged: plan still wants {changes}"] if changes else []
