"""Fixture table for the planner: (desired, observed) in, (kind, reason, restart) out."""

from __future__ import annotations

import pytest

from reconciler.model.desired import DesiredWorkspace
from reconciler.model.enums import ActionKind, Mode, Tier
from reconciler.model.observed import ObservedWorkspace
from reconciler.plan import PlanPolicy, plan
from tests.plan.factory import observed, state, ws

CANARY = Tier.CANARY
OLD = ws("a", env={"FOO": "1"}, secrets={"TOKEN": "digest-1"}, plugins=(("git", "1" * 40),))


def single(want: DesiredWorkspace | None, have: ObservedWorkspace | None, mode: Mode = Mode.MERGE):
    """Plan one workspace (merge mode unless told: no guard interferes with a one-workspace table)."""
    desired = state(*([want] if want else []))
    actions = plan(desired, [have] if have else [], PlanPolicy(mode=mode, allow_empty=True)).actions
    assert len(actions) == 1
    return actions[0]


CASES = [
    # id, desired, observed, kind, reason (substring), restart
    ("create", OLD, None, ActionKind.CREATE, "not running", True),
    ("up to date", OLD, observed(OLD), ActionKind.NOOP, "up to date", True),
    ("skill only", ws("a", env={"FOO": "1"}, secrets={"TOKEN": "digest-1"}, plugins=(("git", "1" * 40),),
                      skills_hash="skills-2"), observed(OLD),
     ActionKind.UPDATE, "SKILL.md changed: no restart", False),
    ("files", ws("a", env={"FOO": "1"}, secrets={"TOKEN": "digest-1"}, plugins=(("git", "1" * 40),),
                 files_hash="files-2"), observed(OLD),
     ActionKind.UPDATE, "files changed: in place, restart", True),
    ("plugin sha", ws("a", env={"FOO": "1"}, secrets={"TOKEN": "digest-1"}, plugins=(("git", "2" * 40),)),
     observed(OLD), ActionKind.UPDATE, "plugins changed", True),
    ("env changed", ws("a", env={"FOO": "2"}, secrets={"TOKEN": "digest-1"}, plugins=(("git", "1" * 40),)),
     observed(OLD), ActionKind.RECREATE, "env changed: FOO", True),
    ("env added", ws("a", env={"FOO": "1", "BAR": "x"}, secrets={"TOKEN": "digest-1"},
                     plugins=(("git", "1" * 40),)), observed(OLD), ActionKind.RECREATE, "env added: BAR", True),
    ("env removed", ws("a", secrets={"TOKEN": "digest-1"}, plugins=(("git", "1" * 40),)),
     observed(OLD), ActionKind.RECREATE, "env removed: FOO", True),
    ("secret rotated", ws("a", env={"FOO": "1"}, secrets={"TOKEN": "digest-2"}, plugins=(("git", "1" * 40),)),
     observed(OLD), ActionKind.RECREATE, "secrets rotated: TOKEN", True),
    ("image", ws("a", env={"FOO": "1"}, secrets={"TOKEN": "digest-1"}, plugins=(("git", "1" * 40),),
                 image="127.0.0.1:5000/ws-claude:v2"), observed(OLD),
     ActionKind.RECREATE, "image 127.0.0.1:5000/ws-claude:v1 → 127.0.0.1:5000/ws-claude:v2", True),
    ("parent", ws("a", env={"FOO": "1"}, secrets={"TOKEN": "digest-1"}, plugins=(("git", "1" * 40),),
                  parent="acme/boss"), observed(OLD), ActionKind.RECREATE, "moved under acme/boss", True),
    ("resources", ws("a", env={"FOO": "1"}, secrets={"TOKEN": "digest-1"}, plugins=(("git", "1" * 40),),
                     cpus=2), observed(OLD), ActionKind.RECREATE, "resources changed", True),
    ("not running", OLD, observed(OLD, running=False), ActionKind.RECREATE, "container not running", True),
    ("no parts", OLD, observed(OLD, spec_hash="legacy", spec_parts={}), ActionKind.RECREATE,
     "spec hash differs", True),
    ("external", ws("a", provisioned=False), None, ActionKind.NOOP, "runtime external", True),
    ("external kept", ws("a", provisioned=False), observed(OLD), ActionKind.NOOP, "runtime external", True),
]


