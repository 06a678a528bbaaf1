"""One source of truth: the checked-in JSON Schemas are generated from the pydantic models (shipped in the
package as `reconciler/schemas/`, which `schemas/` links to), and the example repo (with its !include /
!external tags as editors see them) validates against them. The example's modelines use the URL form the
README documents: `<daemon URL>/schemas/<file>`, here the default listener."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from reconciler.render import schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "org-repo"
MODELINE_BASE = "http://127.0.0.1:8080/schemas/"  # `reconciler run`'s default --listen serves them there
CONFIG_FILES = sorted(p for p in EXAMPLE.rglob("*.yaml") if ".gitea" not in p.relative_to(EXAMPLE).parts)


class TagLoader(yaml.SafeLoader):
    """Loads !include as its path string and !external as its mapping, as yaml-language-server does."""


TagLoader.add_constructor("!include", lambda loader, node: loader.construct_scalar(node))
TagLoader.add_constructor("!external", lambda loader, node: loader.construct_mapping(node))


def test_checked_in_schemas_match_the_models() -> None:
    for name, text in schema.render_all().items():
        path = schema.SCHEMA_DIR / name
        assert path.is_file(), f"{path} missing: run python -m reconciler.render.schema"
        assert path.read_text() == text, f"{name} is stale: run python -m reconciler.render.schema"
    assert sorted(p.name for p in schema.SCHEMA_DIR.glob("*.json")) == sorted(schema.FILES)  # no stray schema


def test_top_level_schemas_is_the_package_directory_not_a_copy() -> None:
    assert (ROOT / "schemas").resolve() == schema.SCHEMA_DIR.resolve()


def _schema_for(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema="), f"{path} lacks the schema modeline"
    return first.split("$schema=", 1)[1]


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(EXAMPLE)))
def test_every_example_file_has_a_modeline_and_validates(path: Path) -> None:
    url = _schema_for(path)
    assert url.startswith(MODELINE_BASE), f"{path}: modeline should be {MODELINE_BASE}<file>"
    body = schema.packaged(url.removeprefix(MODELINE_BASE))  # what the daemon serves at that URL
    assert body is not None, url
    validator = Draft202012Validator(json.loads(body))
    data: Any = yaml.load(path.read_text(), Loader=TagLoader)  # noqa: S506 - SafeLoader subclass
    errors = [e.message for e in validator.iter_errors(data)]
    assert errors == []


def test_schema_and_model_reject_the_same_typos() -> None:
    validator = Draft202012Validator(schema.generate("org.schema.json"))
    for bad_workspace in ({"name": "x", "tier": "prod"}, {"name": "y", "colour": 1}, {"tier": "canary"}):
        assert list(validator.iter_errors({"name": "A", "workspaces": [bad_workspace]})), bad_workspace
    assert not list(validator.iter_errors({"name": "A", "workspaces": [{"name": "x", "tier": "canary"}]}))
    plugins = Draft202012Validator(schema.generate("plugins.schema.json"))
    assert list(plugins.iter_errors({"plugins": {"a": {"source": "http://x/y", "track": "latest"}}}))
    assert not list(plugins.iter_errors({"plugins": {"a": {"source": "http://x/y", "track": "tag:v1"}}}))
