"""The HTTP face: pages on the main listener or on their own, a token on the pages only, bounded uvicorn."""

from __future__ import annotations

import warnings
from base64 import b64encode
from pathlib import Path
from typing import Any

import pytest

from reconciler.daemon.journal import Journal
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.service import HTTP_MAX_CONNECTIONS, http_server
from reconciler.daemon.web import build_apps
from reconciler.forge.webhooks import webhook_app
from reconciler.model.enums import RunKind, Trigger

with warnings.catch_warnings():  # Starlette 1.x would rather have httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "pages-token-123"
PAGES = ("/runs", "/runs/1", "/metrics")


def health() -> dict[str, Any]:
    return {"loop_alive": True, "branch": "main"}


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    journal = Journal(tmp_path / "journal.sqlite")
    journal.start_run(RunKind.APPLY, "a" * 40, Trigger.PUSH)
    return journal


def apps(journal: Journal, **kw: Any) -> tuple[TestClient, TestClient | None]:
    hooks = webhook_app(b"secret", "main", lambda trigger: None)
    main, pages = build_apps(journal, Metrics(), health, hooks, **kw)
    return TestClient(main), TestClient(pages) if pages is not None else None


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + b64encode(f"{user}:{password}".encode()).decode()}


def test_by_default_one_listener_serves_everything_openly(journal: Journal) -> None:
    main, pages = apps(journal)
    assert pages is None
    assert [main.get(p).status_code for p in ("/healthz", *PAGES)] == [200, 200, 200, 200]
    assert main.post("/hooks/gitea", content=b"{}").status_code == 401  # the hook's own signature check


def test_a_pages_token_guards_the_pages_but_not_health_or_the_hook(journal: Journal) -> None:
    main, _ = apps(journal, token=TOKEN)
    for path in PAGES:
        answer = main.get(path)
        assert answer.status_code == 401, path
        assert {v.split()[0] for v in answer.headers.get_list("www-authenticate")} == {"Bearer", "Basic"}
        assert main.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert main.get(path, headers=basic("anyone", TOKEN)).status_code == 200
    for wrong in ({"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {TOKEN}x"}, basic(TOKEN, "nope"),
                  {"Authorization": "Basic !!!"}, {"Authorization": TOKEN}, {"Authorization": "Bearer "}):
        assert main.get("/runs", headers=wrong).status_code == 401, wrong
    assert main.get("/healthz").status_code == 200
    assert main.post("/hooks/gitea", content=b"{}").status_code == 401  # bad signature, not the pages' 401
    assert "www-authenticate" not in main.post("/hooks/gitea", content=b"{}").headers


def test_split_listeners_serve_pages_apart_from_health_and_the_hook(journal: Journal) -> None:
    main, pages = apps(journal, split=True, token=TOKEN)
    assert pages is not None
    assert [main.get(p).status_code for p in PAGES] == [404, 404, 404]
    assert main.get("/healthz").status_code == 200
    assert [pages.get(p).status_code for p in PAGES] == [401, 401, 401]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert [pages.get(p, headers=auth).status_code for p in PAGES] == [200, 200, 200]
    assert pages.get("/hooks/gitea", headers=auth).status_code == 404
    _, open_pages = apps(journal, split=True)
    assert open_pages is not None and open_pages.get("/runs").status_code == 200


def test_each_listener_has_a_connection_limit(journal: Journal) -> None:
    main, _ = build_apps(journal, Metrics(), health, None)
    assert http_server(main).config.limit_concurrency == HTTP_MAX_CONNECTIONS