@pytest.mark.parametrize(("want", "have", "kind", "reason", "restart"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_classify(want, have, kind, reason, restart) -> None:
    action = single(want, have)
    assert action.kind is kind
    assert reason in action.reason
    assert action.restart is restart
    assert action.workspace_id == "acme/a"


def test_recreate_names_every_difference_in_a_fixed_order() -> None:
    want = ws("a", env={"FOO": "2"}, secrets={"TOKEN": "digest-1"}, plugins=(("git", "1" * 40),),
              image="127.0.0.1:5000/ws-claude:v2", files_hash="files-9")
    action = single(want, observed(OLD))
    assert action.kind is ActionKind.RECREATE
    assert action.reason == ("image 127.0.0.1:5000/ws-claude:v1 → 127.0.0.1:5000/ws-claude:v2; "
                             "env changed: FOO; files changed")


def test_reason_never_holds_values() -> None:
    want = ws("a", env={"FOO": "new-value-xyz"}, secrets={"TOKEN": "digest-new"}, plugins=(("git", "1" * 40),))
    action = single(want, observed(OLD))
    for value in ("new-value-xyz", "digest-new", "digest-1", want.spec_parts["env.FOO"]):
        assert value not in action.reason


def test_tier_move_is_a_recreate_in_the_new_tier() -> None:
    want = ws("a", tier=CANARY, env={"FOO": "1"}, secrets={"TOKEN": "digest-1"}, plugins=(("git", "1" * 40),))
    action = single(want, observed(OLD))
    assert (action.kind, action.tier) == (ActionKind.RECREATE, CANARY)
    assert "tier production → canary" in action.reason


def test_observed_only_is_deleted_in_reconcile_mode_and_kept_in_merge_mode() -> None:
    keep, gone = ws("keep"), ws("gone")
    actual = [observed(keep), observed(gone)]
    deleted = plan(state(keep), actual, PlanPolicy(mode=Mode.RECONCILE, max_delete=5))
    assert [(a.kind, a.workspace_id, a.reason) for a in deleted.changes()] == [
        (ActionKind.DELETE, "acme/gone", "not in repo")]
    merged = plan(state(keep), actual, PlanPolicy(mode=Mode.MERGE))
    assert merged.changes() == ()
    assert [a.reason for a in merged.actions if a.workspace_id == "acme/gone"] == ["not in repo; kept (merge mode)"]


def test_external_is_never_matched_for_delete() -> None:
    ext, other = ws("ext", provisioned=False), ws("b")
    result = plan(state(ext, other), [observed(ws("ext")), observed(other)], PlanPolicy())
    assert result.changes() == ()
    assert result.refused is None


def test_order_canary_first_deletes_last_sorted_by_id() -> None:
    desired = state(ws("p2"), ws("p1"), ws("c2", tier=CANARY), ws("c1", tier=CANARY))
    actual = [observed(ws("zc", tier=CANARY)), observed(ws("ap")), observed(ws("p1", env={"X": "1"}))]
    result = plan(desired, actual, PlanPolicy(max_delete=10))
    assert [(a.tier.value, a.kind.value, a.workspace_id) for a in result.actions] == [
        ("canary", "create", "acme/c1"),
        ("canary", "create", "acme/c2"),
        ("canary", "delete", "acme/zc"),
        ("production", "recreate", "acme/p1"),
        ("production", "create", "acme/p2"),
        ("production", "delete", "acme/ap"),
    ]


def test_plan_is_deterministic_whatever_the_observed_order() -> None:
    desired = state(ws("a"), ws("b", tier=CANARY), ws("c", env={"K": "v"}))
    actual = [observed(ws("c")), observed(ws("a")), observed(ws("d"))]
    policy = PlanPolicy(max_delete=3)
    assert plan(desired, actual, policy) == plan(desired, list(reversed(actual)), policy)


def test_duplicate_observed_workspaces_keep_the_running_one() -> None:
    a = ws("a")
    actual = [observed(a, ref="r2", running=False), observed(a, ref="r1")]
    result = plan(state(a), actual, PlanPolicy(max_delete=2))
    kinds = [(x.kind, x.observed.backend_ref if x.observed else None, x.reason) for x in result.actions]
    assert kinds == [(ActionKind.NOOP, "r1", "up to date"), (ActionKind.DELETE, "r2", "duplicate of acme/a")]


def test_plan_carries_revision_and_mode() -> None:
    result = plan(state(ws("a"), revision="c" * 40), [], PlanPolicy(mode=Mode.MERGE))
    assert (result.revision, result.mode) == ("c" * 40, Mode.MERGE)
