"""The image's HEALTHCHECK (`python3 -m reconciler.daemon.healthcheck`) asks /healthz where the daemon
listens, whatever port the operator chose; the image test runs it for real inside the container."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reconciler.daemon.healthcheck import DEFAULT, healthz_url, listen_address


@pytest.mark.parametrize(("argv", "env", "expected"), [
    (["reconciler", "run", "--listen", "0.0.0.0:9001"], {"RECONCILER_LISTEN": "0.0.0.0:8080"}, "0.0.0.0:9001"),
    (["reconciler", "run", "--listen=[::]:9002"], {}, "[::]:9002"),
    (["reconciler", "run"], {"RECONCILER_LISTEN": "10.0.0.5:9003"}, "10.0.0.5:9003"),
    (["reconciler", "run"], {}, DEFAULT),
    (["reconciler", "run", "--listen-pages", "0.0.0.0:9999"], {"RECONCILER_LISTEN": ":9004"}, ":9004"),
])
def test_the_address_is_the_daemons_flag_then_its_env(argv: list[str], env: dict[str, str], expected: str) -> None:
    assert listen_address(argv, env) == expected


@pytest.mark.parametrize(("listen", "url"), [
    ("0.0.0.0:8080", "http://127.0.0.1:8080/healthz"),
    (":8081", "http://127.0.0.1:8081/healthz"),
    ("[::]:8082", "http://[::1]:8082/healthz"),
    ("[::1]:8083", "http://[::1]:8083/healthz"),
    ("10.0.0.5:8084", "http://10.0.0.5:8084/healthz"),
])
def test_a_wildcard_host_is_asked_on_loopback(listen: str, url: str) -> None:
    assert healthz_url(listen) == url


class Healthz(BaseHTTPRequestHandler):
    code = 200

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self.send_response(self.code if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Healthz)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    Healthz.code = 200


def check(port: int) -> subprocess.CompletedProcess[str]:
    """The module as the image runs it, told the port through RECONCILER_LISTEN (PID 1 here is not a daemon)."""
    return subprocess.run([sys.executable, "-m", "reconciler.daemon.healthcheck"], capture_output=True, text=True,
                          env={"RECONCILER_LISTEN": f"0.0.0.0:{port}", "PATH": "/usr/bin:/bin"}, timeout=30)


def test_healthy_is_exit_0_and_a_503_or_nothing_listening_is_exit_1(server: ThreadingHTTPServer) -> None:
    port = server.server_address[1]
    assert check(port).returncode == 0
    Healthz.code = 503  # /healthz says a step is stuck
    stuck = check(port)
    assert stuck.returncode == 1 and "503" in stuck.stderr
    server.shutdown()
    server.server_close()
    gone = check(port)
    assert gone.returncode == 1 and f"127.0.0.1:{port}/healthz" in gone.stderr
