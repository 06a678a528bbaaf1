"""The JSON API as an ASGI app (`api_app`), mounted at `/api/v1` in the pages app so it has their token:
bodies are small JSON objects with known string fields (400 otherwise, 413 beyond MAX_BODY), each
action runs `Control` (`api.py`) off the event loop, and every error is `{"error", "status"}`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse
from starlette.routing import Route

from reconciler.daemon.api import ApiError, Control
from reconciler.errors import ReconcilerError

MAX_BODY = 64 * 1024
FIELDS = {"sync": {"ref"}, "suspend": {"org"}, "resume": {"org"}, "release": {"hold"}, "retry": set(),
          "promote": {"sha"}}


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


async def _body(request: HttpRequest, allowed: set[str]) -> dict[str, Any]:
    """The JSON object of the body (empty body: {}); 400 for anything else, 413 beyond MAX_BODY."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ApiError(413, f"the body is over {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        expected = ", ".join(sorted(allowed)) or "none"
        raise ApiError(400, f"unknown field(s): {', '.join(unknown)} (expected: {expected})")
    for key, value in doc.items():
        if value is not None and not isinstance(value, str):
            raise ApiError(400, f"{key} must be a string")
    return doc


def api_app(control: Control) -> Starlette:
    """The API as an app of its own, mounted at `/api/v1` in the pages app (so it has their token)."""

    async def status(request: HttpRequest) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(control.status))

    def action(name: str, call: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]) -> Route:
        async def endpoint(request: HttpRequest) -> JSONResponse:
            try:
                body = await _body(request, FIELDS[name])
                code, doc = await run_in_threadpool(call, body)
            except ApiError as exc:
                return error(exc.status, exc.message)
            except ReconcilerError as exc:
                return error(502, str(exc))
            return JSONResponse(doc, status_code=code)

        return Route(f"/{name}", endpoint, methods=["POST"])

    async def http_error(request: HttpRequest, exc: Exception) -> JSONResponse:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return error(code, f"{detail}: {request.method} {request.url.path}")

    routes = [
        Route("/status", status, methods=["GET"]),
        action("sync", lambda b: control.sync(b.get("ref"))),
        action("suspend", lambda b: control.suspend(b.get("org"))),
        action("resume", lambda b: control.resume(b.get("org"))),
        action("release", lambda b: control.release(_required(b, "hold"))),
        action("retry", lambda b: control.retry()),
        action("promote", lambda b: control.promote(_required(b, "sha"))),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


def _required(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not value:
        raise ApiError(400, f"{key} is required")
    return str(value)
