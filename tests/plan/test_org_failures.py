"""An org that failed to render: what runs for it is kept (NOOP), never deleted or changed, the guards
leave it out, and every rendering names it with its first file:line."""

from __future__ import annotations

import json

from reconciler.model.desired import DesiredState, OrgFailure
from reconciler.model.enums import ActionKind, Mode, Tier
from reconciler.plan import PlanPolicy, plan, plan_to_json, render_markdown, render_table
from reconciler.plan.diff import FAILED_ORG_REASON
from tests.plan.factory import observed, state, ws

BETA = OrgFailure(org="beta", file="orgs/beta/org.yaml", line=7, column=5,
                  message="beta/lead: required_env missing: API_URL (set them in env or secrets)",
                  errors=("orgs/beta/org.yaml:7:5: beta/lead: required_env missing: API_URL (set them in env or "
                          "secrets)", "orgs/beta/team.yaml:2:3: beta/x: runtime is required"))


def with_failure(desired: DesiredState, *failures: OrgFailure, orgs: tuple[str, ...] = ("alpha",)) -> DesiredState:
    return desired.model_copy(update={"failed_orgs": failures, "orgs": orgs})


BETA_RUNNING = [observed(ws("lead", org="beta", tier=Tier.CANARY)), observed(ws("w1", org="beta")),
                observed(ws("w2", org="beta"))]


def test_what_runs_for_a_failed_org_is_kept_and_the_rest_converges() -> None:
    alpha = [ws("a", org="alpha", tier=Tier.CANARY, env={"V": "2"}), ws("b", org="alpha")]
    actual = [observed(ws("a", org="alpha", tier=Tier.CANARY, env={"V": "1"})), observed(alpha[1]),
              observed(ws("gone", org="alpha")), *BETA_RUNNING]

    result = plan(with_failure(state(*alpha), BETA), actual, PlanPolicy(max_delete=5))

    kinds = {a.workspace_id: (a.kind, a.reason) for a in result.actions}
    assert kinds["alpha/a"][0] is ActionKind.RECREATE and kinds["alpha/b"][0] is ActionKind.NOOP
    assert kinds["alpha/gone"] == (ActionKind.DELETE, "not in repo")
    for ws_id in ("beta/lead", "beta/w1", "beta/w2"):
        assert kinds[ws_id] == (ActionKind.NOOP, FAILED_ORG_REASON)
    assert result.refused is None and result.failed_orgs == (BETA,) and result.orgs == ("alpha",)
    assert result.failure_text() == f"org beta failed: {BETA.first()}"


def test_a_duplicate_of_a_failed_org_is_kept_too() -> None:
    lead = ws("lead", org="beta")
    result = plan(with_failure(state(), BETA, orgs=()), [observed(lead, "r1"), observed(lead, "r2")], PlanPolicy())
    assert [(a.kind, a.reason) for a in result.actions] == [(ActionKind.NOOP, FAILED_ORG_REASON)] * 2
    assert result.changes() == ()


def test_merge_mode_keeps_them_for_the_same_reason() -> None:
    result = plan(with_failure(state(), BETA), BETA_RUNNING, PlanPolicy(mode=Mode.MERGE))
    assert {a.reason for a in result.actions} == {FAILED_ORG_REASON}


def test_the_guards_do_not_count_a_failed_org() -> None:
    # 8 of beta + 4 of alpha run; alpha is emptied of one: the cap is 25% of alpha's 4 (1), not of 12 (3)
    beta = [observed(ws(f"b{i}", org="beta")) for i in range(8)]
    alpha = [ws(f"a{i}", org="alpha") for i in range(4)]
    actual = [*beta, *[observed(a) for a in alpha]]
    one_gone = plan(with_failure(state(*alpha[1:]), BETA), actual, PlanPolicy())
    assert one_gone.refused is None and len(one_gone.changes()) == 1
    two_gone = plan(with_failure(state(*alpha[2:]), BETA), actual, PlanPolicy())
    assert two_gone.refused is not None and "more than --max-delete 1" in two_gone.refused


def test_an_org_left_with_nothing_is_still_refused_as_empty() -> None:
    actual = [*BETA_RUNNING, observed(ws("a", org="alpha"))]
    result = plan(with_failure(state(), BETA), actual, PlanPolicy())
    assert result.refused is not None and "desired state is empty but 1 managed workspace exist" in result.refused


def test_nothing_but_a_failed_org_running_is_no_empty_state() -> None:
    result = plan(with_failure(state(ws("a", org="alpha")), BETA), BETA_RUNNING, PlanPolicy())
    assert result.refused is None and [a.kind for a in result.changes()] == [ActionKind.CREATE]


def test_renderings_name_the_org_every_error_and_what_is_kept() -> None:
    result = plan(with_failure(state(ws("a", org="alpha")), BETA), BETA_RUNNING, PlanPolicy())

    text = render_table(result)
    assert "FAILED: org beta did not render; its 3 running workspaces are kept as they are:" in text
    assert "  orgs/beta/org.yaml:7:5: beta/lead: required_env missing: API_URL" in text
    assert "  orgs/beta/team.yaml:2:3: beta/x: runtime is required" in text
    assert "Plan: 1 to create, 0 to update, 0 to recreate, 0 to delete, 3 unchanged." in text

    doc = json.loads(json.dumps(plan_to_json(result)))
    assert doc["failed_orgs"] == [{"org": "beta", "file": "orgs/beta/org.yaml", "line": 7, "column": 5,
                                   "message": BETA.message, "errors": list(BETA.errors), "kept": 3}]
    assert {a["reason"] for a in doc["actions"] if a["workspace_id"].startswith("beta/")} == {FAILED_ORG_REASON}

    markdown = render_markdown(result, "c" * 40)
    assert "> **Failed:** org beta did not render" in markdown and "orgs/beta/org.yaml:7:5" in markdown


def test_a_plan_without_failures_says_nothing_about_them() -> None:
    result = plan(state(ws("a", org="alpha")), [], PlanPolicy())
    assert result.failed_orgs == () and result.failure_text() is None
    assert "FAILED" not in render_table(result) and plan_to_json(result)["failed_orgs"] == []
