"""JSON Schemas (draft 2020-12) for every config file, generated from the pydantic models.

The models are the one source of truth; `reconciler/schemas/*.schema.json` are this module's output,
checked in for editors (yaml-language-server), shipped in the package (`packaged`, served by the
daemon at `/schemas/<name>`) and checked by a test to never drift. `schemas/` at the top of the
repository is a link to that directory, not a copy:

    python -m reconciler.render.schema            # rewrite reconciler/schemas/
    python -m reconciler.render.schema --check    # exit 1 when they are stale

Where a workspace (or a list of them) may stand, the schema also accepts what the `!include`
(a path string) and `!external` (a {repo, ref, path, url?} mapping) tags carry, as an editor
with `yaml.customTags` sees them.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from reconciler.model.config import ImagesFile, OrgFile, PluginsFile, ReconcilerFile, Workspace
from reconciler.model.credentials import CredentialsFile
from reconciler.model.policy import Policy

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"  # package data: reconciler/schemas
MEDIA_TYPE = "application/schema+json"
FILES: dict[str, tuple[type[BaseModel], str]] = {
    "reconciler.schema.json": (ReconcilerFile, "reconciler.yaml: repo-wide settings"),
    "plugins.schema.json": (PluginsFile, "plugins.yaml: plugin pins"),
    "images.schema.json": (ImagesFile, "images.yaml: runtime images"),
    "org.schema.json": (OrgFile, "orgs/<org>/org.yaml: one org template"),
    "workspace.schema.json": (Workspace, "a file included with !include: one workspace or a list of them"),
    "policy.schema.json": (Policy, "the operator's policy file (--policy): what a commit may ask for"),
    "credentials.schema.json": (CredentialsFile, "the operator's credentials file (--credentials)"),
}
_INCLUDE = {"type": "string", "description": "!include path.yaml (relative to this file, inside the repo)"}
_EXTERNAL = {
    "type": "object",
    "description": "!external {repo, ref, path, url?}: a subtree from another repository",
    "properties": {k: {"type": "string"} for k in ("repo", "ref", "path", "url")},
    "required": ["repo", "ref", "path"],
    "additionalProperties": False,
}
_WS_REF = {"$ref": "#/$defs/Workspace"}
_WS_OR_TAG = {"anyOf": [_WS_REF, {"$ref": "#/$defs/Include"}, {"$ref": "#/$defs/External"}]}
_WS_LIST = {
    "anyOf": [
        {"type": "array", "items": _WS_OR_TAG},
        {"$ref": "#/$defs/Include"},
        {"$ref": "#/$defs/External"},
        {"type": "null"},
    ]
}


def _patch_workspace_lists(schema: dict[str, Any]) -> None:
    """Let `workspaces:` and `children:` hold !include / !external as well as workspaces."""
    defs = schema.setdefault("$defs", {})
    defs["Include"], defs["External"] = _INCLUDE, _EXTERNAL
    targets = [defs.get("Workspace", {}).get("properties", {})]
    if schema.get("title") == "OrgFile":
        targets.append(schema["properties"])
    for props in targets:
        for name in ("workspaces", "children"):
            if name in props:
                description = props[name].get("description")
                props[name] = dict(_WS_LIST, **({"description": description} if description else {}))


def generate(filename: str) -> dict[str, Any]:
    model, title = FILES[filename]
    schema = model.model_json_schema()
    if model is Workspace:  # self-recursive: pydantic puts the body in $defs and a $ref at the top
        schema = {"$defs": schema["$defs"]}
        _patch_workspace_lists(schema)
        schema["anyOf"] = [_WS_REF, {"type": "array", "items": _WS_OR_TAG}]
    else:
        _patch_workspace_lists(schema)
    return {
        "$schema": DRAFT,
        "$id": f"https://reconciler.dev/schemas/{filename}",
        "title": title,
        **{k: v for k, v in schema.items() if k != "title"},
    }


def packaged(name: str) -> bytes | None:
    """The schema file `name` (e.g. `org.schema.json`) as installed with the package; None for any
    name that is not one of `FILES` (so never a path outside the schemas)."""
    if name not in FILES:
        return None
    return resources.files("reconciler").joinpath("schemas", name).read_bytes()


def render_all() -> dict[str, str]:
    return {name: json.dumps(generate(name), indent=2, sort_keys=True) + "\n" for name in FILES}


def main(argv: list[str]) -> int:
    stale = []
    for name, text in render_all().items():
        path = SCHEMA_DIR / name
        if "--check" in argv:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"schemas out of date: {', '.join(stale)}; run python -m reconciler.render.schema", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
