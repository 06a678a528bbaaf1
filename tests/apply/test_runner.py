"""Apply orchestration against the in-memory backend: tiers, gate, rollback, retries, interrupt."""

from __future__ import annotations

import json

from reconciler.errors import ConfigError, Location
from reconciler.model.enums import ActionKind, HealthState, Outcome, Tier
from reconciler.model.events import ActionDone, ApplyEvent, TierDone, TierStarted
from reconciler.report.statuses import run_statuses
from tests.apply.conftest import Harness
from tests.plan.factory import state, ws

C = Tier.CANARY
FLEET = state(ws("c1", tier=C), ws("c2", tier=C), ws("p1"), ws("p2"), ws("p3"))
CANARY_IDS = {"acme/c1", "acme/c2"}
PROD_IDS = {"acme/p1", "acme/p2", "acme/p3"}


def test_canary_tier_is_applied_and_gated_before_production(h: Harness) -> None:
    run = h.converge(FLEET)
    assert run.outcome is Outcome.SUCCESS
    applied = h.backend.applied()
    assert {ws for _, ws in applied[:2]} == CANARY_IDS
    assert {ws for _, ws in applied[2:]} == PROD_IDS
    first_prod_apply = h.backend.calls.index(next(c for c in h.backend.calls if c[1] in PROD_IDS))
    canary_commits = [i for i, c in enumerate(h.backend.calls) if c[0] == "commit" and c[1] in CANARY_IDS]
    assert len(canary_commits) == 2 and max(canary_commits) < first_prod_apply
    canary = run.tier(C)
    assert canary is not None and canary.gate is not None
    assert (canary.gate.healthy, canary.gate.total) == (2, 2)
    assert [type(e) for e in h.events if isinstance(e, TierStarted | TierDone)] == [
        TierStarted, TierDone, TierStarted, TierDone]
    assert sum(1 for e in h.events if isinstance(e, ActionDone)) == 5


def test_canary_gate_failure_rolls_canary_back_and_leaves_production_untouched(h: Harness) -> None:
    old = state(ws("c1", tier=C), ws("c2", tier=C), ws("p1"))
    for w in old.workspaces:
        h.backend.seed(w)
    before = {k: v.spec_hash for k, v in h.backend.workspaces.items()}
    new = state(ws("c1", tier=C, env={"V": "2"}), ws("c2", tier=C, env={"V": "2"}), ws("p1", env={"V": "2"}))
    h.backend.unhealthy.add("acme/c1")
    h.backend.calls.clear()

    run = h.apply(h.plan(new))

    canary, production = run.tier(C), run.tier(Tier.PRODUCTION)
    assert canary is not None and production is not None
    assert canary.outcome is Outcome.FAILED
    assert canary.gate is not None and canary.gate.outcome is Outcome.FAILED
    assert canary.gate.unhealthy == ("acme/c1",)
    assert set(canary.rolled_back) == CANARY_IDS
    assert production.outcome is Outcome.SKIPPED
    assert production.blocked_by == "canary health gate failed"
    assert not [c for c in h.backend.calls if c[1] == "acme/p1"]
    assert {k: v.spec_hash for k, v in h.backend.workspaces.items()} == before
    assert run.outcome is Outcome.FAILED
    canary_line, production_line = run_statuses(run)
    assert (canary_line.state, canary_line.description) == (
        "failure", "canary: health gate failed: acme/c1 unhealthy; rolled back")
    assert (production_line.state, production_line.description) == (
        "failure", "production: not applied: canary health gate failed")


def test_production_gate_failure_rolls_back_production_only(h: Harness) -> None:
    h.backend.unhealthy.add("acme/p2")
    run = h.converge(FLEET)
    assert run.tier(C).outcome is Outcome.SUCCESS  # type: ignore[union-attr]
    production = run.tier(Tier.PRODUCTION)
    assert production is not None and production.outcome is Outcome.FAILED
    assert set(production.rolled_back) == PROD_IDS
    assert set(h.backend.workspaces) == CANARY_IDS  # creates rolled back = removed


def test_unhealthy_sample_must_be_confirmed_and_starting_keeps_waiting(h: Harness) -> None:
    h.backend.health_script["acme/c1"] = [HealthState.STARTING, HealthState.UNHEALTHY, HealthState.STARTING,
                                          HealthState.HEALTHY]
    run = h.converge(FLEET, health_poll_s=1.0)
    assert run.outcome is Outcome.SUCCESS
    assert run.tier(C).gate.duration_s == 3.0  # type: ignore[union-attr]


