"""`files_dir` content is hashed with bounded memory: sizes are checked before a file is opened."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from reconciler.render import files
from tests.render.conftest import WriteRepo, render_errors, render_ok

ORG = "name: Acme\nworkspaces:\n  - name: A\n    runtime: claude-code\n    files_dir: files\n"


def test_a_file_over_the_limit_is_refused_without_being_read(
    write_repo: WriteRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = write_repo({"orgs/acme/org.yaml": ORG, "orgs/acme/files/a.txt": "hello\n"})
    big = repo / "orgs/acme/files/big.bin"
    big.touch()
    os.truncate(big, 3 * 1024**3)  # sparse: instant, no disk used
    opened: list[str] = []
    real = files.hash_file

    def spy(path: Path, limit: int) -> tuple[str, int] | None:
        opened.append(path.name)
        return real(path, limit)

    monkeypatch.setattr(files, "hash_file", spy)
    (error,) = render_errors(repo)
    assert error.startswith("orgs/acme/org.yaml:5:16:") and f"{files.MAX_TOTAL_BYTES} bytes (at big.bin)" in error
    assert opened == ["a.txt"]  # refused on its size alone: never opened


def test_files_are_hashed_in_chunks_and_a_growing_file_stops_at_the_limit(tmp_path: Path) -> None:
    data = os.urandom(files.CHUNK * 2 + 123)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    assert files.hash_file(path, len(data)) == (hashlib.sha256(data).hexdigest(), len(data))
    assert files.hash_file(path, len(data) - 1) is None  # what stat said was smaller than what is read


def test_files_dir_within_the_limit_renders_with_hashes(write_repo: WriteRepo) -> None:
    repo = write_repo({"orgs/acme/org.yaml": ORG, "orgs/acme/files/a.txt": "a\n", "orgs/acme/files/SKILL.md": "s\n"})
    (ws,) = render_ok(repo).workspaces
    assert ws.files is not None
    assert {e.path: e.sha256 for e in ws.files.entries} == {
        "SKILL.md": hashlib.sha256(b"s\n").hexdigest(), "a.txt": hashlib.sha256(b"a\n").hexdigest()}
