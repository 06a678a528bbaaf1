"""Commit status lines: contexts, states and one-line descriptions from results (pure)."""

from __future__ import annotations

import pytest

from reconciler.model.enums import ActionKind, Outcome, Tier
from reconciler.model.results import ActionResult, GateResult, RunResult, TierResult
from reconciler.report.statuses import (
    StatusLine,
    config_error_statuses,
    error_statuses,
    run_statuses,
    superseded_statuses,
    tier_pending,
    tier_status,
)

C, P = Tier.CANARY, Tier.PRODUCTION


def act(ws: str, kind: ActionKind, outcome: Outcome = Outcome.SUCCESS, tier: Tier = C) -> ActionResult:
    return ActionResult(workspace_id=ws, kind=kind, tier=tier, outcome=outcome)


def passed(tier: Tier, *actions: ActionResult, healthy: int = 3, duration: float = 14.2) -> TierResult:
    gate = GateResult(tier=tier, healthy=healthy, total=healthy, outcome=Outcome.SUCCESS)
    return TierResult(tier=tier, outcome=Outcome.SUCCESS, actions=actions, gate=gate, duration_s=duration)


CANARY_OK = passed(C, act("acme/a", ActionKind.CREATE), act("acme/b", ActionKind.CREATE),
                   act("acme/c", ActionKind.UPDATE))
GATE_FAILED = TierResult(
    tier=C, outcome=Outcome.FAILED, actions=(act("acme/x", ActionKind.RECREATE),),
    gate=GateResult(tier=C, healthy=0, total=1, outcome=Outcome.FAILED, unhealthy=("acme/x",),
                    message="acme/x unhealthy"),
    rolled_back=("acme/x",), message="health gate failed: acme/x unhealthy",
)
BLOCKED = TierResult(tier=P, outcome=Outcome.SKIPPED, blocked_by="canary health gate failed")


def test_pending_at_tier_start() -> None:
    assert tier_pending(C, 2) == StatusLine("reconciler/canary", "pending", "canary: applying 2 changes")
    assert tier_pending(P, 1).description == "production: applying 1 change"
    assert tier_status(P, None).state == "pending"


def test_success_line_has_counts_health_and_duration() -> None:
    assert tier_status(C, CANARY_OK) == StatusLine(
        "reconciler/canary", "success", "canary: 2 created, 1 updated · 3/3 healthy in 14s")


def test_success_without_changes() -> None:
    result = TierResult(tier=P, outcome=Outcome.SUCCESS, unchanged=5)
    assert tier_status(P, result).description == "production: up to date (5 unchanged)"


def test_only_deletes_has_no_health_part() -> None:
    result = TierResult(tier=P, outcome=Outcome.SUCCESS, actions=(act("acme/z", ActionKind.DELETE, tier=P),),
                        gate=GateResult(tier=P, healthy=0, total=0, outcome=Outcome.SUCCESS), duration_s=0.42)
    assert tier_status(P, result).description == "production: 1 deleted in 0.4s"


def test_gate_failure_and_blocked_production() -> None:
    run = RunResult(outcome=Outcome.FAILED, tiers=(GATE_FAILED, BLOCKED))
    assert run_statuses(run) == [
        StatusLine("reconciler/canary", "failure", "canary: health gate failed: acme/x unhealthy; rolled back"),
        StatusLine("reconciler/production", "failure", "production: not applied: canary health gate failed"),
    ]


def test_backend_error_is_error_and_blocks_production_as_error() -> None:
    errored = TierResult(tier=C, outcome=Outcome.ERROR,
                         actions=(act("acme/a", ActionKind.CREATE, Outcome.ERROR),),
                         message="acme/a: docker engine unreachable")
    blocked = TierResult(tier=P, outcome=Outcome.SKIPPED, blocked_by="canary could not be applied (reconciler error)")
    canary, production = run_statuses(RunResult(outcome=Outcome.ERROR, tiers=(errored, blocked)))
    assert (canary.state, canary.description) == ("error", "canary: could not apply: acme/a: docker engine unreachable")
    assert production.state == "error"
    assert production.description == "production: not applied: canary could not be applied (reconciler error)"


def test_refused_run_fails_both_contexts() -> None:
    run = RunResult(outcome=Outcome.FAILED, refused="desired state is empty but 3 managed workspaces exist; "
                    "pass --allow-empty to delete them all")
    lines = run_statuses(run)
    assert [line.state for line in lines] == ["failure", "failure"]
    assert lines[0].description.startswith("canary: refused: desired state is empty")
    assert all(len(line.description) <= 140 for line in lines)


def test_config_error_fails_both_contexts_with_file_and_line() -> None:
    lines = config_error_statuses("orgs/acme/org.yaml:12:5: unknown key 'tierr'\norgs/acme/org.yaml:20:1: other")
    assert [(line.context, line.state) for line in lines] == [
        ("reconciler/canary", "failure"), ("reconciler/production", "failure")]
    assert lines[0].description == "invalid config: orgs/acme/org.yaml:12:5: unknown key 'tierr'"


def test_error_statuses_before_any_tier() -> None:
    lines = error_statuses("docker engine unreachable")
    assert [line.description for line in lines] == [
        "canary: not applied: docker engine unreachable", "production: not applied: docker engine unreachable"]
    assert {line.state for line in lines} == {"error"}


@pytest.mark.parametrize("message", ["x" * 500, "line one\nline two", "  spaced   out  "])
def test_descriptions_are_one_short_line(message: str) -> None:
    for line in config_error_statuses(message) + error_statuses(message):
        assert len(line.description) <= 140 and "\n" not in line.description


def test_interrupted_tier_is_an_error() -> None:
    result = TierResult(tier=C, outcome=Outcome.SKIPPED, actions=(act("acme/a", ActionKind.CREATE),),
                        message="interrupted")
    line = tier_status(C, result)
    assert (line.state, line.description) == ("error", "canary: interrupted after 1 created; not verified")


def test_a_superseded_commit_is_a_warning_naming_its_successor() -> None:
    lines = superseded_statuses("f" * 40, verified=False)
    assert [(line.context, line.state) for line in lines] == [
        ("reconciler/canary", "warning"), ("reconciler/production", "warning")]
    assert lines[0].description == f"canary: superseded by {'f' * 12} before it was applied"
