"""Repairs: what healing may take from a plan, so that nothing verified is ever changed. Pure.

A plan of a verified revision against what runs lists everything that differs. Healing keeps only
what brings a workspace back to a spec that revision proved, without changing the spec of any
workspace that runs:

- a missing workspace (CREATE) is created at that revision's spec;
- a stopped one (RECREATE because its container is not running) is recreated at it (the backend
  just starts the old container when the spec is the same), unless it belongs to another tier now
  (a tier moved by a newer verified revision is that tier's business);
- one running, at that revision's spec (NOOP), whose health check has failed for too long (the
  caller says which, with for how long) is recreated at the spec it runs;
- nothing else: an update, a spec change of a running workspace (that would be a downgrade, or
  the failed change itself), a delete, a held change.

The same rule cuts a converged head's own plan (no drift: only the unhealthy are repaired).
`heal_reason` names what one action repairs, for the metric and the log: `missing`, `stopped`,
`unhealthy` (None: not a repair).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from reconciler.model.enums import ActionKind, Tier
from reconciler.model.plan import Action, Plan

MISSING, STOPPED, UNHEALTHY = "missing", "stopped", "unhealthy"


def restrict(plan: Plan, tier: Tier) -> Plan:
    """`plan` with only the actions of `tier` (desired tier, or observed tier for a delete)."""
    return plan.model_copy(update={"actions": plan.for_tier(tier)})


def heal_reason(action: Action) -> str | None:
    """What `action` repairs without changing a running workspace's spec, or None."""
    observed, desired = action.observed, action.desired
    if desired is None or not desired.provisioned:
        return None
    if action.kind is ActionKind.CREATE:
        return MISSING
    if action.kind is not ActionKind.RECREATE or observed is None:
        return None
    if not observed.running:
        return STOPPED
    return UNHEALTHY if observed.spec_hash == desired.spec_hash else None


def recreate_unhealthy(action: Action, seconds: float) -> Action | None:
    """The RECREATE, at the spec it runs, of a workspace unhealthy for `seconds` (None: not that case)."""
    observed, desired = action.observed, action.desired
    if action.kind is not ActionKind.NOOP or observed is None or desired is None or not desired.provisioned:
        return None
    if not observed.running or observed.spec_hash != desired.spec_hash:
        return None
    return action.model_copy(update={"kind": ActionKind.RECREATE, "restart": True,
                                     "reason": f"unhealthy for {_duration(seconds)}: recreated at the spec it runs"})


def repairs(
    plan: Plan,
    tier: Tier,
    unhealthy: Mapping[str, float] | None = None,
    taken: Collection[str] = (),
) -> tuple[tuple[Action, ...], tuple[str, ...]]:
    """The repairs of `tier` in `plan` (a verified revision's), and a line for each workspace of the
    tier that differs but is left alone. Workspaces in `taken` (repaired by an earlier tier) are skipped."""
    unhealthy = unhealthy or {}
    at = f" {plan.revision[:7]}" if plan.revision else ""
    kept: list[Action] = []
    left: list[str] = []
    for action in plan.for_tier(tier):
        ws, observed = action.workspace_id, action.observed
        if ws in taken or action.kind is ActionKind.DELETE:
            continue
        if action.kind is ActionKind.NOOP:
            recreated = recreate_unhealthy(action, unhealthy[ws]) if ws in unhealthy else None
            if recreated is not None:
                kept.append(recreated)
            continue
        reason = heal_reason(action)
        if reason == MISSING:
            kept.append(action.model_copy(update={"reason": f"missing: created at the last verified revision{at}"}))
        elif reason == STOPPED and observed is not None and observed.tier is not tier:
            left.append(f"{ws}: not running, and in the {observed.tier.value} tier now; left alone")
        elif reason == STOPPED:
            why = f"not running: recreated at the last verified revision{at}"
            kept.append(action.model_copy(update={"reason": why}))
        elif observed is not None and observed.running:
            left.append(f"{ws}: runs another spec than the last verified revision{at} ({action.reason}); left alone")
        else:
            left.append(f"{ws}: {action.reason}; left alone")
    return tuple(kept), tuple(left)


def _duration(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole}s" if whole < 120 else f"{whole // 60}m{whole % 60:02d}s"
