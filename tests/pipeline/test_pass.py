"""The whole pipeline without an engine: a config repo on disk, the in-memory backend, a recording forge.

What a user relies on from one pass: it converges canary first and says so on the commit, a broken
push changes nothing and says where, a backend that is down is `error` (not `failure`), a version
that failed its gate is held on the next pass, and the run page shows the plan, escaped.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from reconciler.daemon.journal import Journal
from reconciler.daemon.pages import run_page
from reconciler.model.enums import ActionKind, RunKind, RunStatus, StatusState, Tier
from reconciler.model.events import ActionDone, ApplyEvent
from reconciler.pipeline.passes import ForgePoster, apply_and_report, plan_revision, run_pass
from reconciler.pipeline.stages import Planned
from reconciler.plan import plan_to_json
from reconciler.report.comments import plan_comment
from reconciler.report.statuses import plan_status
from reconciler.source.checkout import Checkout
from tests.support.fakes import FakeForge, memory_parts

IMAGE = "127.0.0.1:5000/agent@sha256:" + "a" * 64


def write_repo(root: Path, *, env: str = "1", broken: bool = False) -> Checkout:
    """The config repo as a commit: its SHA stands for its content (a revision never changes)."""
    files = {
        "images.yaml": {"images": {"claude-code": IMAGE}},
        "orgs/acme/org.yaml": {
            "name": "Acme",
            "defaults": {"runtime": "claude-code", "env": {"ROUND": env}},
            "workspaces": [{"name": "Canary", "key": "canary", "tier": "canry" if broken else "canary"},
                           {"name": "Prod", "key": "prod"}, {"name": "Second", "key": "second"}],
        },
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return Checkout(root, sha_of(env, broken), "main")


def sha_of(env: str = "1", broken: bool = False) -> str:
    return hashlib.sha1(f"{env}{broken}".encode()).hexdigest()


def test_a_pass_converges_canary_first_and_reports_each_tier(tmp_path: Path) -> None:
    forge = FakeForge()
    parts = memory_parts(tmp_path / "state", forge=forge, public_url="http://r.example")
    events: list[ApplyEvent] = []
    outcome = run_pass(write_repo(tmp_path / "repo"), parts, poster=ForgePoster(forge),
                       target_url="http://r.example/runs/1", on_event=events.append)
    assert outcome.status is RunStatus.SUCCESS and outcome.exit_code == 0
    done = [e.result.workspace_id for e in events if isinstance(e, ActionDone)]
    assert done[0] == "acme/canary" and sorted(done[1:]) == ["acme/prod", "acme/second"]
    final = forge.final(sha_of())
    assert final["reconciler/canary"].state is StatusState.SUCCESS
    assert final["reconciler/canary"].description.startswith("canary: 1 created · 1/1 healthy")
    assert final["reconciler/production"].description.startswith("production: 2 created")
    assert {u.target_url for _, u in forge.statuses} == {"http://r.example/runs/1"}
    pending = [u.context for _, u in forge.statuses if u.state is StatusState.PENDING]
    assert pending == ["reconciler/canary", "reconciler/production"]

    again = run_pass(write_repo(tmp_path / "repo"), parts, poster=ForgePoster(forge))
    assert again.status is RunStatus.SUCCESS and again.plan is not None and again.plan.changes() == ()
    assert forge.final(sha_of())["reconciler/production"].description == "production: up to date (2 unchanged)"


def test_a_broken_push_changes_nothing_and_names_the_line(tmp_path: Path) -> None:
    forge = FakeForge()
    parts = memory_parts(tmp_path / "state", forge=forge)
    run_pass(write_repo(tmp_path / "repo"), parts, poster=ForgePoster(forge))
    before = dict(parts.memory.workspaces)
    outcome = run_pass(write_repo(tmp_path / "repo", env="2", broken=True), parts, poster=ForgePoster(forge))
    assert outcome.status is RunStatus.FAILED and outcome.exit_code == 1 and outcome.plan is None
    assert outcome.errors and outcome.errors[0].startswith("orgs/acme/org.yaml:")
    assert parts.memory.workspaces == before
    final = forge.final(sha_of("2", broken=True))
    assert {u.state for u in final.values()} == {StatusState.FAILURE}
    assert "orgs/acme/org.yaml:" in final["reconciler/canary"].description


def test_a_backend_that_is_down_is_an_error_not_a_failure(tmp_path: Path) -> None:
    parts = memory_parts(tmp_path / "state")
    parts.memory.unreachable = True
    outcome = run_pass(write_repo(tmp_path / "repo"), parts)
    assert outcome.status is RunStatus.ERROR and outcome.exit_code == 2
    assert [s.state for s in outcome.statuses] == [StatusState.ERROR, StatusState.ERROR]


def test_a_spec_that_failed_the_canary_gate_is_held_on_the_next_pass(tmp_path: Path) -> None:
    parts = memory_parts(tmp_path / "state")
    assert run_pass(write_repo(tmp_path / "repo"), parts).status is RunStatus.SUCCESS
    parts.memory.unhealthy.add("acme/canary")
    bad = run_pass(write_repo(tmp_path / "repo", env="2"), parts)
    assert bad.status is RunStatus.FAILED and bad.run is not None and bad.run.new_holds
    production = bad.run.tier(Tier.PRODUCTION)
    assert production is not None and production.blocked_by == "canary health gate failed"  # prod untouched

    parts.memory.unhealthy.clear()
    held = run_pass(write_repo(tmp_path / "repo", env="2"), parts)
    assert held.status is RunStatus.HELD and held.exit_code == 1
    assert held.plan is not None and {a.kind for a in held.plan.actions} == {ActionKind.HOLD}
    assert held.plan.changes() == () and all(a.held_by is not None for a in held.plan.actions)
    assert [s.state for s in held.statuses] == [StatusState.FAILURE, StatusState.FAILURE]
    assert held.statuses[0].description.startswith("canary: held: this spec of acme/canary failed")

    fixed = run_pass(write_repo(tmp_path / "repo", env="3"), parts)  # a new commit: a new spec, not held
    assert fixed.status is RunStatus.SUCCESS


def test_a_plan_in_hand_is_applied_without_a_second_render(tmp_path: Path) -> None:
    parts = memory_parts(tmp_path / "state")
    planned = plan_revision(write_repo(tmp_path / "repo"), parts)
    assert isinstance(planned, Planned) and len(planned.plan.changes()) == 3
    (tmp_path / "repo" / "orgs").rename(tmp_path / "gone")  # a second render would now fail
    outcome = apply_and_report(planned, parts)
    assert outcome.status is RunStatus.SUCCESS and len(parts.memory.workspaces) == 3


def test_a_bug_while_planning_is_an_error_with_a_reason(tmp_path: Path) -> None:
    parts = memory_parts(tmp_path / "state")

    def explode() -> list[object]:
        raise RuntimeError("boom")

    parts.memory.list_owned = explode  # type: ignore[method-assign]
    outcome = run_pass(write_repo(tmp_path / "repo"), parts)
    assert outcome.status is RunStatus.ERROR and "RuntimeError: boom" in outcome.message


def test_pull_request_status_comment_and_run_page_render_one_plan(tmp_path: Path) -> None:
    parts = memory_parts(tmp_path / "state")
    planned = plan_revision(write_repo(tmp_path / "repo"), parts)
    assert isinstance(planned, Planned)
    line = plan_status(planned.plan)
    assert (line.context, line.state, line.description) == ("reconciler/plan", StatusState.SUCCESS,
                                                            "+3 ~0 -/+0 -0 =0")
    assert "| `+` | canary | `acme/canary` | create | not running |" in plan_comment(planned.plan, sha_of(), "")

    journal = Journal(tmp_path / "journal.sqlite")
    run_id = journal.start_run(RunKind.APPLY, sha_of(), "push")
    journal.set_plan(run_id, plan_to_json(planned.plan))
    journal.finish_run(run_id, RunStatus.SUCCESS, "<script>alert(1)</script>")
    row = journal.run(run_id)
    assert row is not None
    page = run_page(row, journal.actions(run_id))
    assert "<code>acme/canary</code>" in page and "not running" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page
