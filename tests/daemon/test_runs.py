"""What one daemon run does when something raises, and how a resync heals: the real `BranchRuns`,
journal and worker over the in-memory backend, a config repo on disk and a recording poster. No
Docker, no git, no HTTP.

Crash safety: an exception anywhere in a run (before the journal, after the plan, during apply,
while posting) ends it `error` in the journal with a one-line reason and posts `error` on the
commit; the worker retries it within its cap; a resync that meets the same crash records nothing new.
Healing: a resync of a failed head keeps each tier at its last verified revision (missing workspaces
come back, nothing running is changed) as a `heal` run, without touching the head's statuses; a
workspace unhealthy for too long is recreated by a resync at the spec it runs, as a `heal` run too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from reconciler.daemon.healing import UnhealthyClock
from reconciler.daemon.journal import Journal
from reconciler.daemon.loop import Request, RunControl, Worker
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.runbase import RunDeps
from reconciler.daemon.runs import BranchRuns
from reconciler.model.enums import RunStatus, StatusState, Trigger
from reconciler.model.plan import Action
from tests.support.clock import FakeClock, wait_until
from tests.support.fakes import MemoryParts, RecordingPoster, TreeMirror, memory_parts

IMAGE = "127.0.0.1:5000/agent@sha256:" + "a" * 64
CANARY, PROD = "acme/canary", "acme/prod"






class Env:
    def __init__(self, tmp_path: Path, *, heal_after: float = 0) -> None:
        self.tmp = tmp_path
        self.mirror = TreeMirror(tmp_path / "trees")
        self.poster = RecordingPoster()
        self.journal = Journal(tmp_path / "journal.sqlite")
        self.metrics = Metrics()
        self.parts: MemoryParts = memory_parts(tmp_path / "state")
        self.clock = FakeClock()
        self.unhealthy = UnhealthyClock(heal_after, clock=self.clock)
        self.runs = BranchRuns(RunDeps(self.mirror, "main", self.journal, self.metrics, self.parts,  # type: ignore[arg-type]
                                       self.poster, "http://r.example", unhealthy=self.unhealthy))  # type: ignore[arg-type]

    def commit(self, env: str, *, extra_canary: bool = False) -> str:
        """A commit of the config repo: canary + prod (+ canary2), env ROUND=`env`."""
        sha = hashlib.sha1(f"{env}{extra_canary}".encode()).hexdigest()
        workspaces = [{"name": "Canary", "key": "canary", "tier": "canary"}, {"name": "Prod", "key": "prod"}]
        if extra_canary:
            workspaces.append({"name": "Canary 2", "key": "canary2", "tier": "canary"})
        files = {
            "images.yaml": {"images": {"claude-code": IMAGE}},
            "orgs/acme/org.yaml": {"name": "Acme", "defaults": {"runtime": "claude-code", "env": {"ROUND": env}},
                                   "workspaces": workspaces},
        }
        return self.mirror.add(sha, files)

    def run(self, sha: str, trigger: Trigger = Trigger.PUSH, resync: bool = False) -> RunStatus:
        return self.runs.run(Request(sha, trigger, resync=resync), RunControl())

    def rows(self, sha: str | None = None) -> list[Any]:
        return [r for r in reversed(self.journal.runs()) if sha is None or r.revision == sha]

    def revision_of(self, ws: str) -> str | None:
        return self.parts.memory.workspaces[ws].revision


def raising_once(target: Any, name: str, exc: Exception) -> None:
    """`target.name` raises `exc` on its first call, then works."""
    real = getattr(target, name)
    state = {"raised": False}

    def call(*args: Any, **kwargs: Any) -> Any:
        if not state["raised"]:
            state["raised"] = True
            raise exc
        return real(*args, **kwargs)

    setattr(target, name, call)


def assert_ended_in_error(env: Env, sha: str, reason: str) -> None:
    row = env.rows(sha)[-1]
    assert row.status is RunStatus.ERROR and row.finished_at is not None and row.message == reason
    final = env.poster.final(sha)
    assert {line.state for line in final.values()} == {StatusState.ERROR}, final
    assert all(reason in line.description for line in final.values()), final
    assert {s["state"] for s in row.statuses} == {"error"}


# ---- item 4: every failure ends its run ------------------------------------------------------

def test_a_crash_before_the_journal_is_journalled_and_posted_as_error(tmp_path: Path) -> None:
    env = Env(tmp_path)
    sha = env.commit("1")
    raising_once(env.journal, "start_run", KeyError("x"))
    assert env.run(sha) is RunStatus.ERROR
    assert_ended_in_error(env, sha, "unexpected KeyError: 'x'")
    assert env.journal.last_status(sha) is RunStatus.ERROR and env.journal.to_recover() == []


def test_a_crash_after_the_plan_ends_the_run_and_applies_nothing(tmp_path: Path) -> None:
    env = Env(tmp_path)
    sha = env.commit("1")
    raising_once(env.journal, "set_plan", ValueError("bad plan json"))
    assert env.run(sha) is RunStatus.ERROR
    assert_ended_in_error(env, sha, "unexpected ValueError: bad plan json")
    assert env.parts.memory.workspaces == {}
    assert [r.status for r in env.rows(sha)] == [RunStatus.ERROR]


def test_a_crash_during_apply_ends_the_run_and_rolls_back(tmp_path: Path) -> None:
    env = Env(tmp_path)
    sha = env.commit("1")

    def explode(action: Action) -> None:
        if action.workspace_id == PROD:
            raise RuntimeError("engine client bug")

    env.parts.memory.before_apply = explode
    assert env.run(sha) is RunStatus.ERROR
    row = env.rows(sha)[-1]
    assert row.status is RunStatus.ERROR and row.finished_at is not None and row.recovered
    final = env.poster.final(sha)
    assert final["reconciler/production"].state is StatusState.ERROR
    assert "unexpected RuntimeError" in final["reconciler/production"].description
    assert PROD not in env.parts.memory.workspaces


def test_a_crash_while_posting_pending_ends_the_run_in_error(tmp_path: Path) -> None:
    env = Env(tmp_path)
    sha = env.commit("1")
    env.poster.raise_on = {1}  # the `pending` lines of step 2
    assert env.run(sha) is RunStatus.ERROR
    assert_ended_in_error(env, sha, "unexpected RuntimeError: poster bug")


def test_a_crash_after_the_verdict_keeps_it_and_its_statuses_for_the_flush(tmp_path: Path) -> None:
    env = Env(tmp_path)
    sha = env.commit("1")
    env.parts.memory.unhealthy.add(CANARY)  # the canary fails its gate: the head is `failed`
    env.poster.raise_on = {3}  # 1: pending, 2: canary pending, 3: the final lines
    assert env.run(sha) is RunStatus.FAILED
    assert [r.status for r in env.rows(sha)] == [RunStatus.FAILED]  # failed once, not `error`, not running
    kept = {u.context: u.state for u in env.journal.unposted()}
    assert kept == {"reconciler/canary": "failure", "reconciler/production": "failure"}


def test_the_worker_retries_a_crash_within_its_cap_and_a_resync_of_the_same_crash_records_nothing(
    tmp_path: Path,
) -> None:
    env = Env(tmp_path)
    sha = env.commit("1")
    env.mirror.fail = RuntimeError("mirror bug")  # every fetch of the commit raises
    worker = Worker(env.runs, env.journal.last_status, backoff_base_s=0.01, backoff_cap_s=0.02, max_retries=2)
    worker.start()
    try:
        worker.submit(Request(sha, Trigger.PUSH))
        assert wait_until(lambda: len(env.rows(sha)) == 3 and worker.idle, timeout=20)
        assert not wait_until(lambda: len(env.rows(sha)) > 3, timeout=0.3)
        crashed = (RunStatus.ERROR, "unexpected RuntimeError: mirror bug")
        assert {(r.status, r.message) for r in env.rows(sha)} == {crashed}
        assert all(r.finished_at is not None for r in env.rows(sha))
        posts = len(env.poster.posted)
        assert worker.submit(Request(sha, Trigger.RESYNC, resync=True))  # the same crash: nothing new
        assert wait_until(lambda: worker.idle and worker.last_finished is not None, timeout=10)
        assert not wait_until(lambda: len(env.rows(sha)) > 3, timeout=0.3)
        assert len(env.poster.posted) == posts

        env.mirror.fail = None  # fixed: the next resync converges the head
        assert worker.submit(Request(sha, Trigger.RESYNC, resync=True))
        assert wait_until(lambda: env.journal.last_status(sha) is RunStatus.SUCCESS, timeout=20)
    finally:
        worker.shutdown(10)


# ---- item 8: healing continues after a failure -----------------------------------------------

def failed_head(env: Env, *, canary_passes: bool = False) -> tuple[str, str]:
    """v1 converged; v2 fails at canary (or, with `canary_passes`, at production)."""
    v1 = env.commit("1")
    assert env.run(v1) is RunStatus.SUCCESS
    v2 = env.commit("2")
    env.parts.memory.unhealthy.add(PROD if canary_passes else CANARY)
    assert env.run(v2) is RunStatus.FAILED
    env.parts.memory.unhealthy.clear()
    return v1, v2


def test_a_resync_of_a_failed_head_brings_back_a_removed_workspace_at_its_last_verified_spec(tmp_path: Path) -> None:
    env = Env(tmp_path)
    v1, v2 = failed_head(env)
    statuses_before = list(env.poster.posted)
    del env.parts.memory.workspaces[PROD]  # removed by hand

    assert env.run(v2, Trigger.RESYNC, resync=True) is RunStatus.SUCCESS
    assert env.revision_of(PROD) == v1 and env.revision_of(CANARY) == v1
    heal = env.rows(v2)[-1]
    assert (heal.trigger, heal.status, heal.statuses) == (Trigger.HEAL, RunStatus.SUCCESS, [])
    assert heal.plan is not None and [(a["workspace_id"], a["kind"]) for a in heal.plan["actions"]] == [
        (PROD, "create")]
    assert "production at " + v1[:7] in heal.message
    assert [a["workspace"] for a in env.journal.actions(heal.id)] == [PROD]
    assert env.poster.posted == statuses_before  # the head stays red
    assert env.journal.last_status(v2) is RunStatus.FAILED
    assert 'reconciler_heals_total{outcome="success",reason="missing"} 1.0' in env.metrics.render().decode()

    assert env.run(v2, Trigger.RESYNC, resync=True) is RunStatus.NOOP  # nothing to heal: nothing recorded
    assert env.rows(v2)[-1].id == heal.id


def test_healing_keeps_a_passed_tier_at_the_head_and_never_downgrades(tmp_path: Path) -> None:
    env = Env(tmp_path)
    v1, v2 = failed_head(env, canary_passes=True)  # canary runs v2 (verified), production v1
    assert env.journal.last_good() == {"canary": v2, "production": v1}
    assert env.revision_of(CANARY) == v2 and env.revision_of(PROD) == v1
    del env.parts.memory.workspaces[CANARY]
    stopped = env.parts.memory.workspaces[PROD].model_copy(update={"running": False})
    env.parts.memory.workspaces[PROD] = stopped

    assert env.run(v2, Trigger.RESYNC, resync=True) is RunStatus.SUCCESS
    assert env.revision_of(CANARY) == v2  # the head's spec where the head passed
    assert env.revision_of(PROD) == v1 and env.parts.memory.workspaces[PROD].running
    kinds = {(a["workspace_id"], a["kind"]) for a in env.rows(v2)[-1].plan["actions"]}  # type: ignore[index]
    assert kinds == {(CANARY, "create"), (PROD, "recreate")}


def test_healing_leaves_a_workspace_running_another_spec_alone(tmp_path: Path) -> None:
    env = Env(tmp_path)
    v1, v2 = failed_head(env, canary_passes=True)
    env.journal.set_last_good("canary", v1, 0)  # say canary's verified revision is older than what runs
    applied = len(env.parts.memory.applied())
    assert env.run(v2, Trigger.RESYNC, resync=True) is RunStatus.NOOP
    assert len(env.parts.memory.applied()) == applied and env.revision_of(CANARY) == v2


def test_a_heal_that_cannot_plan_is_journalled_but_never_posted(tmp_path: Path) -> None:
    env = Env(tmp_path)
    _, v2 = failed_head(env)
    statuses_before = list(env.poster.posted)
    env.mirror.fail = RuntimeError("mirror bug")
    assert env.run(v2, Trigger.RESYNC, resync=True) is RunStatus.ERROR
    row = env.rows(v2)[-1]
    crashed = (Trigger.HEAL, RunStatus.ERROR, "unexpected RuntimeError: mirror bug")
    assert (row.trigger, row.status, row.message) == crashed
    assert env.poster.posted == statuses_before
    assert env.run(v2, Trigger.RESYNC, resync=True) is RunStatus.ERROR  # the same error again: not recorded
    assert env.rows(v2)[-1].id == row.id
    assert env.journal.last_status(v2) is RunStatus.FAILED


@pytest.mark.parametrize("head_failed", [False, True])
def test_a_workspace_unhealthy_for_too_long_is_recreated_by_a_resync(tmp_path: Path, head_failed: bool) -> None:
    env = Env(tmp_path, heal_after=60)
    if head_failed:
        _, head = failed_head(env)
    else:
        head = env.commit("1")
        assert env.run(head) is RunStatus.SUCCESS
    memory = env.parts.memory
    memory.unhealthy.add(PROD)
    before = memory.workspaces[PROD]
    def fresh_container_is_healthy(action: Action) -> None:
        memory.unhealthy.discard(action.workspace_id)

    memory.before_apply = fresh_container_is_healthy
    assert env.run(head, Trigger.RESYNC, resync=True) is RunStatus.NOOP  # first seen unhealthy: timed
    env.clock.advance(30)
    assert env.run(head, Trigger.RESYNC, resync=True) is RunStatus.NOOP  # not long enough yet
    env.clock.advance(31)
    status = env.run(head, Trigger.RESYNC, resync=True)
    assert status is RunStatus.SUCCESS
    after = memory.workspaces[PROD]
    assert after.backend_ref != before.backend_ref and after.spec_hash == before.spec_hash
    row = env.rows(head)[-1]
    assert (row.trigger, row.statuses) == (Trigger.HEAL, [])  # a heal either way: nothing posted, nothing held
    assert not [h for h in env.parts.holds.current(env.parts.wall()) if h.workspace == PROD]
    action = next(a for a in row.plan["actions"] if a["workspace_id"] == PROD)  # type: ignore[index]
    assert action["kind"] == "recreate" and action["reason"].startswith("unhealthy for 61s")
    assert 'reconciler_heals_total{outcome="success",reason="unhealthy"} 1.0' in env.metrics.render().decode()
    assert env.run(head, Trigger.RESYNC, resync=True) is RunStatus.NOOP
    assert env.journal.last_status(head) is (RunStatus.FAILED if head_failed else RunStatus.SUCCESS)


def test_a_recreate_that_stays_unhealthy_holds_nothing_and_is_tried_again_after_the_same_time(
    tmp_path: Path,
) -> None:
    env = Env(tmp_path, heal_after=60)
    head = env.commit("1")
    assert env.run(head) is RunStatus.SUCCESS
    env.parts.memory.unhealthy.add(PROD)  # broken whatever runs it
    assert env.run(head, Trigger.RESYNC, resync=True) is RunStatus.NOOP
    env.clock.advance(61)
    assert env.run(head, Trigger.RESYNC, resync=True) is RunStatus.FAILED  # the gate failed: rolled back
    heal = env.rows(head)[-1]
    assert heal.trigger == Trigger.HEAL and "heal did not pass" in heal.message
    assert env.parts.holds.current(env.parts.wall()) == []
    assert env.journal.last_status(head) is RunStatus.SUCCESS and len(env.poster.final(head)) == 2
    assert {line.state for line in env.poster.final(head).values()} == {StatusState.SUCCESS}
    assert env.run(head, Trigger.RESYNC, resync=True) is RunStatus.NOOP  # timed again from now
    env.clock.advance(61)
    assert env.run(head, Trigger.RESYNC, resync=True) is RunStatus.FAILED
