"""The daemon's journal: SQLite under the state dir. History, and the operator's suspensions and
approvals: wiping it loses nothing else (it resumes what was suspended, and forgets approvals).

What it keeps: runs (apply runs on the watched branch and PR reviews: revision, trigger, status,
plan JSON, the RunResult JSON, statuses posted, timings), one row per finished action (written as
each action ends, so a run killed half-way still shows what it did), the last good revision per
tier, statuses the forge has not taken yet (the newest per commit and context, each with its own
retry count and next try), the webhook delivery ids already handled (a redelivery is
acknowledged and ignored, across restarts too), what an operator suspended (everything, or one
org: `suspend`, `resume`, `suspended`) and the commits an operator promoted to production
(`approve`, `approved`: with the policy's `production: manual`), so a restart keeps them. Actual
state is never read from here: it comes from the backend's labels. One connection, serialised by
a lock; WAL so the web pages read while the worker writes.

Retention (`prune_runs`, `prune_deliveries`): old runs go with their actions, by age and by count;
a run still `running`, one not yet recovered, and the newest apply run that is not a heal (what
the worker asks about the current head) are never pruned.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from reconciler.model.enums import RunKind, RunStatus, Trigger

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,                 -- apply | review
    revision TEXT,
    trigger TEXT NOT NULL,
    pr INTEGER,
    status TEXT NOT NULL,               -- a RunStatus: running, success, held, failed, error, ...
    message TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL,
    finished_at REAL,
    plan_json TEXT,
    result_json TEXT,
    statuses_json TEXT NOT NULL DEFAULT '[]',
    superseded_by TEXT,
    recovered INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS actions (
    run_id INTEGER NOT NULL,
    tier TEXT NOT NULL,
    workspace TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    duration_s REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS actions_run ON actions(run_id);
CREATE TABLE IF NOT EXISTS last_good (tier TEXT PRIMARY KEY, revision TEXT NOT NULL, run_id INTEGER, at REAL);
CREATE TABLE IF NOT EXISTS unposted (
    revision TEXT NOT NULL, context TEXT NOT NULL, state TEXT NOT NULL, description TEXT NOT NULL,
    target_url TEXT NOT NULL, at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,  -- failed posts of this (revision, context) so far
    next_at REAL NOT NULL DEFAULT 0,      -- not tried again before then
    PRIMARY KEY (revision, context)
);
CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, received_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_received ON deliveries(received_at);
CREATE TABLE IF NOT EXISTS suspended (org TEXT PRIMARY KEY, at REAL NOT NULL);  -- org '*': everything
CREATE TABLE IF NOT EXISTS approvals (revision TEXT PRIMARY KEY, at REAL NOT NULL,
                                      by TEXT NOT NULL DEFAULT '');  -- promoted to production, by whom
"""
SUSPEND_ALL = "*"
# runs that retention may delete: finished, recovered, and not the newest apply run (heal runs aside)
PRUNABLE = ("status != 'running' AND recovered = 1"
            " AND id != COALESCE((SELECT MAX(id) FROM runs WHERE kind = 'apply' AND trigger != 'heal'), -1)"
            " AND (COALESCE(finished_at, started_at) < ? OR id NOT IN (SELECT id FROM runs ORDER BY id DESC LIMIT ?))")
UNFINISHED = frozenset({RunStatus.INTERRUPTED, RunStatus.SUPERSEDED, RunStatus.ERROR})
# columns added to `unposted` after its first release: a journal file written before them gets them
UNPOSTED_ADDED = (("attempts", "INTEGER NOT NULL DEFAULT 0"), ("next_at", "REAL NOT NULL DEFAULT 0"))


class RunRow(BaseModel):
    id: int
    kind: RunKind
    revision: str | None
    trigger: str
    pr: int | None
    status: RunStatus
    message: str
    started_at: float
    finished_at: float | None
    plan: dict[str, Any] | None
    result: dict[str, Any] | None
    statuses: list[dict[str, str]]
    superseded_by: str | None
    recovered: bool

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


class Unposted(BaseModel):
    """A status wanted on a commit and not yet taken by the forge: the newest per (revision, context)."""

    revision: str
    context: str
    state: str
    description: str
    target_url: str
    at: float | None = None  # when it was kept
    attempts: int = 0  # failed posts so far
    next_at: float = 0  # not tried again before then


