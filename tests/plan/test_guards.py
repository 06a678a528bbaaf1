"""Guards: a refused plan says why in words a person can act on, and changes nothing."""

from __future__ import annotations

import pytest

from reconciler.model.enums import ActionKind, Mode
from reconciler.plan import PlanPolicy, plan
from tests.plan.factory import observed, state, ws

MANAGED = [observed(ws(f"w{i}")) for i in range(8)]


def test_empty_desired_state_is_refused_while_managed_workspaces_exist() -> None:
    result = plan(state(), MANAGED, PlanPolicy())
    assert result.refused == (
        "desired state is empty but 8 managed workspaces exist; pass --allow-empty to delete them all"
    )
    assert [(a.kind, a.reason) for a in result.actions] == [(ActionKind.DELETE, "not in repo")] * 8  # shown only


def test_allow_empty_deletes_them_all_within_the_cap() -> None:
    result = plan(state(), MANAGED, PlanPolicy(allow_empty=True, max_delete=8))
    assert result.refused is None
    assert [a.kind for a in result.actions] == [ActionKind.DELETE] * 8


def test_allow_empty_still_obeys_the_delete_cap() -> None:
    result = plan(state(), MANAGED, PlanPolicy(allow_empty=True))
    assert result.refused is not None
    assert result.refused.startswith("would delete 8 workspaces, more than --max-delete 2")


def test_only_external_workspaces_count_as_empty() -> None:
    result = plan(state(ws("ext", provisioned=False)), MANAGED, PlanPolicy(max_delete=100))
    assert result.refused is not None and "desired state is empty" in result.refused


def test_empty_desired_and_nothing_managed_is_fine() -> None:
    assert plan(state(), [], PlanPolicy()).refused is None


def test_merge_mode_never_refuses_an_empty_state_because_it_never_deletes() -> None:
    result = plan(state(), MANAGED, PlanPolicy(mode=Mode.MERGE))
    assert result.refused is None and result.changes() == ()


@pytest.mark.parametrize(("managed", "deletes", "refused"), [
    (8, 2, False),  # default cap: max(1, 8 // 4) = 2
    (8, 3, True),
    (2, 1, False),  # max(1, 0) = 1
    (3, 2, True),
    (100, 25, False),
    (100, 26, True),
])
def test_default_delete_cap_is_a_quarter_of_managed_at_least_one(managed: int, deletes: int, refused: bool) -> None:
    keep = [ws(f"w{i}") for i in range(managed - deletes)]
    actual = [observed(ws(f"w{i}")) for i in range(managed)]
    result = plan(state(*keep), actual, PlanPolicy())
    assert (result.refused is not None) is refused
    if refused:
        assert result.refused.startswith(f"would delete {deletes} workspaces, more than --max-delete")
        assert "raise --max-delete" in result.refused


def test_explicit_max_delete_zero_forbids_every_delete() -> None:
    result = plan(state(*[ws(f"w{i}") for i in range(7)]), MANAGED, PlanPolicy(max_delete=0))
    assert result.refused == (
        "would delete 1 workspace, more than --max-delete 0; check the repo, then raise --max-delete "
        "to at least 1 (or use --mode merge)"
    )


def test_a_refused_plan_keeps_every_action_so_the_table_shows_what_was_refused() -> None:
    desired = state(ws("new"), *[ws(f"w{i}") for i in range(4)])
    result = plan(desired, MANAGED, PlanPolicy(max_delete=1))
    assert result.refused is not None
    creates = [a for a in result.actions if a.workspace_id == "acme/new"]
    assert creates[0].kind is ActionKind.CREATE and creates[0].reason == "not running"
