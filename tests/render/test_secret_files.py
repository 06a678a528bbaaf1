"""A secret file that is not text is a clear error naming the secret and its path, never its bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ReconcilerError
from reconciler.secrets import MAX_SECRET_BYTES, SecretStore

CONTENT = b"sk-\xff\xfe-SECRET-BYTES"


def store(tmp_path: Path, content: bytes) -> tuple[SecretStore, Path]:
    directory = tmp_path / "secrets"
    (directory / "acme").mkdir(parents=True)
    path = directory / "acme" / "API_KEY"
    path.write_bytes(content)
    return SecretStore(directory, b"k" * 32), path


@pytest.mark.parametrize(("content", "problem"), [
    (CONTENT, "is not UTF-8 text; store it as text"),
    (b"a\x00b", "contains a NUL byte, which no env value can hold"),
    (b"x" * (MAX_SECRET_BYTES + 1), f"is over the {MAX_SECRET_BYTES} byte limit"),
])
def test_undecodable_secret_names_secret_and_path_not_content(tmp_path: Path, content: bytes, problem: str) -> None:
    secrets, path = store(tmp_path, content)
    for call in (secrets.value, secrets.digest):
        with pytest.raises(ReconcilerError) as info:
            call("acme", "lead", "API_KEY")
        assert str(info.value) == f"secret API_KEY ({path}) {problem}"
        assert "SECRET-BYTES" not in str(info.value) and info.value.__cause__ is None
    with pytest.raises(ReconcilerError, match="secret API_KEY"):
        secrets.env_for("acme", "lead", ("API_KEY",))


def test_unreadable_secret_names_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets, path = store(tmp_path, b"value")

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)  # as root a chmod 0 file is still readable
    with pytest.raises(ReconcilerError) as info:
        secrets.value("acme", "lead", "API_KEY")
    assert str(info.value) == f"secret API_KEY ({path}) cannot be read: Permission denied"


@pytest.mark.parametrize(("content", "value"), [
    (b"", ""), (b"\n", ""), (b"s3cret\r\n", "s3cret"), ("päss\tword\n".encode(), "päss\tword"),
    (b"x" * MAX_SECRET_BYTES, "x" * MAX_SECRET_BYTES),
])
def test_text_secrets_are_read_as_one_value(tmp_path: Path, content: bytes, value: str) -> None:
    secrets, _ = store(tmp_path, content)
    assert secrets.value("acme", "lead", "API_KEY") == value
