"""One HTTP call to the forge, done carefully: retries, bounded reads, a hard time limit, errors
that never carry a token.

`ForgeHttp` owns the httpx client and the retry policy so `gitea.py` reads as the API it speaks.
Retried: connection errors, timeouts, 429 (honouring `Retry-After`) and 5xx, with exponential
backoff and jitter; never other 4xx. Requests that are not safe to repeat (creating a comment)
are retried only when the server surely did not act on them (connect failure, 429).
Every foreign error becomes `ForgeError("<METHOD> <path>: ...")` raised outside the `except`
block, so no httpx exception (which holds the request and its headers) is chained to it.

httpx's timeouts bound each socket operation, so a server that sends a byte now and then (in the
headers or the body) would hold a call forever. Each attempt therefore runs under a `Deadline`
(`deadline`, 30 s by default): a client built by `deadline_client` bounds every connect, read and
write by the time left, so a blocked read ends at the deadline, and `read_capped` checks it
between chunks too (for transports without a socket). The registry client uses the same three.
"""

from __future__ import annotations

import copy
import email.utils
import json as json_module
import logging
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from time import monotonic
from typing import Any, TypedDict, Unpack
from urllib.parse import urlsplit

import httpcore
import httpx

from reconciler.backoff import backoff_delay
from reconciler.errors import ForgeError

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 5 * 1024 * 1024
_BACKOFF_BASE_S = 0.5
_BACKOFF_CAP_S = 30.0
_RETRY_AFTER_CAP_S = 120.0
FORGE_DEADLINE_S = 30.0


@dataclass(frozen=True)
class Response:
    status_code: int
    headers: httpx.Headers
    body: bytes
    label: str = ""

    def json(self) -> Any:
        try:
            return json_module.loads(self.body) if self.body else None
        except ValueError:
            raise ForgeError(f"Gitea {self.label}: response is not JSON", self.status_code) from None


class HttpOptions(TypedDict, total=False):
    """How a forge client talks HTTP: per-operation timeout, total time per attempt, tries, injected
    sleep, a test transport, read cap."""

    timeout: float
    deadline: float
    max_attempts: int
    sleep: Callable[[float], None]
    transport: httpx.BaseTransport | None
    max_bytes: int


class ForgeHttp:
    """A retrying, size-bounded JSON client for one forge base URL (e.g. `http://host/api/v1`)."""

    def __init__(self, api_url: str, token: str | None, **options: Unpack[HttpOptions]) -> None:
        timeout = options.get("timeout", 10)
        max_attempts = options.get("max_attempts", 4)
        sleep = options.get("sleep", time.sleep)
        transport = options.get("transport")
        max_bytes = options.get("max_bytes", MAX_RESPONSE_BYTES)
        self.deadline_s = options.get("deadline", FORGE_DEADLINE_S)
        self.api_url = api_url.rstrip("/")
        self._token = token or ""
        self.max_attempts = max(1, max_attempts)
        self.sleep = sleep
        self.max_bytes = max_bytes
        headers = {"Accept": "application/json", "User-Agent": "reconciler"}
        if token:
            headers["Authorization"] = f"token {token}"
        self._client = deadline_client(
            headers=headers, timeout=httpx.Timeout(timeout), transport=transport, follow_redirects=False
        )

    def close(self) -> None:
        self._client.close()

    def one_attempt(self) -> ForgeHttp:
        """The same client (connections shared) with no retries: each request is tried once."""
        twin = copy.copy(self)
        twin.max_attempts = 1
        return twin

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        ok: tuple[int, ...] = (200,),
        repeatable: bool = True,
    ) -> Response:
        """Call `path` under the API URL; return the response if its status is in `ok`, else raise."""
        target = f"{self.api_url}{path}"
        label = f"{method} {urlsplit(target).path}"
        for attempt in range(1, self.max_attempts + 1):
            failure, retry_after, response = self._attempt(method, target, params, json, label)
            if response is not None and response.status_code in ok:
                return response
            code = response.status_code if response is not None else None
            retryable = self._retryable(code, failure, repeatable)
            if not retryable or attempt == self.max_attempts:
                raise ForgeError(self._message(label, code, failure, response, attempt), code)
            delay = self._delay(attempt, retry_after)
            log.warning(
                "forge call retried",
                extra={"context": label, "error": f"HTTP {code}" if code else failure, "duration_s": delay},
            )
            self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(
        self, method: str, target: str, params: dict[str, Any] | None, json: Any, label: str
    ) -> tuple[str | None, float | None, Response | None]:
        """One try: (failure name for transport errors, Retry-After seconds, response)."""
        failure: str | None = None
        try:
            with Deadline(self.deadline_s) as deadline, self._client.stream(
                method, target, params=params, json=json
            ) as raw:
                body = self._read_bounded(raw, label)
                response = Response(raw.status_code, raw.headers, body, label)
        except httpx.TimeoutException as exc:
            failure = deadline.passed_message() if deadline.passed else f"timeout ({type(exc).__name__})"
        except httpx.ConnectError:
            failure = "connection refused or unreachable"
        except httpx.RequestError as exc:
            failure = f"transport error ({type(exc).__name__})"
        except httpx.InvalidURL:
            failure = "invalid URL"
        if failure is not None:
            return failure, None, None
        return None, _retry_after(response.headers.get("Retry-After")), response

    def _read_bounded(self, raw: httpx.Response, label: str) -> bytes:
        body = read_capped(raw, self.max_bytes)
        if body is None:
            raise ForgeError(f"Gitea {label}: response larger than {self.max_bytes} bytes", raw.status_code)
        return body

    @staticmethod
    def _retryable(code: int | None, failure: str | None, repeatable: bool) -> bool:
        if code is None:
            # A connect failure never reached the server; anything else might have.
            return repeatable or (failure or "").startswith("connection")
        if code == 429:
            return True
        return code >= 500 and repeatable

    @staticmethod
    def _delay(attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, _RETRY_AFTER_CAP_S)
        return backoff_delay(attempt, _BACKOFF_BASE_S, _BACKOFF_CAP_S, jitter=0.5)

    def _message(
        self, label: str, code: int | None, failure: str | None, response: Response | None, attempts: int
    ) -> str:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        if code is None:
            return self._scrub(f"Gitea {label} failed: {failure}{tries}")
        detail = ""
        if response is not None:
            try:
                payload = response.json()
                detail = str(payload.get("message", "")) if isinstance(payload, dict) else ""
            except ForgeError:
                detail = ""
        detail = f": {detail[:200]}" if detail else ""
        return self._scrub(f"Gitea {label} failed: HTTP {code}{detail}{tries}")

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# ---- a wall-clock limit for a whole exchange: connect, request, headers and body ----------------
_DEADLINE: ContextVar[float | None] = ContextVar("http_deadline", default=None)


