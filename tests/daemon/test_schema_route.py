"""`/schemas/<name>.schema.json`: the JSON Schemas shipped in the package, served open (an editor has no
token) on every listener, with the schema media type; any other name is 404 and never a file read."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from reconciler.daemon.journal import Journal
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.web import build_apps
from reconciler.render import schema

with warnings.catch_warnings():  # Starlette 1.x would rather have httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "pages-token-123"


def clients(tmp_path: Path, **kw: Any) -> list[TestClient]:
    main, pages = build_apps(Journal(tmp_path / "journal.sqlite"), Metrics(), lambda: {"loop_alive": True}, None,
                             **kw)
    return [TestClient(app) for app in (main, pages) if app is not None]


@pytest.mark.parametrize("kw", [{}, {"token": TOKEN}, {"split": True, "token": TOKEN}], ids=["open", "token", "split"])
def test_every_schema_is_served_open_with_the_schema_media_type(tmp_path: Path, kw: dict[str, Any]) -> None:
    for client in clients(tmp_path, **kw):
        for name in schema.FILES:
            answer = client.get(f"/schemas/{name}")
            assert answer.status_code == 200, name
            assert answer.headers["content-type"].startswith("application/schema+json")
            assert answer.json() == schema.generate(name)  # what the models say, as shipped
            assert answer.json()["$id"].endswith(f"/schemas/{name}")


def test_the_packaged_schemas_are_the_checked_in_ones() -> None:
    for name in schema.FILES:
        body = schema.packaged(name)
        assert body is not None and json.loads(body) == schema.generate(name)


@pytest.mark.parametrize("path", [
    "/schemas/nope.schema.json", "/schemas/org.json", "/schemas/", "/schemas/__init__.py", "/schemas/..",
    "/schemas/../schema.py", "/schemas/%2e%2e%2frender%2fschema.py", "/schemas/..%2F..%2Fpyproject.toml",
    "/schemas/org.schema.json/x", "/schemas//etc/passwd",
])
def test_unknown_names_and_traversal_are_404(tmp_path: Path, path: str) -> None:
    (main,) = clients(tmp_path)
    answer = main.get(path)
    assert answer.status_code == 404, path
    assert "application/schema+json" not in answer.headers.get("content-type", "")


def test_only_one_segment_under_schemas_skips_the_pages_token(tmp_path: Path) -> None:
    (main,) = clients(tmp_path, token=TOKEN)
    assert main.get("/schemas/nope.json").status_code == 404  # open, and unknown
    assert main.get("/schemas/../runs").status_code in (401, 404)  # never a page without the token
    assert main.get("/runs").status_code == 401


def test_packaged_refuses_names_outside_the_list() -> None:
    for name in ("../render/schema.py", "/etc/passwd", "", "org.schema.json/..", "__init__.py"):
        assert schema.packaged(name) is None