def test_gate_times_out_on_a_workspace_that_never_becomes_healthy(h: Harness) -> None:
    h.backend.health_script["acme/c1"] = [HealthState.STARTING]
    run = h.converge(FLEET, health_timeout_s=10.0)
    gate = run.tier(C).gate  # type: ignore[union-attr]
    assert gate is not None and gate.outcome is Outcome.FAILED
    assert gate.message == "not healthy after 10s: acme/c1 starting"
    assert run.tier(Tier.PRODUCTION).blocked_by == "canary health gate failed"  # type: ignore[union-attr]


def test_health_unknown_until_timeout_is_an_error_not_a_rollback(h: Harness) -> None:
    h.backend.health_script["acme/c1"] = [HealthState.UNKNOWN]
    run = h.converge(FLEET, health_timeout_s=5.0)
    canary = run.tier(C)
    assert canary is not None and canary.outcome is Outcome.ERROR and canary.rolled_back == ()
    assert not [c for c in h.backend.calls if c[0] == "rollback"]
    assert run.outcome is Outcome.ERROR
    assert [s.state for s in run_statuses(run)] == ["error", "error"]


def test_transient_errors_are_retried_with_backoff_then_succeed(h: Harness) -> None:
    h.backend.transient_failures["acme/p1"] = 2
    run = h.converge(FLEET)
    assert run.outcome is Outcome.SUCCESS
    p1 = next(a for a in run.actions() if a.workspace_id == "acme/p1")
    assert (p1.outcome, p1.attempts, p1.message) == (Outcome.SUCCESS, 3, "created after 3 attempts")
    assert h.clock.sleeps[:2] == [0.5, 1.0]


def test_transient_errors_give_up_after_the_attempts_and_error(h: Harness) -> None:
    h.backend.transient_failures["acme/c1"] = 99
    run = h.converge(FLEET, retry_attempts=3, concurrency=1)
    c1 = next(a for a in run.actions() if a.workspace_id == "acme/c1")
    assert (c1.outcome, c1.attempts) == (Outcome.ERROR, 3)
    assert run.tier(C).outcome is Outcome.ERROR  # type: ignore[union-attr]
    assert run.tier(Tier.PRODUCTION).outcome is Outcome.SKIPPED  # type: ignore[union-attr]
    assert not any(ws in PROD_IDS for _, ws in h.backend.applied())


def test_permanent_backend_error_is_not_retried(h: Harness) -> None:
    h.backend.permanent_failures.add("acme/c2")
    run = h.converge(FLEET, concurrency=1)
    c2 = next(a for a in run.actions() if a.workspace_id == "acme/c2")
    assert (c2.outcome, c2.attempts) == (Outcome.ERROR, 1)
    assert "cannot apply create to acme/c2" in c2.message
    canary = run.tier(C)
    assert canary is not None and canary.outcome is Outcome.ERROR
    assert "acme/c1" in canary.rolled_back and "acme/c1" not in h.backend.workspaces
    assert run.error == canary.message
    canary_line, production_line = run_statuses(run)
    assert canary_line.state == "error" and canary_line.description.startswith("canary: could not apply: acme/c2")
    assert production_line.state == "error" and "not applied" in production_line.description


def test_unreachable_backend_errors_and_touches_nothing_else(h: Harness) -> None:
    the_plan = h.plan(FLEET)
    h.backend.unreachable = True
    run = h.apply(the_plan, concurrency=1)
    assert run.outcome is Outcome.ERROR
    assert [ws for _, ws in h.backend.applied()] == ["acme/c1"] * 4  # retried, then nothing new started
    assert not [c for c in h.backend.calls if c[0] == "commit"]
    assert h.backend.workspaces == {}
    assert run.error is not None and "unreachable" in run.error


def test_interrupt_lets_the_current_action_finish_and_starts_no_new_one(h: Harness) -> None:
    h.backend.before_apply = lambda action: h.stop.set()
    run = h.converge(FLEET, concurrency=1)
    assert run.interrupted
    assert h.backend.applied() == [("create", "acme/c1")]
    assert "acme/c1" in h.backend.workspaces  # the action in flight finished
    canary = run.tier(C)
    assert canary is not None
    assert [(a.workspace_id, a.outcome) for a in canary.actions] == [
        ("acme/c1", Outcome.SUCCESS), ("acme/c2", Outcome.SKIPPED)]
    assert run.tier(Tier.PRODUCTION).blocked_by == "interrupted"  # type: ignore[union-attr]
    assert not [c for c in h.backend.calls if c[0] in ("rollback", "commit")]


