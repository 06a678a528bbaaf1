"""Releasing a hold by hand: an operator clears one held version from the hold store (`holdstore.py`).

A hold is keyed by (kind, subject, value) (`model/holds.py`). A person names one by its short id
(`hold_id`: 12 hex digits of the key's SHA-256, shown by `GET /api/v1/status` and `reconciler
status`), by its value (`repo@sha256:...`, a plugin commit SHA, a spec hash; a prefix of at least
7 characters will do, `sha256:<hex>` too), by its label, or by its subject (an image repository,
a plugin, a workspace id) when only one hold has it. Released, the version is eligible again: the
next plan of a commit that asks for it applies it (and holds it again if it fails again).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from typing import Any

from reconciler.fsutil import atomic_write_text
from reconciler.model.holds import Hold
from reconciler.pipeline.holdstore import HoldStore

MIN_PREFIX = 7


def hold_id(hold: Hold) -> str:
    return hashlib.sha256("\0".join(hold.key).encode()).hexdigest()[:12]


def hold_json(hold: Hold) -> dict[str, Any]:
    return {"id": hold_id(hold), **hold.model_dump(mode="json"), "reason": hold.reason()}


def matching(holds: Collection[Hold], query: str) -> list[Hold]:
    """The holds `query` names (see the module docstring); an exact id or value wins over the rest."""
    query = query.strip()
    if not query:
        return []
    exact = [h for h in holds if query in (hold_id(h), h.value)]
    if exact:
        return exact
    found: list[Hold] = []
    for h in holds:
        digest = h.value.partition("@")[2]
        prefixes = len(query) >= MIN_PREFIX and (h.value.startswith(query) or bool(digest)
                                                 and (digest.startswith(query) or digest[7:].startswith(query)))
        if query in (h.label, h.subject) or prefixes:
            found.append(h)
    return found


def release(store: HoldStore, keys: Collection[tuple[str, str, str]], now: float) -> list[Hold]:
    """Remove the holds with these keys; the ones removed. Under the store's own lock, so a hold the
    worker adds at the same moment is never lost."""
    with store._lock:  # noqa: SLF001 - the store's lock: `add` and this never interleave
        holds = store.current(now)
        gone = [h for h in holds if h.key in keys]
        if gone:
            kept = [h for h in holds if h.key not in keys]
            atomic_write_text(store.path, json.dumps([h.model_dump(mode="json") for h in kept], indent=1))
    return gone
