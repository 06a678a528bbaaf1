"""Validate located YAML data against a pydantic model, mapping each error back to file:line:col.

One message per bad value, in words a config author can act on: the location is the value's own
(the key's for an unknown key or a bad mapping key, the mapping's for a missing key); a union's
branches collapse into one message ("must be a string or a mapping"), or into the errors of the one
branch the value's type chose; patterns are named in words ("a size like 512m or 2g"); an unknown
key or a bad choice gets "did you mean `tier`?"; never pydantic's `Value error,` prefix.

`validate_partial` keeps what is valid of a file whose other parts are not (a plugins.yaml with one
bad entry still declares the others) and says which parts failed, so an error that only follows
from one of them (a plugin "not declared") can be marked as following, not shown as a cause.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from reconciler.errors import ConfigError, Location
from reconciler.model.config import PATTERN_WORDS, memory_suggestion
from reconciler.render.loader import ExternalRef, IncludeRef, LocDict, LocList

M = TypeVar("M", bound=BaseModel)
Path_ = tuple[str | int, ...]
Broken = dict[Path_, Location]  # a file's parts that failed to validate -> where (`()`: the whole file)

# pydantic's wrappers around a type: they name no branch, they are skipped in a location
_TRANSPARENT = ("function-", "lax-or-strict[", "json-or-python[", "nullable[", "default[")
# errors that mean "the value is of another type" (a union branch that does not apply)
_TYPE_WORDS = {
    "string_type": "string", "int_type": "number", "int_parsing": "number", "int_from_float": "number",
    "float_type": "number", "float_parsing": "number", "bool_type": "boolean", "bool_parsing": "boolean",
    "model_type": "mapping", "model_attributes_type": "mapping", "dict_type": "mapping", "list_type": "list",
    "none_required": "null",
}


def locate(data: Any, path: Path_, fallback: Location, *, at_key: bool = False) -> Location:
    """The most precise location known for `path` inside located data: the value's own position
    (`at_key`: the key's, for an unknown key); the nearest enclosing one when the path goes missing."""
    best = getattr(data, "loc", fallback)
    node = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, LocDict) and isinstance(part, str) and part in node:
            best = node.key_locs[part] if last and at_key else node.value_locs[part]
            node = node[part]
        elif isinstance(node, LocList) and isinstance(part, int) and 0 <= part < len(node):
            best = node.item_locs[part]
            node = node[part]
        else:
            break
    return best


def written_as(data: Any, path: Path_) -> str | None:
    """How the scalar at `path` was written in the file (`0755` for what YAML read as 493), if known."""
    node = data
    for part in path[:-1]:
        found = (isinstance(node, dict) and isinstance(part, str) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))
        if not found:
            return None
        node = node[part]
    return getattr(node, "written", {}).get(path[-1]) if path else None


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    """`; did you mean `tier`?` when one of `choices` is close to `word`, else nothing."""
    options = list(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6) or [
        c for c in options if min(len(c), len(word)) >= 3 and (word.startswith(c) or c.startswith(word))][:1]
    return f"; did you mean `{close[0]}`?" if close else ""


# ---- where an error is: its path in the data, apart from pydantic's branch labels ------------------
class _Where(typing.NamedTuple):
    path: Path_  # the value's path in the data (union labels and wrappers left out)
    raw: Path_  # pydantic's location, labels included (to find the model an unknown key was in)
    union: tuple[Path_, str] | None  # (the path at the union, the branch label) for an error inside a union
    is_key: bool  # the error is about a mapping key, not its value


def _where(loc: Path_, data: Any, kind: str) -> _Where:
    path: list[str | int] = []
    union: tuple[Path_, str] | None = None
    node, is_key = data, False
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if part == "[key]":
            is_key = True
        elif isinstance(node, dict) and isinstance(part, str) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(part, str) and part.startswith(_TRANSPARENT):
            continue
        elif isinstance(node, list) and isinstance(part, int):
            path.append(part)
            node = node[part] if 0 <= part < len(node) else None
        elif last and kind in ("missing", "extra_forbidden"):
            path.append(part)
        elif union is None:  # not in the data: the label of a union branch
            union = (tuple(path), str(part))
    return _Where(tuple(path), tuple(loc), union, is_key)


