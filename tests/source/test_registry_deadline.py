"""Registry requests end at their total deadline even when a real server drips one byte at a time, in
the headers of the manifest answer or in the body of the token answer."""

from __future__ import annotations

import time

import pytest

from reconciler.errors import SourceError
from reconciler.source.registry import RegistryClient
from tests.support.drip import BODY_DRIP, HEADER_DRIP, DripServer

LIMIT_S = 1.5
MARGIN_S = 3.0  # "well before the drip would end": the drip never ends
SECRET = "hunter2-registry-password"
OPEN = "(the server kept the connection open)"


def resolve_in_time(client: RegistryClient, ref: str) -> SourceError:
    """The error `digest(ref)` raised, once it ended well before the drip would (it never does)."""
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        client.digest(ref)
    elapsed = time.monotonic() - started
    assert elapsed < LIMIT_S + MARGIN_S, elapsed
    assert caught.value.__context__ is None
    return caught.value


def test_manifest_headers_that_drip_end_at_the_deadline() -> None:
    with DripServer(lambda head: (HEADER_DRIP, True)) as server:
        error = resolve_in_time(RegistryClient(timeout=10, deadline=LIMIT_S), f"{server.host}/team/app:v1")
    assert str(error) == f"registry {server.host} resolving team/app:v1: timed out after 1.5 s {OPEN}"


def test_a_token_body_that_drips_ends_at_the_deadline() -> None:
    def answer(head: bytes) -> tuple[bytes, bool]:
        if head.startswith(b"GET /token"):
            return BODY_DRIP, True
        challenge = f'Bearer realm="http://{server.host}/token",service="reg",scope="repository:team/app:pull"'
        return (f"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n").encode(), False

    with DripServer(answer) as server:
        client = RegistryClient({server.host: ("me", SECRET)}, timeout=10, deadline=LIMIT_S)
        error = resolve_in_time(client, f"{server.host}/team/app:v1")  # the HEAD before took little of it
    assert str(error) == f"registry {server.host} getting a token from {server.host}: timed out after 1.5 s {OPEN}"
    assert SECRET not in str(error)
