"""The `reconciler` command as an operator runs it: a real process (`python -m reconciler`), its exit
code, stdout and stderr. Config repos are small and written per test; a repo whose image is pinned
by digest needs no registry, and `plan` against a new instance id changes nothing in the engine."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PINNED = "127.0.0.1:5000/workspace-template-claude-code@sha256:" + "ab" * 32  # never pulled by a plan
ORG = """\
name: Acme
workspaces:
  - name: Lead
    runtime: claude-code
"""


def reconciler(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`reconciler ARGS` in a fresh process; no RECONCILER_* of this shell leaks in."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=ROOT, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, check=False)


def write_tree(root: Path, org: str | None = ORG, image: str = PINNED, **extra: str) -> Path:
    """A config repo: images.yaml, `orgs/acme/org.yaml` (none: no org at all) and `extra` files."""
    files = {"images.yaml": yaml.safe_dump({"images": {"claude-code": image}}), **extra}
    if org is not None:
        files["orgs/acme/org.yaml"] = org
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    (root / "orgs").mkdir(exist_ok=True)
    return root


WriteTree = Callable[..., Path]
APPLY_SETTINGS = {"health": {"timeout_seconds": 60, "settle_seconds": 1}, "docker": {"network": "none"}}


def committed(tmp_path: Path, org: str, image: str, message: str) -> tuple[Path, str]:
    """A local git repository (`tmp_path/work`) with `org` and quick health settings, committed:
    (its path, the commit)."""
    from tests.support.git_work import Work

    work = Work(tmp_path / "work", tmp_path / "nowhere.git")
    write_tree(work.path, org, image=image, **{"reconciler.yaml": yaml.safe_dump(APPLY_SETTINGS)})
    return work.path, work.commit(message=message)


@pytest.fixture
def tree(tmp_path: Path) -> WriteTree:
    count = iter(range(100))

    def write(org: str | None = ORG, image: str = PINNED, **extra: str) -> Path:
        return write_tree(tmp_path / f"repo{next(count)}", org, image, **extra)

    return write


@pytest.fixture
def common(tmp_path: Path) -> list[str]:
    """--state-dir, --secrets-dir and --policy of a test (the policy allows the test registry)."""
    from tests.support.policy import policy_file

    secrets = tmp_path / "secrets"
    secrets.mkdir()
    return ["--state-dir", str(tmp_path / "state"), "--secrets-dir", str(secrets),
            "--policy", str(policy_file(tmp_path / "policy"))]
