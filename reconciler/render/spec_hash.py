"""The spec hash: one short hash per component of a workspace, and one over all of them.

A part changes exactly when something that should cause a change changes: YAML formatting, key
order, comments and which file a workspace is written in never enter it. Per-key parts
(`env.<KEY>`, `secret.<NAME>`, `plugin.<name>`) let a plan name what changed without storing any
value; secret parts are keyed hashes computed elsewhere (`secret_digests`), never the value. A
plugin's resolved SHA has its own part, apart from its content (`plugins`, SKILL.md excluded) and
its SKILL.md content (`skills`), so a moved tag that only changed SKILL.md updates without restart.
"""

from __future__ import annotations

import functools
import hashlib
import json
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from reconciler.model.desired import RESERVED_ENV, DesiredWorkspace

_COMPACT = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode
_SORTED = json.JSONEncoder(sort_keys=True).encode


def short_hash(value: Any) -> str:
    """12 hex of sha256 over the canonical JSON of `value` (encoders built once: this runs per field)."""
    if isinstance(value, str):
        return _text_hash(value)
    return _blob_hash("null" if value is None else _COMPACT(value))


@functools.lru_cache(maxsize=16384)
def _text_hash(value: str) -> str:
    """Most fields of a fleet repeat (tier, runtime, model, env values): each string is hashed once."""
    return _blob_hash(encode_basestring_ascii(value))  # exactly what the encoder writes for a string


def _blob_hash(blob: str) -> str:
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def spec_parts(ws: DesiredWorkspace) -> dict[str, str]:
    parts: dict[str, str] = {
        "name": short_hash(ws.name),
        "tier": short_hash(ws.tier.value),
        "runtime": short_hash(ws.runtime),
        "model": short_hash(ws.model),
        "role": short_hash(ws.role),
        "image": short_hash(ws.image_digest or ws.image),
        "parent": short_hash(ws.parent),
        "resources": short_hash(ws.resources.model_dump(mode="json") if ws.resources else None),
        "health": short_hash(ws.health.model_dump(mode="json") if ws.health else None),
        "files": short_hash(ws.files.content_hash if ws.files else None),
        "plugins": short_hash(
            [
                [p.name, p.path, p.content_hash or p.resolved_sha or p.track]
                for p in sorted(ws.plugins, key=lambda p: p.name)
            ]
        ),
        "skills": short_hash(
            [ws.files.skills_hash if ws.files else ""]
            + [p.skills_hash or "" for p in sorted(ws.plugins, key=lambda p: p.name)]
        ),
    }
    for p in ws.plugins:  # the pin alone: a moved ref whose content did not change needs no restart
        parts[f"plugin.{p.name}"] = short_hash(p.resolved_sha or p.track)
    for key, value in ws.env.items():
        if key not in RESERVED_ENV:  # set from other fields, which have parts of their own
            parts[f"env.{key}"] = short_hash(value)
    for name in ws.secrets:
        parts[f"secret.{name}"] = short_hash(ws.secret_digests.get(name, "unresolved"))
    return parts


def with_spec(ws: DesiredWorkspace) -> DesiredWorkspace:
    """The same workspace with spec_parts and spec_hash computed from its current fields."""
    parts = spec_parts(ws)
    spec = hashlib.sha256(_SORTED(parts).encode()).hexdigest()[:20]
    return ws.model_copy(update={"spec_parts": parts, "spec_hash": spec})
