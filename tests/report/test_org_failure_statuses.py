"""Statuses of a pass where one org failed to render: each tier is `failure` even where the other orgs
converged, and the description names the org, its first file:line and what converged (the error is
cut to fit 140 characters, never the org or the count)."""

from __future__ import annotations

from reconciler.model.desired import OrgFailure
from reconciler.model.enums import ActionKind, Outcome, StatusState, Tier
from reconciler.model.plan import Action, Plan
from reconciler.model.results import RunResult, TierResult
from reconciler.model.text import DESCRIPTION_LIMIT
from reconciler.report.statuses import plan_status, run_statuses
from tests.report.test_statuses import BLOCKED, CANARY_OK, GATE_FAILED

C, P = Tier.CANARY, Tier.PRODUCTION
BETA = OrgFailure(org="beta", file="orgs/beta/workspaces.yaml", line=7, column=3,
                  message="beta/lead: required_env missing: API_URL (set them in env or secrets)")
PLAN = Plan(revision="a" * 40, orgs=("alpha", "gamma"), failed_orgs=(BETA,))
PROD_OK = TierResult(tier=P, outcome=Outcome.SUCCESS, unchanged=2)


def test_converged_tiers_are_failure_naming_the_org_and_what_converged() -> None:
    lines = run_statuses(RunResult(tiers=(CANARY_OK, PROD_OK), outcome=Outcome.SUCCESS), PLAN)
    assert [s.state for s in lines] == [StatusState.FAILURE, StatusState.FAILURE]
    assert lines[0].description.startswith("canary: org beta failed: orgs/beta/workspaces.yaml:7:3: beta/lead")
    assert lines[0].description.endswith("; 2 other org(s) converged")
    assert lines[1].description.startswith("production: org beta failed: orgs/beta/workspaces.yaml:7:3:")
    assert all(len(s.description) <= DESCRIPTION_LIMIT for s in lines)


def test_a_long_error_is_cut_in_the_middle() -> None:
    long = BETA.model_copy(update={"message": "x" * 500})
    plan = PLAN.model_copy(update={"failed_orgs": (long, BETA.model_copy(update={"org": "delta"}))})
    (line, _) = run_statuses(RunResult(tiers=(CANARY_OK, PROD_OK), outcome=Outcome.SUCCESS), plan)
    assert len(line.description) == DESCRIPTION_LIMIT
    assert line.description.startswith("canary: orgs beta, delta failed: orgs/beta/workspaces.yaml:7:3: xxx")
    assert line.description.endswith("x…; 2 other org(s) converged")


def test_a_tier_that_failed_on_its_own_says_that_first() -> None:
    lines = run_statuses(RunResult(tiers=(GATE_FAILED, BLOCKED), outcome=Outcome.FAILED), PLAN)
    assert [s.state for s in lines] == [StatusState.FAILURE, StatusState.FAILURE]
    assert lines[0].description.startswith("canary: health gate failed: acme/x unhealthy; rolled back")
    assert lines[0].description.endswith("; org beta failed to render")
    assert lines[1].description.startswith("production: not applied: canary health gate failed")


def test_a_refused_plan_stays_refused() -> None:
    lines = run_statuses(RunResult(refused="would delete 9 workspaces", outcome=Outcome.FAILED), PLAN)
    assert all(s.description.endswith("refused: would delete 9 workspaces") for s in lines)


def test_without_a_failed_org_nothing_changes() -> None:
    lines = run_statuses(RunResult(tiers=(CANARY_OK, PROD_OK), outcome=Outcome.SUCCESS), Plan())
    assert [s.state for s in lines] == [StatusState.SUCCESS, StatusState.SUCCESS]


def test_the_pull_request_status_is_failure_with_the_counts_of_the_others() -> None:
    created = Action(kind=ActionKind.CREATE, workspace_id="alpha/a", tier=C, reason="not running")
    line = plan_status(PLAN.model_copy(update={"actions": (created,)}))
    assert line.state is StatusState.FAILURE
    assert line.description.startswith("org beta failed: orgs/beta/workspaces.yaml:7:3:")
    assert line.description.endswith("; others: +1 ~0 -/+0 -0 =0")
