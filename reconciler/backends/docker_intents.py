"""Intents: what the Docker backend is about to do to a workspace, written down before it does it.

A process can die at any line (OOM killer, reboot, `kill -9`). So every change to a workspace is
preceded by a durable row here, and the row is only cleared once the change is committed (its
health gate passed) or undone. The next start (the daemon, and every `reconciler apply`) calls
`DockerBackend.recover`, which acts on exactly the workspaces that have a row, by its phase:

    APPLYING / APPLIED / ROLLING_BACK   undo it: put back what it replaced (`rollback`)
    COMMITTING                          finish it: drop what it kept for rollback (`commit`)
    DELETING                            finish it: the container, then its volumes

A row also says what the change replaced (`prev_id`: the old container, kept stopped as
`<name>.prev-<id>`; `prev_override`: the in-place-update override in force before), so a rollback
restores that one container and nothing older. `verified` keeps, per workspace, the spec that last
passed its health gate here: a rollback never puts back a container older than that.

One SQLite file per instance in the state dir (`docker-<instance>-intents.sqlite`), WAL with
`synchronous=NORMAL`: a killed process loses nothing; a power cut may lose the last rows, which the
engine-side sweep in `recover` covers (a `.new-*` or `.prev-*` container without a row).
One store per file per process (`IntentStore.open`), so backends built with different settings
share it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from reconciler.backends.docker_state import Override
from reconciler.fsutil import one_per_file
from reconciler.model.enums import ActionKind

SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    workspace TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    phase TEXT NOT NULL,
    spec_hash TEXT NOT NULL DEFAULT '',
    revision TEXT,
    prev_id TEXT,
    prev_override TEXT,
    started_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS verified (
    workspace TEXT PRIMARY KEY, spec_hash TEXT NOT NULL, revision TEXT, at REAL NOT NULL
);
"""


class Phase(StrEnum):
    APPLYING = "applying"  # effects under way
    APPLIED = "applied"  # done, waiting for the health gate
    COMMITTING = "committing"  # the gate passed: dropping what was kept
    ROLLING_BACK = "rolling-back"  # putting back what was replaced
    DELETING = "deleting"


class Intent(BaseModel):
    model_config = ConfigDict(frozen=True)

    workspace: str
    kind: ActionKind
    phase: Phase
    spec_hash: str = ""
    revision: str | None = None
    prev_id: str | None = None  # the container this change replaced (None: nothing replaced yet)
    prev_override: Override | None = None
    started_at: float = 0.0

    @property
    def undo(self) -> bool:
        """Recovery puts back what this replaced (else it finishes the step)."""
        return self.phase in (Phase.APPLYING, Phase.APPLIED, Phase.ROLLING_BACK)


class Verified(BaseModel):
    workspace: str
    spec_hash: str
    revision: str | None = None


class IntentStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    @classmethod
    def open(cls, path: Path) -> IntentStore:
        """The one store of `path` in this process."""
        return one_per_file(cls, path)

    def begin(self, intent: Intent) -> Intent:
        """Record `intent`; an open one for the workspace (a retry, or a create that turned into a
        replacement) is kept, with the kind, spec and `prev_id` filled in where it had none."""
        with self._lock:
            existing = self._get(intent.workspace)
            if existing is not None:
                merged = existing.model_copy(update={
                    "kind": intent.kind if existing.prev_id is None and intent.prev_id else existing.kind,
                    "phase": intent.phase if intent.phase is Phase.DELETING else Phase.APPLYING,
                    "spec_hash": intent.spec_hash or existing.spec_hash,
                    "revision": intent.revision or existing.revision,
                    "prev_id": existing.prev_id or intent.prev_id,
                })
                self._put(merged)
                return merged
            intent = intent.model_copy(update={"started_at": time.time()})
            self._put(intent)
            return intent

    def update(self, workspace: str, **fields: object) -> Intent | None:
        with self._lock:
            existing = self._get(workspace)
            if existing is None:
                return None
            updated = existing.model_copy(update=fields)
            self._put(updated)
            return updated

    def get(self, workspace: str) -> Intent | None:
        with self._lock:
            return self._get(workspace)

    def pending(self) -> list[Intent]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM intents ORDER BY started_at").fetchall()
        return [_intent(r) for r in rows]

    def finish(self, workspace: str, verified: Verified | None = None, *, forget: bool = False) -> None:
        """The change is over: clear its row; `verified` records the spec that passed its gate,
        `forget` drops the workspace's record (deleted)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM intents WHERE workspace=?", (workspace,))
                if verified is not None:
                    self._db.execute("INSERT OR REPLACE INTO verified VALUES (?,?,?,?)",
                                     (workspace, verified.spec_hash, verified.revision, time.time()))
                elif forget:
                    self._db.execute("DELETE FROM verified WHERE workspace=?", (workspace,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def verified(self, workspace: str) -> Verified | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM verified WHERE workspace=?", (workspace,)).fetchone()
        if row is None:
            return None
        return Verified(workspace=row["workspace"], spec_hash=row["spec_hash"], revision=row["revision"])

    # -- internals (callers hold the lock) ---------------------------------------------------
    def _get(self, workspace: str) -> Intent | None:
        row = self._db.execute("SELECT * FROM intents WHERE workspace=?", (workspace,)).fetchone()
        return _intent(row) if row else None

    def _put(self, intent: Intent) -> None:
        prev = intent.prev_override.model_dump_json() if intent.prev_override else None
        self._db.execute("INSERT OR REPLACE INTO intents VALUES (?,?,?,?,?,?,?,?)",
                         (intent.workspace, intent.kind.value, intent.phase.value, intent.spec_hash,
                          intent.revision, intent.prev_id, prev, intent.started_at))


def _intent(row: sqlite3.Row) -> Intent:
    prev = row["prev_override"]
    return Intent(workspace=row["workspace"], kind=ActionKind(row["kind"]), phase=Phase(row["phase"]),
                  spec_hash=row["spec_hash"], revision=row["revision"], prev_id=row["prev_id"],
                  prev_override=Override.model_validate(json.loads(prev)) if prev else None,
                  started_at=row["started_at"])
