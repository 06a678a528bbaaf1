"""`validate` (and `render`, `plan`) take the sources `apply` takes: a directory, a local git
repository, a git URL at `--ref`, with the operator's credentials, through the one checkout."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cli.conftest import ORG, reconciler, write_tree
from tests.support.git_cli import git
from tests.support.git_server import TOKEN, GitServer
from tests.support.git_work import Work

BROKEN = "name: Acme\nworkspaces:\n  - name: Lead\n    runtime: claude-code\n    tier: canry\n"


def seed(work: Work, org: str) -> str:
    """Commit a whole config tree with `org` as acme's template; returns the commit."""
    write_tree(work.path, org)
    return work.commit(message="config")


def test_validate_a_git_url_at_a_ref(tmp_path: Path, common: list[str]) -> None:
    bare = tmp_path / "config.git"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    work = Work(tmp_path / "work", bare)
    good = seed(work, ORG)
    broken = seed(work, BROKEN)  # main moves on to a broken config
    work.push()
    url = bare.as_uri()

    at_good = reconciler("validate", url, "--ref", good, *common)
    assert at_good.returncode == 0, at_good.stderr
    assert at_good.stdout == "valid: 1 workspaces (1 provisioned, 0 external) in 1 orgs\n"
    fetching, fetched = at_good.stderr.splitlines()  # not a terminal: one plain line per step
    assert fetching == f"fetching {url} ({good})"
    assert fetched.startswith(f"fetched {url}: {good} at {good[:12]} (") and fetched.endswith("s)")

    at_main = reconciler("validate", "--source", url, "--ref", "main", *common)
    assert at_main.returncode == 1, at_main.stderr
    assert f"fetched {url}: main at {broken[:12]}" in at_main.stderr
    assert "error: orgs/acme/org.yaml:5:11: tier" in at_main.stderr

    rendered = reconciler("render", url, "--ref", good, "--json", *common)
    assert rendered.returncode == 0, rendered.stderr
    assert [ws["id"] for ws in json.loads(rendered.stdout)["workspaces"]] == ["acme/lead"]
    assert rendered.stderr == ""  # --json: no progress either


def test_validate_a_local_repository_a_directory_and_what_is_neither(tmp_path: Path, common: list[str]) -> None:
    work = Work(tmp_path / "work", tmp_path / "nowhere.git")
    seed(work, ORG)
    work.write({"orgs/acme/org.yaml": BROKEN})  # an edit not committed yet
    on_disk = reconciler("validate", str(work.path), *common)  # the work tree as it is: check before committing
    assert on_disk.returncode == 1, on_disk.stderr
    assert "orgs/acme/org.yaml:5:11: tier" in on_disk.stderr and "fetch" not in on_disk.stderr
    committed = reconciler("validate", str(work.path), "--ref", "HEAD", *common)  # the commit, as apply sees it
    assert committed.returncode == 0, committed.stderr
    assert f"fetched {work.path}: HEAD at" in committed.stderr

    plain = write_tree(tmp_path / "plain", ORG)
    assert reconciler("validate", str(plain), *common).returncode == 0
    with_ref = reconciler("validate", str(plain), "--ref", "main", *common)
    assert with_ref.returncode == 2 and "needs a git source" in with_ref.stderr
    missing = reconciler("validate", str(tmp_path / "missing"), *common)
    assert missing.returncode == 2 and "neither a directory nor a git repository URL" in missing.stderr


def test_validate_a_private_repository_with_the_operators_credentials(
    git_server: GitServer, tmp_path: Path, common: list[str]
) -> None:
    bare = git_server.repo("private", "config")
    work = Work(tmp_path / "work", bare)
    seed(work, ORG)
    work.push()
    url = git_server.repo_url("private", "config")

    anonymous = reconciler("validate", url, "--ref", "main", *common)
    assert anonymous.returncode == 2, anonymous.stderr

    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text(yaml.safe_dump({"git": [{"host": git_server.host, "token_file": str(token)}]}))
    with_credentials = reconciler("validate", url, "--ref", "main", "--credentials", str(credentials), *common)
    assert with_credentials.returncode == 0, with_credentials.stderr
    assert with_credentials.stdout.startswith("valid: 1 workspaces")
    assert TOKEN not in with_credentials.stdout + with_credentials.stderr + anonymous.stderr