def test_interrupt_during_the_gate_ends_the_wait_without_rollback(h: Harness) -> None:
    h.backend.health_script["acme/c1"] = [HealthState.STARTING]
    h.clock.on_sleep = lambda _s: h.stop.set()
    run = h.converge(FLEET)
    gate = run.tier(C).gate  # type: ignore[union-attr]
    assert gate is not None and gate.outcome is Outcome.SKIPPED
    assert run.interrupted and not [c for c in h.backend.calls if c[0] == "rollback"]
    assert not any(ws in PROD_IDS for _, ws in h.backend.applied())


def test_deletes_wait_for_the_gate(h: Harness) -> None:
    h.backend.seed(ws("old", tier=C))
    h.backend.unhealthy.add("acme/c1")
    run = h.converge(FLEET)
    assert "acme/old" in h.backend.workspaces
    old = next(a for a in run.actions() if a.workspace_id == "acme/old")
    assert (old.kind, old.outcome) == (ActionKind.DELETE, Outcome.SKIPPED)


def test_deletes_run_after_a_passed_gate(h: Harness) -> None:
    h.backend.seed(ws("old", tier=C))
    run = h.converge(FLEET)
    assert run.outcome is Outcome.SUCCESS and "acme/old" not in h.backend.workspaces
    assert h.backend.applied()[2] == ("delete", "acme/old")


def test_refused_plan_applies_nothing(h: Harness) -> None:
    for w in FLEET.workspaces:
        h.backend.seed(w)
    refused = h.plan(state())
    h.backend.calls.clear()
    run = h.apply(refused)
    assert run.refused is not None and run.outcome is Outcome.FAILED
    assert h.backend.calls == [] and len(h.backend.workspaces) == 5
    assert all(t.outcome is Outcome.SKIPPED and t.blocked_by for t in run.tiers)


def test_reapply_on_a_converged_state_is_a_noop_that_touches_nothing(h: Harness) -> None:
    h.converge(FLEET)
    refs = {k: v.backend_ref for k, v in h.backend.workspaces.items()}
    h.backend.calls.clear()
    again = h.plan(FLEET)
    assert again.changes() == ()
    run = h.apply(again)
    assert run.outcome is Outcome.SUCCESS
    assert [c for c in h.backend.calls if c[0] != "list"] == []
    assert {k: v.backend_ref for k, v in h.backend.workspaces.items()} == refs


def test_skill_only_update_keeps_the_container(h: Harness) -> None:
    h.converge(FLEET)
    ref = h.backend.workspaces["acme/p1"].backend_ref
    changed = state(*[w for w in FLEET.workspaces if w.id != "acme/p1"], ws("p1", skills_hash="skills-2"))
    the_plan = h.plan(changed)
    assert [(a.kind, a.restart) for a in the_plan.changes()] == [(ActionKind.UPDATE, False)]
    h.apply(the_plan)
    assert h.backend.workspaces["acme/p1"].backend_ref == ref
    assert h.plan(changed).changes() == ()


def test_secret_values_reach_the_workload_env_only(h: Harness) -> None:
    desired = state(ws("s", secrets={"TOKEN": "digest-1"}))
    run = h.converge(desired)
    assert h.backend.secret_env["acme/s"] == {"TOKEN": "value-of-TOKEN"}
    assert "value-of-TOKEN" not in json.dumps(run.model_dump(mode="json"))
    assert "value-of-TOKEN" not in repr(h.events)


def test_a_missing_secret_fails_the_workspace_as_a_config_failure(h: Harness) -> None:
    def secrets(w):
        raise ConfigError(f"secret TOKEN for {w.id} not found", Location("orgs/acme/org.yaml", 7, 3))

    run = h.converge(state(ws("s", tier=C, secrets={"TOKEN": "d"}), ws("p")), secrets=secrets)
    canary = run.tier(C)
    assert canary is not None and canary.outcome is Outcome.FAILED
    assert canary.message == "acme/s: orgs/acme/org.yaml:7:3: secret TOKEN for acme/s not found"
    assert run.outcome is Outcome.FAILED and h.backend.applied() == []
    assert run.tier(Tier.PRODUCTION).blocked_by == "canary failed"  # type: ignore[union-attr]


def test_a_failing_event_listener_never_breaks_the_run(h: Harness) -> None:
    def listener(event: ApplyEvent) -> None:
        raise RuntimeError("printer broke")

    assert h.converge(FLEET, on_event=listener).outcome is Outcome.SUCCESS
