"""Forge HTTP limits: a server that drips one byte at a time (in the headers or in the body) never holds
a call past its total deadline; a single-attempt twin never retries."""

from __future__ import annotations

import time

import httpx
import pytest

from reconciler.errors import ForgeError
from reconciler.forge.base import StatusState, StatusUpdate, TriesOnce
from reconciler.forge.gitea import GiteaClient
from reconciler.forge.http import ForgeHttp
from tests.support.drip import BODY_DRIP, HEADER_DRIP, DripServer

SHA = "c" * 40
TOKEN = "tok-3c9f1e0d5a7b"
LIMIT_S = 1.5
MARGIN_S = 3.0  # "well before the drip would end": the drip never ends


def drip(prefix: bytes) -> DripServer:
    return DripServer(lambda head: (prefix, True))


@pytest.mark.parametrize("prefix", [HEADER_DRIP, BODY_DRIP], ids=["headers", "body"])
def test_a_dripping_server_ends_the_call_at_the_deadline(prefix: bytes) -> None:
    with drip(prefix) as server:
        http = ForgeHttp(f"http://{server.host}/api/v1", TOKEN, timeout=10, deadline=LIMIT_S, max_attempts=1)
        started = time.monotonic()
        with pytest.raises(ForgeError) as caught:
            http.request("POST", f"/repos/o/r/statuses/{SHA}", json={"state": "success"}, ok=(201,))
        elapsed = time.monotonic() - started
        http.close()

    assert str(caught.value) == (f"Gitea POST /api/v1/repos/o/r/statuses/{SHA} failed: timed out after 1.5 s "
                                 "(the server kept the connection open)")
    assert caught.value.status_code is None and caught.value.__context__ is None
    assert TOKEN not in str(caught.value)
    assert elapsed < LIMIT_S + MARGIN_S, elapsed


def test_the_deadline_is_per_attempt_and_retried_like_a_timeout() -> None:
    sleeps: list[float] = []
    with drip(HEADER_DRIP) as server:
        with GiteaClient(f"http://{server.host}", "o/r", TOKEN, timeout=10, deadline=1, max_attempts=2,
                         sleep=sleeps.append) as forge:
            started = time.monotonic()
            with pytest.raises(ForgeError) as caught:
                forge.post_status(SHA, StatusUpdate(context="reconciler/canary", state=StatusState.SUCCESS))
            elapsed = time.monotonic() - started
        requests = len(server.requests)

    assert "timed out after 1 s (the server kept the connection open) after 2 attempts" in str(caught.value)
    assert requests == 2 and len(sleeps) == 1  # retried once, after a backoff
    assert elapsed < 2 * 1 + MARGIN_S, elapsed


def test_a_quick_answer_is_unaffected_by_the_deadline() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]"
    with DripServer(lambda head: (answer, False)) as server:
        http = ForgeHttp(f"http://{server.host}/api/v1", TOKEN, timeout=10, deadline=LIMIT_S, max_attempts=1)
        for _ in range(3):
            assert http.request("GET", "/repos/o/r/pulls").json() == []
        http.close()


def test_one_attempt_is_a_twin_that_never_retries() -> None:
    calls: list[str] = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(503)

    sleeps: list[float] = []
    with GiteaClient("http://gitea.test", "o/r", TOKEN, transport=httpx.MockTransport(down), max_attempts=4,
                     sleep=sleeps.append) as forge:
        assert isinstance(forge, TriesOnce)
        once = forge.one_attempt()
        with pytest.raises(ForgeError) as caught:
            once.branch_head("main")
        assert caught.value.status_code == 503 and len(calls) == 1 and sleeps == []

        with pytest.raises(ForgeError):
            forge.branch_head("main")  # the original still retries
        assert len(calls) == 5 and len(sleeps) == 3
