"""Quarantine: what failed a health gate is not tried again until it moves (no retry storm).

Without it a bad `:latest` is rolled out to canary, fails the gate, is rolled back, and is tried
again on every resync, forever. After a canary gate failure, `blame` names, for each canary the
gate found unwell, its (workspace, spec hash) and every pin its change introduced: an image
digest or a plugin SHA that differs from what ran before (a create introduces nothing: there
was no "before", so only its spec is blamed). `hold` then turns into a NOOP, with a `held: ...`
reason, every change that would bring a blamed pin in (in any tier: production stays on the old
digest) or re-apply a blamed spec; while a canary is held by its spec, production changes are
held too (the canary has not proved them). A tag or branch that moves resolves to a new digest or
SHA, which is not quarantined, so it rolls out again by itself; a new commit changes the spec.
A production workspace that fails its gate has its spec held the same way (only its spec: the
canary already proved the pins).

`blame` and `hold` are pure. `QuarantineStore` keeps the entries in one JSON file in the state
dir (atomic writes; a corrupt file reads as empty); entries older than `max_age_s` are dropped.
Deleting the file makes everything eligible again.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from reconciler.model.desired import DesiredWorkspace
from reconciler.model.enums import ActionKind, Outcome, Tier
from reconciler.model.observed import ObservedWorkspace
from reconciler.model.plan import Action, Plan
from reconciler.model.results import RunResult

log = logging.getLogger(__name__)
HELD = "held: "
Kind = Literal["image", "plugin", "spec"]
PinKey = tuple[str, str, str]  # (kind, subject, value)


class Quarantined(BaseModel):
    """One thing that failed a health gate: an image digest, a plugin SHA, or one workspace's spec."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind
    subject: str  # image repository / plugin `source#path` / workspace id
    value: str  # `repo@sha256:...` / commit SHA / spec hash
    label: str  # what a person reads: `sha256:ab12…`, `plugin X at abc1234`, `spec 1a2b3c4d5e6f`
    workspace: str  # the canary that failed
    revision: str | None = None
    failed_at: float  # epoch seconds

    def when(self) -> str:
        return datetime.fromtimestamp(self.failed_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def reason(self) -> str:
        if self.kind == "spec":
            when = self.when()
            return f"{HELD}this spec of {self.subject} failed its health gate at {when}; waiting for a new commit"
        return f"{HELD}{self.label} failed the canary gate at {self.when()}; waiting for it to move"


_ENTRIES = TypeAdapter(list[Quarantined])


def _plugin_subject(source: str, path: str | None) -> str:
    return f"{source}#{path or ''}"


def introduced(want: DesiredWorkspace, have: ObservedWorkspace | None) -> list[tuple[Kind, str, str, str]]:
    """(kind, subject, value, label) of each pin `want` brings in over what runs (nothing for a create)."""
    if have is None:
        return []
    out: list[tuple[Kind, str, str, str]] = []
    digest = want.image_digest
    if digest and have.image != digest:
        out.append(("image", digest.partition("@")[0], digest, _short_digest(digest)))
    for pin in want.plugins:
        if pin.resolved_sha and have.plugins.get(pin.name) != pin.resolved_sha:
            label = f"plugin {pin.name} at {pin.resolved_sha[:7]}"
            out.append(("plugin", _plugin_subject(pin.source, pin.path), pin.resolved_sha, label))
    return out


def _short_digest(ref: str) -> str:
    digest = ref.rpartition("@")[2]
    return digest[: len("sha256:") + 12] + "…"


def blame(plan: Plan, run: RunResult, now: float) -> list[Quarantined]:
    """Entries for a run whose health gate failed (none otherwise).

    Canary: the failing workspaces' specs and every pin their change brought in. Production (the
    canary passed, so the pins are not to blame): the failing workspaces' specs only, so the same
    spec is not re-applied on every resync either.
    """
    entries: list[Quarantined] = []
    for tier in (Tier.CANARY, Tier.PRODUCTION):
        result = run.tier(tier)
        if result is None or result.gate is None or result.gate.outcome is not Outcome.FAILED:
            continue
        changed = {a.workspace_id: a for a in plan.for_tier(tier) if a.desired is not None
                   and a.kind in (ActionKind.CREATE, ActionKind.UPDATE, ActionKind.RECREATE)}
        suspects = [ws for ws in result.gate.unhealthy if ws in changed] or sorted(changed)
        for ws in suspects:
            action = changed[ws]
            want = action.desired
            assert want is not None
            blamed: list[tuple[Kind, str, str, str]] = [("spec", ws, want.spec_hash, f"spec {want.spec_hash[:12]}")]
            if tier is Tier.CANARY:
                blamed += introduced(want, action.observed)
            entries += [Quarantined(kind=kind, subject=subject, value=value, label=label, workspace=ws,
                                    revision=plan.revision, failed_at=now) for kind, subject, value, label in blamed]
    return entries


def hold(plan: Plan, entries: Iterable[Quarantined]) -> Plan:
    """`plan` with every change that would retry something quarantined turned into a NOOP."""
    entries = list(entries)
    if not entries:
        return plan
    specs = {(e.subject, e.value): e for e in entries if e.kind == "spec"}
    pins: dict[PinKey, Quarantined] = {(e.kind, e.subject, e.value): e for e in entries if e.kind != "spec"}
    held_canary: Quarantined | None = None
    actions: list[Action] = []
    for action in plan.actions:
        entry = _blocking(action, specs, pins)
        if entry is not None and action.tier is Tier.CANARY and entry.kind == "spec":
            held_canary = held_canary or entry
        actions.append(_held(action, entry.reason()) if entry is not None else action)
    if held_canary is not None:
        why = f"{HELD}canary {held_canary.workspace} failed the canary gate at {held_canary.when()}; not proved"
        actions = [_held(a, why) if a.tier is Tier.PRODUCTION and _changes(a) else a for a in actions]
    return plan.model_copy(update={"actions": tuple(actions)})


def _changes(action: Action) -> bool:
    return action.kind in (ActionKind.CREATE, ActionKind.UPDATE, ActionKind.RECREATE)


def _blocking(
    action: Action,
    specs: dict[tuple[str, str], Quarantined],
    pins: dict[PinKey, Quarantined],
) -> Quarantined | None:
    want = action.desired
    if want is None or not _changes(action):
        return None
    entry = specs.get((action.workspace_id, want.spec_hash))
    if entry is not None:
        return entry
    candidates: list[PinKey] = []
    if want.image_digest and (action.observed is None or action.observed.image != want.image_digest):
        candidates.append(("image", want.image_digest.partition("@")[0], want.image_digest))
    for pin in want.plugins:
        installed = action.observed.plugins.get(pin.name) if action.observed else None
        if pin.resolved_sha and installed != pin.resolved_sha:
            candidates.append(("plugin", _plugin_subject(pin.source, pin.path), pin.resolved_sha))
    return next((pins[c] for c in candidates if c in pins), None)


def _held(action: Action, reason: str) -> Action:
    return action.model_copy(update={"kind": ActionKind.NOOP, "reason": reason, "restart": True})


def held_actions(plan: Plan) -> tuple[Action, ...]:
    return tuple(a for a in plan.actions if a.kind is ActionKind.NOOP and a.reason.startswith(HELD))


class QuarantineStore:
    """The entries of one reconciler instance, persisted to one JSON file."""

    def __init__(self, path: Path, max_age_s: float = 30 * 86400, max_entries: int = 500) -> None:
        self.path = path
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self._lock = threading.Lock()

    def entries(self, now: float | None = None) -> list[Quarantined]:
        now = time.time() if now is None else now
        return [e for e in self._load() if now - e.failed_at <= self.max_age_s]

    def add(self, new: Iterable[Quarantined], now: float | None = None) -> None:
        new = list(new)
        if not new:
            return
        with self._lock:
            keep = {(e.kind, e.subject, e.value): e for e in self.entries(now)}
            for entry in new:
                keep[(entry.kind, entry.subject, entry.value)] = entry
                log.warning("quarantined after a failed health gate",
                            extra={"revision": entry.revision, "workspace": entry.workspace, "pin": entry.label})
            ordered = sorted(keep.values(), key=lambda e: e.failed_at)[-self.max_entries:]
            self._write(ordered)

    def _load(self) -> list[Quarantined]:
        try:
            return _ENTRIES.validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return []
        except (ValidationError, ValueError, OSError) as exc:
            log.warning("ignoring unreadable quarantine file", extra={"path": str(self.path), "error": str(exc)})
            return []

    def _write(self, entries: list[Quarantined]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps([e.model_dump(mode="json") for e in entries], indent=1)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(data)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
