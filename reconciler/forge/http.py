"""One HTTP call to the forge, done carefully: retries, bounded reads, errors that never carry a token.

`ForgeHttp` owns the httpx client and the retry policy so `gitea.py` reads as the API it speaks.
Retried: connection errors, timeouts, 429 (honouring `Retry-After`) and 5xx, with exponential
backoff and jitter; never other 4xx. Requests that are not safe to repeat (creating a comment)
are retried only when the server surely did not act on them (connect failure, 429).
Every foreign error becomes `ForgeError("<METHOD> <path>: ...")` raised outside the `except`
block, so no httpx exception (which holds the request and its headers) is chained to it.
"""

from __future__ import annotations

import email.utils
import json as json_module
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack
from urllib.parse import urlsplit

import httpx

from reconciler.backoff import backoff_delay
from reconciler.errors import ForgeError

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 5 * 1024 * 1024
_BACKOFF_BASE_S = 0.5
_BACKOFF_CAP_S = 30.0
_RETRY_AFTER_CAP_S = 120.0


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
    """How a forge client talks HTTP: per-call timeout, tries, injected sleep, a test transport, read cap."""

    timeout: float
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
        self.api_url = api_url.rstrip("/")
        self._token = token or ""
        self.max_attempts = max(1, max_attempts)
        self.sleep = sleep
        self.max_bytes = max_bytes
        headers = {"Accept": "application/json", "User-Agent": "reconciler"}
        if token:
            headers["Authorization"] = f"token {token}"
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout), transport=transport, follow_redirects=False
        )

    def close(self) -> None:
        self._client.close()

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
            with self._client.stream(method, target, params=params, json=json) as raw:
                body = self._read_bounded(raw, label)
                response = Response(raw.status_code, raw.headers, body, label)
        except httpx.TimeoutException as exc:
            failure = f"timeout ({type(exc).__name__})"
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
        too_large = f"Gitea {label}: response larger than {self.max_bytes} bytes"
        declared = raw.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise ForgeError(too_large, raw.status_code)
        chunks: list[bytes] = []
        size = 0
        for chunk in raw.iter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise ForgeError(too_large, raw.status_code)
            chunks.append(chunk)
        return b"".join(chunks)

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