def _model_at(model: type[BaseModel], raw: Path_) -> type[BaseModel] | None:
    """The model that holds the key at the end of pydantic's location `raw` (labels included)."""
    tp: Any = model
    parts = list(raw[:-1])
    while True:
        tp = _unwrap(tp)
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            members = [a for a in args if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
            label = parts.pop(0) if parts else None
            tp = next((m for m in members if getattr(_unwrap(m), "__name__", None) == label), members[-1])
            continue
        if not parts:
            return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None
        part = parts.pop(0)
        if isinstance(part, str) and part.startswith(_TRANSPARENT):
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif origin in (list, tuple):
            tp = args[0]
        elif origin is dict:
            tp = args[1]
        else:
            return None


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


# ---- the words -------------------------------------------------------------------------------------
def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


def _got(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


def _choices(expected: str) -> list[str]:
    """`'canary' or 'production'` -> ['canary', 'production']."""
    return [c.strip().strip("'\"") for c in expected.replace(" or ", ", ").split(",") if c.strip()]


def _one_of(choices: list[str]) -> str:
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


def _message(model: type[BaseModel], err: dict[str, Any], where: _Where, written: str | None) -> str:
    path, kind, value, ctx = where.path, err["type"], err.get("input"), err.get("ctx") or {}
    name = _dotted(path)
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        holder = _model_at(model, where.raw)
        allowed = sorted(holder.model_fields) if holder else []
        hint = did_you_mean(key, allowed) or (f"; allowed here: {', '.join(allowed)}" if allowed else "")
        return f"unknown key {key!r}{hint}"
    if kind == "missing":
        return f"{name or 'value'} is required"
    if where.is_key:
        what = f"{_dotted(path[:-1])} key {str(path[-1])!r}" if len(path) > 1 else f"key {value!r}"
        return f"{what} {_must(kind, value, ctx, err).split(', got ')[0]}"
    if len(path) >= 2 and path[-2] == "env" and isinstance(path[-1], str):
        return _env_message(path[-1], err, written)
    if kind == "value_error":  # a validator's own words: they name the value already
        text = str(ctx.get("error", err["msg"]))
        return text if not path or text.startswith(str(path[-1])) else f"{name}: {text}"
    if kind == "string_type" and isinstance(value, bool):
        return (f"{name} must be text, got {str(value).lower()} (YAML reads yes/no/on/off as booleans: "
                f"quote it)")
    return f"{name} {_must(kind, value, ctx, err)}" if name else _must(kind, value, ctx, err)


def _must(kind: str, value: Any, ctx: dict[str, Any], err: dict[str, Any]) -> str:
    """What the value must be, in words, and what it was."""
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        words = PATTERN_WORDS.get(pattern, f"text matching {pattern}")
        hint = ""
        if isinstance(value, str) and (size := memory_suggestion(value)):
            hint = f"; did you mean `{size}`?"
        return f"must be {words}, got {value!r}{hint}"
    if kind in ("enum", "literal_error"):
        choices = _choices(str(ctx.get("expected", "")))
        hint = did_you_mean(str(value), choices) if isinstance(value, str) else ""
        return f"must be {_one_of(choices)}, got {_got(value)}{hint}"
    if kind in _TYPE_WORDS:
        word = _TYPE_WORDS[kind]
        article = "an" if word[0] in "aeiou" else "a"
        if word == "number" and kind.startswith("int"):
            return f"must be a whole number, got {_got(value)}"
        if word == "boolean":
            return f"must be true or false, got {_got(value)}"
        return f"must be {article} {word}, got {_got(value)}"
    bounds = {"greater_than": ("greater than", "gt"), "greater_than_equal": ("at least", "ge"),
              "less_than": ("less than", "lt"), "less_than_equal": ("at most", "le")}
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {_number(ctx.get(key))}, got {_got(value)}"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else (
            f"must be at least {ctx.get('min_length')} characters")
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters, got {len(str(value))}"
    if kind in ("too_short", "too_long"):
        return str(err["msg"]).replace("List should have", "must have").replace("Value should have", "must have")
    msg = str(err["msg"])
    return "must be " + msg[len("Input should be "):] if msg.startswith("Input should be ") else msg


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


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
    if kind == "value_error":
        return f"env {name} {err.get('ctx', {}).get('error', err['msg'])}"
    return f"env {name} {_must(kind, value, err.get('ctx') or {}, err)}"


# ---- unions: one message per value -----------------------------------------------------------------
def _collapse(found: list[tuple[dict[str, Any], _Where]]) -> list[tuple[dict[str, Any], _Where]]:
    """Keep one account of each value inside a union: the errors of the branch its type chose, or
    one "must be a string or a mapping" when no branch takes its type."""
    plain = [(e, w) for e, w in found if w.union is None]
    unions: dict[Path_, dict[str, list[tuple[dict[str, Any], _Where]]]] = {}
    for err, where in found:
        if where.union is not None:
            at, label = where.union
            unions.setdefault(at, {}).setdefault(label, []).append((err, where))
    for at, branches in unions.items():
        def wrong_type(errs: list[tuple[dict[str, Any], _Where]], at: Path_ = at) -> bool:
            return all(w.path == at and e["type"] in _TYPE_WORDS for e, w in errs)

        chosen = [errs for errs in branches.values() if not wrong_type(errs)]
        if chosen:
            plain.extend(item for errs in chosen for item in errs)
            continue
        words = list(dict.fromkeys(_TYPE_WORDS[e["type"]] for errs in branches.values() for e, _ in errs))
        err, _ = next(iter(branches.values()))[0]
        article = "an" if words[0][0] in "aeiou" else "a"
        msg = f"must be {article} {_one_of(words)}, got {_got(err.get('input'))}"
        plain.append(({**err, "type": "union", "msg": msg, "ctx": {}}, _Where(at, at, None, False)))
    return plain


def _has_refs(data: Any) -> IncludeRef | ExternalRef | None:
    if isinstance(data, IncludeRef | ExternalRef):
        return data
    if isinstance(data, dict):
        return next((r for v in data.values() if (r := _has_refs(v))), None)
    if isinstance(data, list):
        return next((r for v in data if (r := _has_refs(v))), None)
    return None


def validate(model: type[M], data: Any, fallback: Location) -> tuple[M | None, list[ConfigError]]:
    """Validate; on failure return one error per bad value, each with its location and `path`."""
    ref = _has_refs(data)
    if ref is not None:
        tag = "!include" if isinstance(ref, IncludeRef) else "!external"
        return None, [ConfigError(f"{tag} may only stand where a workspace or a list of workspaces goes", ref.loc)]
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        found = [(dict(err), _where(tuple(err["loc"]), data, err["type"])) for err in exc.errors(include_url=False)]
        seen: dict[tuple[Location, str], ConfigError] = {}
        for err, where in _collapse(found):
            if err["type"] == "union":
                message = f"{_dotted(where.path)} {err['msg']}" if where.path else str(err["msg"])
            else:
                message = _message(model, err, where, written_as(data, where.path))
            at_key = where.is_key or err["type"] == "extra_forbidden"
            loc = locate(data, where.path, fallback, at_key=at_key)
            seen.setdefault((loc, message), ConfigError(message, loc, path=where.path))
        return None, list(seen.values())


def validate_partial(
    model: type[M], data: Any, fallback: Location, entries: tuple[str, ...] = ()
) -> tuple[M | None, list[ConfigError], Broken]:
    """Validate, and when that fails keep what is valid: the same data without the keys that failed
    (without the entries that failed, for the mappings named in `entries`: `plugins`, `images`,
    `defaults`). Returns (the model of what is valid, every error, {failed part: its first error's
    location}); `()` as a failed part means nothing of the file could be kept."""
    parsed, errors = validate(model, data, fallback)
    if parsed is not None:
        return parsed, errors, {}
    first = errors[0].location if errors and errors[0].location else fallback
    if not isinstance(data, LocDict) or any(not e.path for e in errors):
        return None, errors, {(): first}
    broken: Broken = {}
    for error in errors:
        head = error.path[0]
        deep = head in entries and len(error.path) > 1 and isinstance(data.get(head), LocDict)
        part = error.path[:2] if deep else error.path[:1]
        broken.setdefault(part, error.location or fallback)
    kept = _without(data, list(broken))
    parsed, _ = validate(model, kept, fallback)
    if parsed is None:
        return None, errors, {(): first}
    return parsed, errors, broken


def _without(data: LocDict, parts: list[Path_]) -> LocDict:
    tops = {p[0] for p in parts if len(p) == 1}
    out = data.without(*(str(t) for t in tops))
    for head in {p[0] for p in parts if len(p) == 2 and p[0] not in tops}:
        inner = out[str(head)]
        assert isinstance(inner, LocDict)
        out[str(head)] = inner.without(*(str(p[1]) for p in parts if len(p) == 2 and p[0] == head))
    return out


def broken_at(broken: Broken, *path: str) -> Location | None:
    """Where the part holding `path` failed (the entry, the mapping it is in, or the whole file)."""
    for n in range(len(path), -1, -1):
        if path[:n] in broken:
            return broken[path[:n]]
    return None


__all__ = ["Broken", "broken_at", "did_you_mean", "locate", "validate", "validate_partial", "written_as"]
