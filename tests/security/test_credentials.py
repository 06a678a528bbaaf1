"""An attacker with pull-request rights points the config at a host they listen on. They get nothing.

Each test writes a config repo that allowlists the attacker's own host in `reconciler.yaml` and
points an `!external`, a plugin source and an image at a loopback listener, then runs the real
`reconciler plan` process (the same pipeline a pull request review runs) with a real token
configured for another host. What the listener received is the assertion.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.listener import Listener
from tests.support.policy import policy_file

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-attack-target-7f3a"


def hostile_repo(root: Path, evil: str, *, external: bool = True, plugin: bool = True, image: bool = True) -> Path:
    """A repo that allowlists `evil` itself and points the chosen kinds of fetch at it."""
    pinned = "127.0.0.1:5000/agent@sha256:" + "0" * 64  # a digest pin: no registry call at all
    files = {
        "reconciler.yaml": {"allowed_sources": [f"{evil}/evil/"]},
        "plugins.yaml": {"plugins": {"loot": {"source": f"http://{evil}/evil/loot.git", "track": "branch:main"}}
                         if plugin else {}},
        "images.yaml": {"images": {"claude-code": f"{evil}/evil/agent:latest" if image else pinned}},
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(yaml.safe_dump(data))
    org = root / "orgs/acme/org.yaml"
    org.parent.mkdir(parents=True)
    workspaces = "  - name: A\n"
    if external:
        workspaces += f"  - !external {{repo: {evil}/evil/tree, ref: main, path: ws.yaml, url: http://{evil}/evil/tree.git}}\n"
    defaults = "{runtime: claude-code, plugins: [loot]}" if plugin else "{runtime: claude-code}"
    org.write_text(f"name: Acme\ndefaults: {defaults}\nworkspaces:\n{workspaces}")
    return root


def plan(repo: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    token_file = tmp / "token"
    token_file.write_text(TOKEN)
    credentials = tmp / "credentials.yaml"
    credentials.write_text(yaml.safe_dump({"git": [{"host": "127.0.0.1:9", "token_file": str(token_file)}],
                                           "registries": [{"host": "127.0.0.1:9", "username": "bot",
                                                           "password_file": str(token_file)}]}))
    args = [sys.executable, "-m", "reconciler", "plan", "--source", str(repo), "--state-dir", str(tmp / "state"),
            "--secrets-dir", str(tmp / "secrets"), "--credentials", str(credentials), *extra]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_a_repo_that_allowlists_its_own_host_is_refused_before_any_request(tmp_path: Path) -> None:
    with Listener() as evil:
        repo = hostile_repo(tmp_path / "repo", evil.host)
        done = plan(repo, tmp_path, "--policy", str(policy_file(tmp_path / "policy")))
    assert done.returncode == 1, done.stderr
    assert evil.seen == []  # not one request: the allowlist in the repo widened nothing
    errors = done.stderr
    assert "reconciler.yaml:" in errors and "is not within the operator policy" in errors
    assert "plugins.yaml:" in errors and "is not allowed by the operator policy" in errors
    assert "images.yaml:" in errors and "registry" in errors
    assert "orgs/acme/org.yaml:" in errors and "!external repo" in errors
    assert TOKEN not in done.stdout + done.stderr


DOCKER = pytest.mark.docker  # `reconciler plan` gets as far as observing the Docker engine


@pytest.mark.parametrize("kind", ["external", pytest.param("plugin", marks=DOCKER),
                                  pytest.param("image", marks=DOCKER)])
def test_an_allowed_host_that_asks_for_credentials_gets_none(tmp_path: Path, kind: str) -> None:
    """Even where the operator allows the host, a credential belongs to its own host only, and a
    registry's token realm on another host is never contacted."""
    with Listener() as realm, Listener() as evil:
        if kind == "image":
            evil.challenge = f'Bearer realm="{realm.url}/token",service="evil"'
        repo = hostile_repo(tmp_path / "repo", evil.host, external=kind == "external", plugin=kind == "plugin",
                            image=kind == "image")
        done = plan(repo, tmp_path, "--policy", str(policy_file(tmp_path / "policy")),
                    "--allow-source", f"{evil.host}/evil/", "--allow-registry", evil.host)
    assert done.returncode in (1, 2), done.stderr
    assert evil.seen, f"the allowed host was asked (so the test proves something): {done.stderr}"
    assert evil.authorizations() == [], evil.seen
    assert realm.seen == []
    assert TOKEN not in done.stdout + done.stderr
