"""Holds: what failed a health gate is not tried again until it moves (no retry storm). Pure.

Without them a bad `:latest` is rolled out to canary, fails the gate, is rolled back, and is tried
again on every resync, forever. After a canary gate failure, `blame` names, for each canary the
gate found unwell, its (workspace, spec hash) and every pin its change introduced: an image
digest or a plugin SHA that differs from what ran before (a create introduces nothing: there
was no "before", so only its spec is blamed). `hold` then turns into a HOLD action every change
that would bring a blamed pin in (in any tier: production stays on the old digest) or re-apply a
blamed spec; while a canary is held by its spec, production changes are held too (the canary has
not proved them). A tag or branch that moves resolves to a new digest or SHA, which is not held,
so it rolls out again by itself; a new commit changes the spec. A production workspace that fails
its gate has its spec held the same way (only its spec: the canary already proved the pins).
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.model.desired import DesiredWorkspace
from reconciler.model.enums import CHANGE_KINDS, ActionKind, Outcome, Tier
from reconciler.model.holds import Hold, HoldKind
from reconciler.model.observed import ObservedWorkspace
from reconciler.model.plan import Action, Plan
from reconciler.model.results import RunResult

PinKey = tuple[str, str, str]  # (kind, subject, value)
Blamed = tuple[HoldKind, str, str, str]  # (kind, subject, value, label)


def _plugin_subject(source: str, path: str | None) -> str:
    return f"{source}#{path or ''}"


def _short_digest(ref: str) -> str:
    digest = ref.rpartition("@")[2]
    return digest[: len("sha256:") + 12] + "…"


def introduced(want: DesiredWorkspace, have: ObservedWorkspace | None) -> list[Blamed]:
    """(kind, subject, value, label) of each pin `want` brings in over what runs (nothing for a create)."""
    if have is None:
        return []
    out: list[Blamed] = []
    digest = want.image_digest
    if digest and have.image != digest:
        out.append(("image", digest.partition("@")[0], digest, _short_digest(digest)))
    for pin in want.plugins:
        if pin.resolved_sha and have.plugins.get(pin.name) != pin.resolved_sha:
            label = f"plugin {pin.name} at {pin.resolved_sha[:7]}"
            out.append(("plugin", _plugin_subject(pin.source, pin.path), pin.resolved_sha, label))
    return out


def blame(plan: Plan, run: RunResult, now: float) -> tuple[Hold, ...]:
    """Holds for a run whose health gate failed (none otherwise).

    Canary: the failing workspaces' specs and every pin their change brought in. Production (the
    canary passed, so the pins are not to blame): the failing workspaces' specs only, so the same
    spec is not re-applied on every resync either.
    """
    holds: list[Hold] = []
    for tier in (Tier.CANARY, Tier.PRODUCTION):
        result = run.tier(tier)
        if result is None or result.gate is None or result.gate.outcome is not Outcome.FAILED:
            continue
        changed = {a.workspace_id: a for a in plan.for_tier(tier) if a.desired is not None and a.kind in CHANGE_KINDS}
        suspects = [ws for ws in result.gate.unhealthy if ws in changed] or sorted(changed)
        for ws in suspects:
            action = changed[ws]
            want = action.desired
            assert want is not None
            blamed: list[Blamed] = [("spec", ws, want.spec_hash, f"spec {want.spec_hash[:12]}")]
            if tier is Tier.CANARY:
                blamed += introduced(want, action.observed)
            holds += [Hold(kind=kind, subject=subject, value=value, label=label, workspace=ws,
                           revision=plan.revision, failed_at=now) for kind, subject, value, label in blamed]
    return tuple(holds)


def hold(plan: Plan, holds: Iterable[Hold]) -> Plan:
    """`plan` with every change that would retry something held turned into a HOLD action."""
    holds = list(holds)
    if not holds:
        return plan
    specs = {(h.subject, h.value): h for h in holds if h.kind == "spec"}
    pins: dict[PinKey, Hold] = {h.key: h for h in holds if h.kind != "spec"}
    held_canary: Hold | None = None
    actions: list[Action] = []
    for action in plan.actions:
        found = _blocking(action, specs, pins)
        if found is not None and action.tier is Tier.CANARY and found.kind == "spec":
            held_canary = held_canary or found
        actions.append(_held(action, found, found.reason()) if found is not None else action)
    if held_canary is not None:
        why = f"canary {held_canary.workspace} failed the canary gate at {held_canary.when()}; not proved"
        actions = [_held(a, held_canary, why) if a.tier is Tier.PRODUCTION and a.kind in CHANGE_KINDS else a
                   for a in actions]
    return plan.model_copy(update={"actions": tuple(actions)})


def _blocking(action: Action, specs: dict[tuple[str, str], Hold], pins: dict[PinKey, Hold]) -> Hold | None:
    want = action.desired
    if want is None or action.kind not in CHANGE_KINDS:
        return None
    found = specs.get((action.workspace_id, want.spec_hash))
    if found is not None:
        return found
    candidates: list[PinKey] = []
    if want.image_digest and (action.observed is None or action.observed.image != want.image_digest):
        candidates.append(("image", want.image_digest.partition("@")[0], want.image_digest))
    for pin in want.plugins:
        installed = action.observed.plugins.get(pin.name) if action.observed else None
        if pin.resolved_sha and installed != pin.resolved_sha:
            candidates.append(("plugin", _plugin_subject(pin.source, pin.path), pin.resolved_sha))
    return next((pins[c] for c in candidates if c in pins), None)


def _held(action: Action, by: Hold, reason: str) -> Action:
    return action.model_copy(update={"kind": ActionKind.HOLD, "reason": reason, "held_by": by, "restart": True})
