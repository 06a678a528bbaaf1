"""An `!external` remote that does not answer is `SourceUnreachable` (the pass is an `error`, retried);
one that answers "no" (a 4xx, a credential problem) stays a `SourceError`, which the renderer
reports at the `!external` line as a config error of that org."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import SourceError, SourceUnreachable
from reconciler.source.external import GitExternalFetcher, over_network


class Answers(http.server.BaseHTTPRequestHandler):
    """Answers every request with the status named by the first path segment (`/404/...`)."""

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self.send_response(int(self.path.split("/")[1]))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(tmp_path: Path, port: int, owner: str) -> None:
    fetcher = GitExternalFetcher(tmp_path / "state", [f"127.0.0.1:{port}/"], timeout_s=2)
    fetcher.fetch(f"127.0.0.1:{port}/{owner}/team", "main", f"http://127.0.0.1:{port}/{owner}/team.git")


def test_nobody_listening_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(SourceUnreachable, match="Connection refused"):
        fetch(tmp_path, free_port(), "acme")


@pytest.mark.parametrize("status", ["500", "502", "503"])
def test_a_server_error_is_unreachable(tmp_path: Path, answering: int, status: str) -> None:
    with pytest.raises(SourceUnreachable, match=f"status code: {status}"):
        fetch(tmp_path, answering, status)


@pytest.mark.parametrize("status", ["404", "403"])
def test_an_answer_of_no_is_not_unreachable(tmp_path: Path, answering: int, status: str) -> None:
    with pytest.raises(SourceError, match=f"status code: {status}") as info:
        fetch(tmp_path, answering, status)
    assert not isinstance(info.value, SourceUnreachable)


@pytest.mark.parametrize("message,unreachable", [
    ("listing refs of X failed: could not read from socket: timed out", True),
    ("transfer from X exceeded its deadline", True),
    ("listing refs of X failed: failed to resolve address for x.invalid: Name or service not known", True),
    ("X needs credentials; credentials are not used for pull requests from forks", False),
    ("X requires authentication and no credential is configured for x (a credential is only offered ...)", False),
    ("X rejected the configured credential (authentication failed)", False),
    ("fetch from X exceeded 512 MiB; refused", False),
])
def test_what_counts_as_the_remote_answering(message: str, unreachable: bool) -> None:
    def call() -> None:
        raise SourceError(message)

    with pytest.raises(SourceError) as info:
        over_network(call)
    assert isinstance(info.value, SourceUnreachable) is unreachable
    assert str(info.value) == message
