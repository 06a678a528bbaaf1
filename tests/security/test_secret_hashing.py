"""Losing the state dir recreates nothing: the same secrets give the same spec hashes anywhere."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from reconciler.errors import ConfigErrors
from reconciler.model.desired import DesiredState
from reconciler.render import render_repo
from reconciler.secrets import HASH_KEY_FILE, SecretStore
from tests.support.policy import policy_for

ORG = """name: Acme
defaults: {runtime: claude-code}
workspaces:
  - name: Agent
    secrets: [%s]
"""


def write_repo(root: Path, secret: str = "API_KEY") -> Path:
    (root / "orgs/acme").mkdir(parents=True)
    (root / "images.yaml").write_text("images:\n  claude-code: 127.0.0.1:5000/agent:v1\n")
    (root / "orgs/acme/org.yaml").write_text(ORG % secret)
    return root


def render(repo: Path, store: SecretStore) -> DesiredState:
    return render_repo(repo, secrets=store, policy=policy_for())


def test_a_fresh_state_dir_gives_the_same_spec_hashes(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "API_KEY").write_text("value-1\n")
    repo = write_repo(tmp_path / "repo")
    first = render(repo, SecretStore.open(secrets, tmp_path / "state-a"))
    second = render(repo, SecretStore.open(secrets, tmp_path / "state-b"))  # another host, or a wiped state dir
    assert first.workspaces[0].spec_hash == second.workspaces[0].spec_hash
    key = secrets / HASH_KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    assert not (tmp_path / "state-a" / "secret-hash.key").exists()

    (secrets / "API_KEY").write_text("value-2\n")  # rotation still rolls the workspace
    rotated = render(repo, SecretStore.open(secrets, tmp_path / "state-c"))
    assert rotated.workspaces[0].spec_hash != first.workspaces[0].spec_hash


def test_the_hash_is_keyed_not_a_plain_hash_of_the_value(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        d.mkdir()
        (d / "API_KEY").write_text("same value\n")
    a = SecretStore.open(one, tmp_path / "s").digest("acme", "agent", "API_KEY")
    b = SecretStore.open(two, tmp_path / "s").digest("acme", "agent", "API_KEY")
    assert a != b  # two installations, two keys: a digest reveals nothing guessable


def test_no_workspace_can_ask_for_the_key_file_as_a_secret(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    repo = write_repo(tmp_path / "repo", secret=f'"{HASH_KEY_FILE}"')
    with pytest.raises(ConfigErrors) as info:
        render(repo, SecretStore.open(secrets, tmp_path / "state"))
    assert "orgs/acme/org.yaml:5:" in str(info.value)
