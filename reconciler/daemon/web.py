"""The daemon's HTTP face (Starlette): /healthz, /metrics, /runs, /runs/<id>, and /hooks/gitea.

`/healthz` is 200 while the reconcile loop thread is alive (503 otherwise) and says when a run
last succeeded; `/metrics` is Prometheus text; the run pages are plain HTML (`pages.py`). The
webhook receiver is `forge.webhooks.webhook_app` itself, its routes mounted here, wrapped only to
count deliveries by outcome (from the status code it answers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.daemon import pages
from reconciler.daemon.journal import Journal
from reconciler.daemon.metrics import CONTENT_TYPE, Metrics


class CountDeliveries:
    """ASGI wrapper: counts each response status of the webhook path in `metrics`."""

    def __init__(self, app: ASGIApp, metrics: Metrics, path: str = "/hooks/gitea") -> None:
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


def build_app(journal: Journal, metrics: Metrics, health: Callable[[], dict[str, Any]],
              hooks: Starlette | None) -> ASGIApp:
    async def healthz(request: Request) -> JSONResponse:
        state = health()
        return JSONResponse(state, status_code=200 if state.get("loop_alive") else 503)

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

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics_text),
        Route("/runs", runs),
        Route("/runs/{run_id:int}", run),
        *(hooks.routes if hooks is not None else []),
    ]
    return CountDeliveries(Starlette(routes=routes), metrics)
