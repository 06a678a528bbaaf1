"""Repairs (pure): what healing may take from a verified revision's plan.

A table of (desired at the verified revision, what runs) -> repaired or left alone: missing and
stopped come back, unhealthy-for-too-long is recreated at the spec it runs, nothing running is
ever moved to another spec (no downgrade), nothing is deleted, a later tier never re-does a
workspace an earlier tier repaired.
"""

from __future__ import annotations

import pytest

from reconciler.model.enums import ActionKind, HealthState, Mode, Tier
from reconciler.plan import PlanPolicy, plan
from reconciler.plan.heal import heal_reason, repairs, restrict
from tests.plan.factory import observed, state, ws

CANARY, PROD = Tier.CANARY, Tier.PRODUCTION
A = ws("a", env={"V": "1"})
A_NEWER = ws("a", env={"V": "2"})
B = ws("b", tier=CANARY)


def verified_plan(*have: object, want: tuple[object, ...] = (A, B)):  # type: ignore[no-untyped-def]
    return plan(state(*want), list(have), PlanPolicy(mode=Mode.RECONCILE, allow_empty=True))  # type: ignore[arg-type]


CASES = [
    # id, observed, unhealthy, kept (ws, kind, reason prefix) or None, left (substring) or None
    ("missing", [observed(B)], {}, ("acme/a", ActionKind.CREATE, "missing: created at the last verified"), None),
    ("stopped", [observed(A, running=False), observed(B)], {},
     ("acme/a", ActionKind.RECREATE, "not running: recreated at the last verified"), None),
    ("stopped at another spec", [observed(A_NEWER, running=False), observed(B)], {},
     ("acme/a", ActionKind.RECREATE, "not running"), None),
    ("stopped, moved to canary", [observed(A, running=False, tier=CANARY), observed(B)], {}, None,
     "in the canary tier now"),
    ("running newer: no downgrade", [observed(A_NEWER), observed(B)], {}, None, "runs another spec"),
    ("running newer and unhealthy: no downgrade", [observed(A_NEWER, health=HealthState.UNHEALTHY), observed(B)],
     {"acme/a": 400.0}, None, "runs another spec"),
    ("unhealthy too long", [observed(A, health=HealthState.UNHEALTHY), observed(B)], {"acme/a": 400.0},
     ("acme/a", ActionKind.RECREATE, "unhealthy for 6m40s: recreated at the spec it runs"), None),
    ("healthy", [observed(A), observed(B)], {}, None, None),
]


@pytest.mark.parametrize(("have", "unhealthy", "kept", "left"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_repairs_of_the_production_tier(have, unhealthy, kept, left) -> None:  # type: ignore[no-untyped-def]
    actions, lines = repairs(verified_plan(*have), PROD, unhealthy)
    assert [(a.workspace_id, a.kind) for a in actions] == ([kept[:2]] if kept else [])
    if kept:
        assert actions[0].reason.startswith(kept[2]) and actions[0].desired == A
    assert (left is None and lines == ()) or (left is not None and len(lines) == 1 and left in lines[0])


def test_repairs_never_delete_and_skip_what_an_earlier_tier_repaired() -> None:
    stray = observed(ws("gone"))
    actions, lines = repairs(verified_plan(observed(B), stray), PROD)
    assert [(a.workspace_id, a.kind) for a in actions] == [("acme/a", ActionKind.CREATE)] and lines == ()
    assert repairs(verified_plan(observed(B)), PROD, taken={"acme/a"}) == ((), ())
    assert restrict(verified_plan(observed(B), stray), PROD).actions[-1].kind is ActionKind.DELETE


def test_a_converged_heads_plan_repairs_only_unhealthy_workspaces_at_their_spec() -> None:
    unwell = observed(A, health=HealthState.UNHEALTHY)
    p = verified_plan(unwell, observed(B))  # no drift
    canary, _ = repairs(p, CANARY, {"acme/a": 90.0, "acme/b": 90.0})
    production, _ = repairs(p, PROD, {"acme/a": 90.0, "acme/b": 90.0})
    assert [(a.workspace_id, a.kind) for a in canary + production] == [("acme/b", ActionKind.RECREATE),
                                                                      ("acme/a", ActionKind.RECREATE)]
    assert production[0].reason == "unhealthy for 90s: recreated at the spec it runs"
    assert [heal_reason(a) for a in canary + production] == ["unhealthy", "unhealthy"]
    newer = verified_plan(observed(A_NEWER), observed(B))
    assert heal_reason(next(a for a in newer.actions if a.workspace_id == "acme/a")) is None  # a spec change
