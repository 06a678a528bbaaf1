"""Validate located YAML data against a pydantic model, mapping each error back to file:line:col."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from reconciler.errors import ConfigError, Location
from reconciler.render.loader import ExternalRef, IncludeRef, LocDict, LocList

M = TypeVar("M", bound=BaseModel)


def locate(data: Any, path: tuple[str | int, ...], fallback: Location) -> Location:
    """The most precise location known for `path` inside located data."""
    best = getattr(data, "loc", fallback)
    node = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, LocDict) and isinstance(part, str) and part in node:
            best = node.key_locs[part] if last else node.value_locs[part]
            node = node[part]
        elif isinstance(node, LocList) and isinstance(part, int) and 0 <= part < len(node):
            best = node.item_locs[part]
            node = node[part]
        else:
            break
        best = getattr(node, "loc", best) if not last else best
    return best


def written_as(data: Any, path: tuple[str | int, ...]) -> str | None:
    """How the scalar at `path` was written in the file (`0755` for what YAML read as 493), if known."""
    node = data
    for part in path[:-1]:
        found = (isinstance(node, dict) and isinstance(part, str) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))
        if not found:
            return None
        node = node[part]
    return getattr(node, "written", {}).get(path[-1]) if path else None


def _message(err: dict[str, Any], written: str | None = None) -> str:
    path = err["loc"]
    loc = ".".join(str(p) for p in path if not str(p).startswith(("function-", "union[")))
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown key {err['loc'][-1]!r}; check the spelling (allowed keys are in the schema)"
    if kind == "missing":
        return f"{loc or 'value'} is required"
    if len(path) >= 2 and path[-2] == "env" and isinstance(path[-1], str):
        return _env_message(path[-1], err, written)
    msg = _plain(err)
    if kind == "string_type" and isinstance(err.get("input"), bool):
        msg = f"expected text, got {str(err['input']).lower()} (YAML reads yes/no/on/off as booleans: quote it)"
    if kind == "string_pattern_mismatch" and loc.endswith("track"):
        msg += " (use one of none, tag:<name>, branch:<name>, sha:<40 hex>)"
    elif kind == "enum":
        msg = f"{msg}, got {err.get('input')!r}"
    return f"{loc}: {msg}" if loc else msg


def _plain(err: dict[str, Any]) -> str:
    """pydantic's message, without the `Value error, ` it puts before a validator's own words."""
    error = err.get("ctx", {}).get("error") if err["type"] == "value_error" else None
    return str(error) if error is not None else str(err["msg"])


def _env_message(name: str, err: dict[str, Any], written: str | None) -> str:
    """One message per bad env value: env values are strings, and YAML 1.1 turns many plain words into
    something else (`off` -> false, `0755` -> 493, `1.0e+3` -> 1000.0, `1:30` -> 90)."""
    value, kind = err.get("input"), err["type"]
    if kind == "string_type":
        if isinstance(value, bool | int | float):
            text = written or (str(value).lower() if isinstance(value, bool) else str(value))
            what = "a boolean (so are off/on/yes/no/true/false)" if isinstance(value, bool) else "a number"
            return f'env {name} must be a string: quote it ({name}: "{text}"); YAML reads {text} unquoted as {what}'
        if value is None:
            if written:
                return f'env {name} must be a string: quote it ({name}: "{written}"); YAML reads {written} as null'
            return f'env {name} must be a string: write {name}: "" for an empty value (YAML reads nothing as null)'
        what = "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else "text"
        return f"env {name} must be a string, not {what}"
    if kind == "string_too_long":
        return (f"env {name} is {len(str(value))} characters, over the {err.get('ctx', {}).get('max_length')} "
                "limit; put long text in files_dir")
    return f"env {name} {_plain(err)}"


def _has_refs(data: Any) -> IncludeRef | ExternalRef | None:
    if isinstance(data, IncludeRef | ExternalRef):
        return data
    if isinstance(data, dict):
        return next((r for v in data.values() if (r := _has_refs(v))), None)
    if isinstance(data, list):
        return next((r for v in data if (r := _has_refs(v))), None)
    return None


def validate(model: type[M], data: Any, fallback: Location) -> tuple[M | None, list[ConfigError]]:
    """Validate; on failure return every error, deduplicated, with its location."""
    ref = _has_refs(data)
    if ref is not None:
        tag = "!include" if isinstance(ref, IncludeRef) else "!external"
        return None, [ConfigError(f"{tag} may only stand where a workspace or a list of workspaces goes", ref.loc)]
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        seen: dict[tuple[Location, str], ConfigError] = {}
        for err in exc.errors(include_url=False):
            path = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "union["))))
            # unions (plugin entry str | mapping) report each branch; keep the mapping branch only
            if err["type"] in ("string_type",) and any(str(p).startswith("union[") for p in err["loc"]):
                continue
            loc = locate(data, path, fallback)
            message = _message({**err, "loc": path}, written_as(data, path))
            seen.setdefault((loc, message), ConfigError(message, loc))
        return None, list(seen.values())