class Deadline:
    """`with Deadline(30):` the HTTP exchange inside ends within 30 s, however slowly the server drips.

    What enforces it: the socket operations of a `deadline_client` (each bounded by the time left) and
    `read_capped` (between chunks); both raise an httpx timeout, after which `passed` is True.
    """

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.at = monotonic() + limit_s
        self._token: Token[float | None] | None = None

    def __enter__(self) -> Deadline:
        self.at = monotonic() + self.limit_s
        self._token = _DEADLINE.set(self.at)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _DEADLINE.reset(self._token)
            self._token = None

    @property
    def passed(self) -> bool:
        return monotonic() >= self.at

    def passed_message(self) -> str:
        return f"timed out after {self.limit_s:g} s (the server kept the connection open)"


def _time_left(timeout: float | None, expired: type[Exception]) -> float | None:
    """`timeout` cut to the time left before the current deadline; `expired` raised when none is left."""
    at = _DEADLINE.get()
    if at is None:
        return timeout
    left = at - monotonic()
    if left <= 0:
        raise expired("the deadline of this request passed")
    return left if timeout is None else min(timeout, left)


class _BoundedStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the deadline it runs under (if any)."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _BoundedStream(self._stream.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _BoundedBackend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _BoundedStream(self._backend.connect_tcp(host, port, left, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _BoundedStream(self._backend.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def deadline_client(**options: Any) -> httpx.Client:
    """An `httpx.Client` (same options) whose connections honour the `Deadline` a request runs under.

    httpx has no public way to hand its connection pool a network backend, so the pool of each
    httpx transport (the default one and any proxy mount) gets its backend wrapped here; a transport
    of another kind (a test's `MockTransport`) keeps only the checks between chunks (`read_capped`).
    """
    client = httpx.Client(**options)
    for transport in (client._transport, *client._mounts.values()):
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if pool is not None and isinstance(backend, httpcore.NetworkBackend):
            pool._network_backend = _BoundedBackend(backend)
        elif isinstance(transport, httpx.HTTPTransport):  # httpx changed inside: say so, and go on
            log.warning("HTTP deadline not enforced inside reads: unknown httpx transport layout")
    return client


def read_capped(raw: httpx.Response, max_bytes: int) -> bytes | None:
    """The body of a streamed response, or None when it is (or says it will be) over `max_bytes`;
    the deadline it runs under is checked between chunks (httpx.ReadTimeout when it passed)."""
    declared = raw.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return None
    body = bytearray()
    for chunk in raw.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            return None
        at = _DEADLINE.get()
        if at is not None and monotonic() >= at:
            raise httpx.ReadTimeout("the deadline of this request passed", request=raw.request)
    return bytes(body)
