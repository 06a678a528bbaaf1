"""The hold store: the holds of one reconciler instance, in one JSON file in the state dir.

Written atomically; a corrupt file reads as empty (and says so in the log); holds older than
`max_age_s` are dropped. Deleting the file makes everything eligible again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from reconciler.fsutil import atomic_write_text
from reconciler.model.holds import Hold

log = logging.getLogger(__name__)
_HOLDS = TypeAdapter(list[Hold])


class HoldStore:
    def __init__(self, path: Path, max_age_s: float = 30 * 86400, max_entries: int = 500) -> None:
        self.path = path
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self._lock = threading.Lock()

    def current(self, now: float) -> list[Hold]:
        return [h for h in self._load() if now - h.failed_at <= self.max_age_s]

    def add(self, new: Iterable[Hold], now: float) -> None:
        new = list(new)
        if not new:
            return
        with self._lock:
            keep = {h.key: h for h in self.current(now)}
            for entry in new:
                keep[entry.key] = entry
                log.warning("held after a failed health gate",
                            extra={"revision": entry.revision, "workspace": entry.workspace, "pin": entry.label})
            ordered = sorted(keep.values(), key=lambda h: h.failed_at)[-self.max_entries:]
            atomic_write_text(self.path, json.dumps([h.model_dump(mode="json") for h in ordered], indent=1))

    def _load(self) -> list[Hold]:
        try:
            return _HOLDS.validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return []
        except (ValidationError, ValueError, OSError) as exc:
            log.warning("ignoring unreadable hold file", extra={"path": str(self.path), "error": str(exc)})
            return []
