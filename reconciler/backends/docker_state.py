"""Label overrides for in-place updates: the one piece of Docker backend state kept outside the engine.

Docker cannot change a container's labels. An update that only changes SKILL.md content must not
restart the workload, so after rewriting /configs in place the container still carries the old
spec hash. The new (spec hash, spec parts, revision, configs hash) go into
`<state_dir>/docker-<instance>-overrides.json` instead, keyed by workspace and bound to the
container id; `list_owned` merges them over the labels without any extra engine call. An entry
whose container id no longer matches is ignored, and entries are cleared whenever the workspace's
container is (re)created or deleted.

Losing the file is harmless: the next plan sees only the skills part differ and rewrites the same
files in place. Writes are atomic (temp file + rename); a corrupt file reads as empty.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.fsutil import atomic_write_text, one_per_file

log = logging.getLogger(__name__)


class Override(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    container_id: str
    spec_hash: str
    spec_parts: dict[str, str] = Field(default_factory=dict)
    revision: str | None = None
    configs_hash: str = ""
    plugins: dict[str, str] = Field(default_factory=dict)  # plugin name -> installed SHA


class OverrideStore:
    """Thread-safe map workspace id -> Override, persisted to one JSON file; one per file per
    process (`open`), so backends built with different settings never hold diverging copies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, Override] = self._load()

    @classmethod
    def open(cls, path: Path) -> OverrideStore:
        return one_per_file(cls, path)

    def _load(self) -> dict[str, Override]:
        try:
            raw = json.loads(self.path.read_text())
            return {str(ws): Override.model_validate(entry) for ws, entry in raw.items()}
        except FileNotFoundError:
            return {}
        except (ValueError, AttributeError, ValidationError, OSError) as exc:
            log.warning("ignoring unreadable override state", extra={"path": str(self.path), "error": str(exc)})
            return {}

    def get(self, workspace_id: str, container_id: str | None = None) -> Override | None:
        with self._lock:
            entry = self._entries.get(workspace_id)
        if entry and container_id is not None and entry.container_id != container_id:
            return None
        return entry

    def snapshot(self) -> dict[str, Override]:
        with self._lock:
            return dict(self._entries)

    def put(self, workspace_id: str, entry: Override | None) -> None:
        """Set (or with None, clear) one workspace's override; writes only when it changed."""
        with self._lock:
            if self._entries.get(workspace_id) == entry:
                return
            if entry is None:
                self._entries.pop(workspace_id, None)
            else:
                self._entries[workspace_id] = entry
            self._write()

    def _write(self) -> None:
        data = {ws: e.model_dump(mode="json") for ws, e in sorted(self._entries.items())}
        atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True))