class Journal:
    def __init__(self, path: Path, clock: Any = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._migrate_unposted()
        self._add_columns("approvals", (("by", "TEXT NOT NULL DEFAULT ''"),))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ---- runs --------------------------------------------------------------------------------
    def start_run(self, kind: RunKind, revision: str | None, trigger: str, pr: int | None = None,
                  status: RunStatus = RunStatus.RUNNING) -> int:
        recovered = 0 if kind is RunKind.APPLY and status is RunStatus.RUNNING else 1
        cur = self._exec(
            "INSERT INTO runs (kind, revision, trigger, pr, status, started_at, recovered) VALUES (?,?,?,?,?,?,?)",
            (kind, revision, trigger, pr, status, self._clock(), recovered),
        )
        return int(cur.lastrowid or 0)

    def set_plan(self, run_id: int, plan: dict[str, Any]) -> None:
        self._exec("UPDATE runs SET plan_json=? WHERE id=?", (json.dumps(plan), run_id))

    def add_action(self, run_id: int, tier: str, workspace: str, kind: str, outcome: str, message: str,
                   attempts: int, duration_s: float) -> None:
        self._exec("INSERT INTO actions VALUES (?,?,?,?,?,?,?,?)",
                   (run_id, tier, workspace, kind, outcome, message, attempts, duration_s))

    def finish_run(self, run_id: int, status: RunStatus, message: str, *, result: dict[str, Any] | None = None,
                   statuses: list[dict[str, str]] | None = None, superseded_by: str | None = None,
                   recovered: bool | None = None) -> None:
        done = recovered if recovered is not None else status not in UNFINISHED
        self._exec(
            "UPDATE runs SET status=?, message=?, finished_at=?, result_json=COALESCE(?, result_json),"
            " statuses_json=?, superseded_by=?, recovered=? WHERE id=?",
            (status, message, self._clock(), json.dumps(result) if result is not None else None,
             json.dumps(statuses or []), superseded_by, int(done), run_id),
        )

    def mark_recovered(self, run_id: int) -> None:
        self._exec("UPDATE runs SET recovered=1 WHERE id=?", (run_id,))

    def mark_crashed(self) -> list[int]:
        """Runs left `running` by a process that died: now `interrupted`, still to be recovered."""
        ids = [int(r["id"]) for r in self._rows("SELECT id FROM runs WHERE status='running'")]
        for run_id in ids:
            self._exec("UPDATE runs SET status='interrupted', message='the daemon stopped during this run',"
                       " finished_at=COALESCE(finished_at, ?) WHERE id=?", (self._clock(), run_id))
        return ids

    def to_recover(self) -> list[RunRow]:
        rows = self._rows("SELECT * FROM runs WHERE kind='apply' AND recovered=0 ORDER BY id")
        return [_run(r) for r in rows]

    def run(self, run_id: int) -> RunRow | None:
        rows = self._rows("SELECT * FROM runs WHERE id=?", (run_id,))
        return _run(rows[0]) if rows else None

    def runs(self, limit: int = 100, offset: int = 0) -> list[RunRow]:
        rows = self._rows("SELECT * FROM runs ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))
        return [_run(r) for r in rows]

    def last_status(self, revision: str) -> RunStatus | None:
        """Status of the newest finished apply run of `revision` (None: never finished). A heal run
        does not count: it kept the tiers at their last verified revisions and says nothing of this one."""
        row = self.last_run(revision)
        return row.status if row is not None else None

    def last_run(self, revision: str, *, heal: bool = False) -> RunRow | None:
        """The newest finished apply run of `revision`: heal runs left out (see `last_status`), or
        with `heal` only them (the newest heal around that head)."""
        op = "=" if heal else "!="
        rows = self._rows("SELECT * FROM runs WHERE revision=? AND kind='apply' AND status!='running'"
                          f" AND trigger{op}? ORDER BY id DESC LIMIT 1", (revision, Trigger.HEAL.value))
        return _run(rows[0]) if rows else None

    def recent_reviews(self, limit: int) -> list[tuple[int, str]]:
        """(pull request, head) of the newest `limit` reviews, newest first."""
        rows = self._rows("SELECT pr, revision FROM runs WHERE kind='review' AND pr IS NOT NULL"
                          " AND revision IS NOT NULL ORDER BY id DESC LIMIT ?", (limit,))
        return [(int(r["pr"]), str(r["revision"])) for r in rows]

    def prune_runs(self, max_age_s: float, max_rows: int) -> int:
        """Delete runs (with their actions) older than `max_age_s` or beyond the newest `max_rows`."""
        args = (self._clock() - max_age_s, max(0, max_rows))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(f"DELETE FROM actions WHERE run_id IN (SELECT id FROM runs WHERE {PRUNABLE})", args)
                deleted = self._db.execute(f"DELETE FROM runs WHERE {PRUNABLE}", args).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return max(0, deleted)

    def last_review(self, pr: int) -> str | None:
        rows = self._rows("SELECT revision FROM runs WHERE kind='review' AND pr=? ORDER BY id DESC LIMIT 1", (pr,))
        return str(rows[0]["revision"]) if rows else None

    def actions(self, run_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows("SELECT * FROM actions WHERE run_id=? ORDER BY rowid", (run_id,))]

    def last_success_at(self) -> float | None:
        rows = self._rows("SELECT MAX(finished_at) AS at FROM runs WHERE kind='apply' AND status='success'")
        return float(rows[0]["at"]) if rows and rows[0]["at"] is not None else None

    # ---- last good revision per tier -----------------------------------------------------------
    def set_last_good(self, tier: str, revision: str, run_id: int) -> None:
        self._exec("INSERT OR REPLACE INTO last_good VALUES (?,?,?,?)", (tier, revision, run_id, self._clock()))

    def last_good(self) -> dict[str, str]:
        """tier -> the newest revision whose run passed that tier's health gate (shown by /healthz)."""
        return {str(r["tier"]): str(r["revision"]) for r in self._rows("SELECT * FROM last_good")}

    # ---- statuses the forge did not take -------------------------------------------------------
    def _migrate_unposted(self) -> None:
        """Add the retry columns to an `unposted` table created before them (rows then are due now)."""
        self._add_columns("unposted", UNPOSTED_ADDED)

    def _add_columns(self, table: str, columns: tuple[tuple[str, str], ...]) -> None:
        """Columns added to `table` after a journal file was written without them."""
        with self._lock:
            have = {str(r["name"]) for r in self._db.execute(f"PRAGMA table_info({table})")}
            for name, decl in columns:
                if name not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    def keep_unposted(self, status: Unposted) -> None:
        """Record `status` as the one wanted for its (revision, context), replacing an older one."""
        now = self._clock()
        self._exec("INSERT OR REPLACE INTO unposted (revision, context, state, description, target_url, at,"
                   " attempts, next_at) VALUES (?,?,?,?,?,?,?,?)",
                   (status.revision, status.context, status.state, status.description, status.target_url, now,
                    status.attempts, max(now, status.next_at)))

    def defer_unposted(self, revision: str, context: str, attempts: int, delay_s: float) -> None:
        """The kept status of (revision, context) failed `attempts` times: not due for `delay_s`."""
        self._exec("UPDATE unposted SET attempts=?, next_at=? WHERE revision=? AND context=?",
                   (attempts, self._clock() + delay_s, revision, context))

    def drop_unposted(self, status: Unposted) -> bool:
        """Forget the kept status of its (revision, context) if it is still `status`: a newer one kept
        meanwhile stays. True when a row went."""
        cur = self._exec("DELETE FROM unposted WHERE revision=? AND context=? AND state=? AND description=?"
                         " AND target_url=?", (status.revision, status.context, status.state, status.description,
                                               status.target_url))
        return cur.rowcount > 0

    def unposted_status(self, revision: str, context: str) -> Unposted | None:
        """The status wanted now for (revision, context), if the forge has not taken it yet."""
        rows = self._rows("SELECT * FROM unposted WHERE revision=? AND context=?", (revision, context))
        return _unposted(rows[0]) if rows else None

    def unposted(self, *, due: bool = False) -> list[Unposted]:
        """The kept statuses, oldest first; with `due`, only those whose next try is not later than now."""
        if due:
            rows = self._rows("SELECT * FROM unposted WHERE next_at <= ? ORDER BY at", (self._clock(),))
        else:
            rows = self._rows("SELECT * FROM unposted ORDER BY at")
        return [_unposted(r) for r in rows]

    # ---- webhook deliveries already handled ----------------------------------------------------
    def has_delivery(self, delivery: str) -> bool:
        return bool(self._rows("SELECT 1 FROM deliveries WHERE id=?", (delivery,)))

    def add_delivery(self, delivery: str) -> None:
        if delivery:
            self._exec("INSERT OR IGNORE INTO deliveries VALUES (?,?)", (delivery, self._clock()))

    def prune_deliveries(self, max_age_s: float, max_rows: int) -> int:
        """Forget delivery ids older than `max_age_s` or beyond the newest `max_rows`."""
        cur = self._exec("DELETE FROM deliveries WHERE received_at < ? OR id NOT IN"
                         " (SELECT id FROM deliveries ORDER BY received_at DESC LIMIT ?)",
                         (self._clock() - max_age_s, max(0, max_rows)))
        return max(0, cur.rowcount)


    # ---- what an operator suspended -------------------------------------------------------------
    def suspend(self, org: str = SUSPEND_ALL) -> bool:
        """Suspend `org` (`SUSPEND_ALL`: everything); False when it already was."""
        cur = self._exec("INSERT OR IGNORE INTO suspended VALUES (?,?)", (org, self._clock()))
        return cur.rowcount > 0

    def resume(self, org: str | None = None) -> list[str]:
        """Resume `org` (None: everything, every org included); what was suspended and no longer is."""
        if org is None:
            gone = sorted(self.suspended())
            self._exec("DELETE FROM suspended")
            return gone
        cur = self._exec("DELETE FROM suspended WHERE org=?", (org,))
        return [org] if cur.rowcount > 0 else []

    def suspended(self) -> dict[str, float]:
        """org (`SUSPEND_ALL`: everything) -> since when (epoch seconds)."""
        return {str(r["org"]): float(r["at"]) for r in self._rows("SELECT * FROM suspended ORDER BY org")}


    # ---- commits an operator promoted to production ---------------------------------------------
    def approve(self, revision: str, by: str = "") -> bool:
        """Record that `revision` may go to production (`by`: who approved it, e.g. `review by alice on
        #3`; an operator's promotion says `operator`); False when it already was."""
        return self._exec("INSERT OR IGNORE INTO approvals (revision, at, by) VALUES (?,?,?)",
                          (revision, self._clock(), by)).rowcount > 0

    def approved(self, revision: str) -> bool:
        return bool(self._rows("SELECT 1 FROM approvals WHERE revision=?", (revision,)))

    def approved_by(self, revision: str) -> str | None:
        """Who approved `revision` ("" when not recorded); None when it is not approved."""
        rows = self._rows("SELECT by FROM approvals WHERE revision=?", (revision,))
        return str(rows[0]["by"]) if rows else None

    def ran(self, revisions: list[str]) -> set[str]:
        """Those of `revisions` the branch ever had a run of (heads the daemon saw)."""
        found: set[str] = set()
        for start in range(0, len(revisions), 500):
            chunk = revisions[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found |= {str(r["revision"]) for r in self._rows(
                f"SELECT DISTINCT revision FROM runs WHERE kind='apply' AND revision IN ({marks})", tuple(chunk))}
        return found


class JournalDeliveries:
    """The journal as the webhook receiver's `DeliveryLog`: handled delivery ids survive a restart."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def __contains__(self, delivery: object) -> bool:
        return isinstance(delivery, str) and bool(delivery) and self.journal.has_delivery(delivery)

    def add(self, delivery: str) -> None:
        self.journal.add_delivery(delivery)


def _run(row: sqlite3.Row) -> RunRow:
    return RunRow(
        id=row["id"], kind=RunKind(row["kind"]), revision=row["revision"], trigger=row["trigger"], pr=row["pr"],
        status=RunStatus(row["status"]), message=row["message"], started_at=row["started_at"],
        finished_at=row["finished_at"],
        plan=json.loads(row["plan_json"]) if row["plan_json"] else None,
        result=json.loads(row["result_json"]) if row["result_json"] else None,
        statuses=json.loads(row["statuses_json"] or "[]"), superseded_by=row["superseded_by"],
        recovered=bool(row["recovered"]),
    )


def _unposted(row: sqlite3.Row) -> Unposted:
    return Unposted(revision=row["revision"], context=row["context"], state=row["state"],
                    description=row["description"], target_url=row["target_url"], at=row["at"],
                    attempts=row["attempts"], next_at=row["next_at"])
