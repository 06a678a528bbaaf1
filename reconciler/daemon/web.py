"""The daemon's HTTP face (Starlette): /healthz, /metrics, /runs, /runs/<id>, and /hooks/gitea.

`/healthz` is 200 while the reconcile loop thread is alive and not stuck, 503 otherwise: stuck is
one step of the worker (fetching a commit, planning, applying a tier, a health gate, posting
statuses, recovery: `steps.py`) lasting longer than `--stuck-after`, shown as
`"stuck": {"step": ..., "for_s": ...}`. It shows the current step in any case, and says when a run
last succeeded; `/schemas/<name>.schema.json` are the config files' JSON Schemas as shipped in the
package (open like `/healthz`, for editors; any other name is 404); `/metrics` is Prometheus text;
the run pages are plain HTML (`pages.py`). The
webhook receiver is `forge.webhooks.webhook_app` itself, its routes mounted here, wrapped only to
count deliveries by outcome (from the status code it answers).

Two apps: the open one (`/healthz`, `/hooks/gitea`: a health check and a signed webhook need no
other credential) and the pages (`/metrics`, `/runs`, `/runs/<id>`, the JSON API under `/api/v1`),
either on the same listener or on a listener of their own (`--listen-pages`). With a pages token,
every page request needs `Authorization: Bearer <token>` or Basic auth with the token as password
(`RequireToken`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.daemon import pages
from reconciler.daemon.journal import Journal
from reconciler.daemon.metrics import CONTENT_TYPE, Metrics
from reconciler.render import schema

HOOK_PATH = "/hooks/gitea"
OPEN_PATHS = frozenset({"/healthz", HOOK_PATH})
SCHEMAS_PREFIX = "/schemas/"  # open too: an editor fetching a schema has no token
REALM = 'realm="reconciler"'


class CountDeliveries:
    """ASGI wrapper: counts each response status of the webhook path in `metrics`."""

    def __init__(self, app: ASGIApp, metrics: Metrics, path: str = HOOK_PATH) -> None:
        self.app, self.metrics, self.path = app, metrics, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != self.path:
            await self.app(scope, receive, send)
            return

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.webhook(int(message["status"]))
            await send(message)

        await self.app(scope, receive, counting)


def is_schema(scope: Scope) -> bool:
    """`/schemas/<one segment>`: nothing but the schema route can match it."""
    path = str(scope.get("path", ""))
    return path.startswith(SCHEMAS_PREFIX) and "/" not in path[len(SCHEMAS_PREFIX):]


class RequireToken:
    """ASGI wrapper: a request outside `open_paths` needs the token, as `Authorization: Bearer <token>`
    or as the password of Basic auth (any user); compared in constant time. 401 otherwise."""

    def __init__(self, app: ASGIApp, token: str, open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app, self.open_paths = app, open_paths
        self._digest = hashlib.sha256(token.encode()).digest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.open_paths or is_schema(scope) or self.allowed(scope):
            await self.app(scope, receive, send)
            return
        response = PlainTextResponse("authentication required\n", status_code=401)
        response.raw_headers += [(b"www-authenticate", f"Bearer {REALM}".encode()),
                                 (b"www-authenticate", f'Basic {REALM}, charset="UTF-8"'.encode())]
        await response(scope, receive, send)

    def allowed(self, scope: Scope) -> bool:
        scheme, _, credential = Headers(scope=scope).get("authorization", "").strip().partition(" ")
        given: bytes | None = None
        if scheme.lower() == "bearer":
            given = credential.strip().encode()
        elif scheme.lower() == "basic":
            try:
                given = base64.b64decode(credential.strip(), validate=True).partition(b":")[2]
            except (binascii.Error, ValueError):
                given = None
        # hash both sides: the comparison takes the same time whatever the length given
        return hmac.compare_digest(hashlib.sha256(given or b"").digest(), self._digest) and given is not None


def build_apps(journal: Journal, metrics: Metrics, health: Callable[[], dict[str, Any]], hooks: Starlette | None,
               *, split: bool = False, token: str | None = None,
               api: ASGIApp | None = None) -> tuple[ASGIApp, ASGIApp | None]:
    """The app of the main listener and, with `split`, the app of the pages listener (else None).
    `api` (the JSON API, `api.py`) is served at `/api/v1` with the pages, behind their token."""

    async def healthz(request: Request) -> JSONResponse:
        state = health()
        healthy = state.get("loop_alive") and not state.get("stuck")
        return JSONResponse(state, status_code=200 if healthy else 503)

    async def metrics_text(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def runs(request: Request) -> HTMLResponse:
        return HTMLResponse(pages.runs_page(journal.runs(limit=200), health()))

    async def run(request: Request) -> HTMLResponse:
        run_id = int(request.path_params["run_id"])
        row = journal.run(run_id)
        if row is None:
            return HTMLResponse(pages.page("not found", f"<p>No run #{run_id}.</p>"), status_code=404)
        return HTMLResponse(pages.run_page(row, journal.actions(run_id)))

    async def schema_file(request: Request) -> Response:
        body = schema.packaged(request.path_params["name"])  # only the shipped names: nothing else is read
        if body is None:
            return PlainTextResponse("no such schema\n", status_code=404)
        return Response(body, media_type=schema.MEDIA_TYPE, headers={"cache-control": "max-age=300"})

    schema_route = Route(SCHEMAS_PREFIX + "{name}", schema_file)
    open_routes: list[BaseRoute] = [Route("/healthz", healthz), schema_route,
                                    *(hooks.routes if hooks is not None else [])]
    page_routes: list[BaseRoute] = [Route("/metrics", metrics_text), Route("/runs", runs),
                                    Route("/runs/{run_id:int}", run)]
    if api is not None:
        page_routes.append(Mount("/api/v1", app=api))

    def guarded(routes: list[BaseRoute]) -> ASGIApp:
        app = Starlette(routes=routes)
        return RequireToken(app, token) if token else app

    if split:
        return CountDeliveries(Starlette(routes=open_routes), metrics), guarded([schema_route, *page_routes])
    return CountDeliveries(guarded(open_routes + page_routes), metrics), None
