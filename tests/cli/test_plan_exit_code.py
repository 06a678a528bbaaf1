"""`plan --exit-code`: 0 no changes, 1 invalid or refused, 2 could not plan, 3 changes pending.
Without it, a plan that would change something still exits 0 (as before).

0 and 3 observe the real engine under a new instance id (read-only: nothing runs for it, nothing is
created); 1 and 2 end before the engine is asked."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import docker
import pytest

from tests.cli.conftest import WriteTree, reconciler, write_tree
from tests.support.git_cli import git
from tests.support.git_work import Work

EXTERNAL_ONLY = "name: Acme\nworkspaces:\n  - name: Ops\n    runtime: external\n"  # tracked, never provisioned


@pytest.fixture
def nobody(docker_client: docker.DockerClient) -> list[str]:
    """An instance id that owns nothing in the engine."""
    return ["--instance-id", f"t{uuid.uuid4().hex[:8]}"]


def test_changes_pending_is_3_only_with_exit_code(tree: WriteTree, common: list[str], nobody: list[str]) -> None:
    repo = tree()
    pending = reconciler("plan", "--source", str(repo), "--exit-code", *nobody, *common)
    assert pending.returncode == 3, pending.stderr
    assert "acme/lead  create" in pending.stdout
    plain = reconciler("plan", "--source", str(repo), "--json", *nobody, *common)
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["status"] == "planned"


def test_no_changes_is_0(tree: WriteTree, common: list[str], nobody: list[str]) -> None:
    done = reconciler("plan", "--source", str(tree(org=EXTERNAL_ONLY)), "--exit-code", *nobody, *common)
    assert done.returncode == 0, done.stderr
    assert "No changes." in done.stdout


def test_a_git_source_at_a_ref_plans_like_apply(tmp_path: Path, common: list[str], nobody: list[str]) -> None:
    bare = tmp_path / "config.git"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    work = Work(tmp_path / "work", bare)
    write_tree(work.path, org=EXTERNAL_ONLY)
    nothing = work.commit(message="nothing to run yet")
    write_tree(work.path)
    work.commit(message="acme")
    work.push()
    assert reconciler("plan", "--source", bare.as_uri(), "--ref", nothing, "--exit-code", *nobody, *common
                      ).returncode == 0
    assert reconciler("plan", "--source", bare.as_uri(), "--ref", "main", "--exit-code", *nobody, *common
                      ).returncode == 3


def test_an_invalid_config_is_1(tree: WriteTree, common: list[str]) -> None:
    repo = tree(org="name: Acme\nworkspaces:\n  - name: Lead\n    tier: canry\n")
    done = reconciler("plan", "--source", str(repo), "--exit-code", *common)
    assert done.returncode == 1, done.stderr
    assert "orgs/acme/org.yaml:4:11: tier" in done.stderr and done.stdout == ""


def test_could_not_plan_is_2(tree: WriteTree, common: list[str], tmp_path: Path) -> None:
    unfetchable = reconciler("plan", "--source", (tmp_path / "missing.git").as_uri(), "--exit-code", *common)
    assert unfetchable.returncode == 2, unfetchable.stderr
    no_engine = reconciler("plan", "--source", str(tree()), "--exit-code", *common,
                           env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert no_engine.returncode == 2, no_engine.stderr
    assert "docker engine unreachable" in no_engine.stderr
