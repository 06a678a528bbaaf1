"""Control of the daemon without Docker, git or a forge: the real `BranchRuns`, journal and worker over
the in-memory backend, the API app in-process, and the pure parts.

- everything suspended: the first run of a head is journalled `skipped` and says so on its commit,
  nothing is applied, a resync records nothing; one org suspended: its changes (and repairs) are
  kept, the others converge, the statuses say what waits; a resume's resync applies what waited;
- the suspension is kept in the journal (a new journal on the same file still has it);
- an operator's retry (`force`) runs a failed head; a plain request for it does not;
- holds are named by id, value, prefix or subject and released under the store's lock;
- the API answers JSON errors: 400, 404, 409.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.control import render_status
from reconciler.daemon.api import Control
from reconciler.daemon.apiapp import api_app
from reconciler.daemon.journal import SUSPEND_ALL, Journal
from reconciler.daemon.loop import Request, RunControl, Worker
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.runbase import RunDeps
from reconciler.daemon.runs import BranchRuns
from reconciler.daemon.suspension import hold_back, with_suspended
from reconciler.model.enums import ActionKind, RunStatus, StatusState, Tier, Trigger
from reconciler.model.holds import Hold
from reconciler.model.plan import Action, Plan
from reconciler.pipeline.holdrelease import hold_id, matching, release
from reconciler.pipeline.holdstore import HoldStore
from reconciler.report.statuses import StatusLine
from tests.support.clock import wait_until
from tests.support.fakes import MemoryParts, RecordingPoster, TreeMirror, memory_parts
from tests.support.policy import policy_for

with warnings.catch_warnings():  # Starlette 1.x would rather have httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

IMAGE = "127.0.0.1:5000/agent@sha256:" + "a" * 64
ACME, BETA = ("acme/canary", "acme/prod"), ("beta/canary", "beta/prod")






class Env:
    def __init__(self, tmp_path: Path, *, production: str = "auto") -> None:
        self.tmp = tmp_path
        self.mirror = TreeMirror(tmp_path / "trees")
        self.poster = RecordingPoster()
        self.journal = Journal(tmp_path / "journal.sqlite")
        policy = policy_for().model_copy(update={"production": production})
        self.parts: MemoryParts = memory_parts(tmp_path / "state", policy=policy)
        self.runs = BranchRuns(RunDeps(self.mirror, "main", self.journal, Metrics(), self.parts,  # type: ignore[arg-type]
                                       self.poster, "http://r.example"))  # type: ignore[arg-type]

    def commit(self, acme: str, beta: str, tag: str = "") -> str:
        """Two orgs, each a canary and a prod workspace, env ROUND=<its version>; `tag`: another SHA."""
        sha = hashlib.sha1(f"{acme}/{beta}{tag}".encode()).hexdigest()
        files: dict[str, Any] = {"images.yaml": {"images": {"claude-code": IMAGE}}}
        for org, version in (("acme", acme), ("beta", beta)):
            files[f"orgs/{org}/org.yaml"] = {
                "name": org.title(), "defaults": {"runtime": "claude-code", "env": {"ROUND": version}},
                "workspaces": [{"name": "Canary", "key": "canary", "tier": "canary"}, {"name": "Prod", "key": "prod"}]}
        return self.mirror.add(sha, files)

    def run(self, sha: str, trigger: Trigger = Trigger.PUSH, **kw: Any) -> RunStatus:
        return self.runs.run(Request(sha, trigger, **kw), RunControl())

    def rows(self, sha: str) -> list[Any]:
        return [r for r in reversed(self.journal.runs()) if r.revision == sha]

    def revisions(self) -> dict[str, str | None]:
        return {ws: o.revision for ws, o in sorted(self.parts.memory.workspaces.items())}


def test_everything_suspended_applies_nothing_says_so_once_and_a_resume_converges(tmp_path: Path) -> None:
    env = Env(tmp_path)
    v1 = env.commit("1", "1")
    assert env.run(v1) is RunStatus.SUCCESS
    assert env.journal.suspend() is True and env.journal.suspend() is False
    assert Journal(tmp_path / "journal.sqlite").suspended().keys() == {SUSPEND_ALL}  # kept on disk

    v2 = env.commit("2", "2")
    applied = len(env.parts.memory.applied())
    assert env.run(v2) is RunStatus.SKIPPED
    assert [(r.status, r.message) for r in env.rows(v2)] == [(RunStatus.SKIPPED,
                                                               "suspended by an operator; not applied")]
    final = env.poster.final(v2)
    assert {line.state for line in final.values()} == {StatusState.PENDING}
    assert final["reconciler/canary"].description == "canary: suspended by an operator; not applied"
    posted = len(env.poster.posted)
    assert env.run(v2, Trigger.RESYNC, resync=True) is RunStatus.SKIPPED  # already said: nothing new
    del env.parts.memory.workspaces[ACME[1]]  # removed by hand: no heal while suspended either
    assert env.run(v1, Trigger.RESYNC, resync=True) is RunStatus.SKIPPED
    assert len(env.rows(v2)) == 1 and len(env.poster.posted) == posted and len(env.rows(v1)) == 1
    assert len(env.parts.memory.applied()) == applied

    assert env.journal.resume() == [SUSPEND_ALL] and env.journal.suspended() == {}
    assert env.run(v2, Trigger.POLL, resync=True, operator=True) is RunStatus.SUCCESS
    assert set(env.revisions().values()) == {v2}
    assert [(r.status, r.trigger) for r in env.rows(v2)] == [(RunStatus.SKIPPED, "push"),
                                                              (RunStatus.SUCCESS, "operator")]
    assert {line.state for line in env.poster.final(v2).values()} == {StatusState.SUCCESS}


def test_a_head_that_waited_for_a_resume_gets_its_final_statuses_even_with_nothing_to_change(
    tmp_path: Path,
) -> None:
    env = Env(tmp_path)
    assert env.run(env.commit("1", "1")) is RunStatus.SUCCESS
    env.journal.suspend()
    same = env.commit("1", "1", tag="readme only")
    assert env.run(same) is RunStatus.SKIPPED
    env.journal.resume()
    assert env.run(same, Trigger.POLL, resync=True, operator=True) is RunStatus.SUCCESS
    assert [r.status for r in env.rows(same)] == [RunStatus.SKIPPED, RunStatus.SUCCESS]
    final = env.poster.final(same)
    assert {line.state for line in final.values()} == {StatusState.SUCCESS}, final
    assert env.run(same, Trigger.RESYNC, resync=True) is RunStatus.NOOP  # said: back to quiet resyncs
    assert len(env.rows(same)) == 2


def test_one_org_suspended_keeps_its_changes_and_repairs_and_the_other_converges(tmp_path: Path) -> None:
    env = Env(tmp_path)
    v1 = env.commit("1", "1")
    assert env.run(v1) is RunStatus.SUCCESS
    assert env.journal.suspend("beta")
    v2 = env.commit("2", "2")
    assert env.run(v2) is RunStatus.SUCCESS
    assert env.revisions() == {ACME[0]: v2, ACME[1]: v2, BETA[0]: v1, BETA[1]: v1}
    row = env.rows(v2)[-1]
    assert row.message.endswith("; org beta suspended by an operator, 2 changes waiting")
    kept = {a["workspace_id"]: a for a in row.plan["actions"]}  # type: ignore[index]
    assert kept[BETA[0]]["kind"] == "noop" and kept[BETA[0]]["reason"].startswith("kept: suspended by an operator")
    final = env.poster.final(v2)
    assert final["reconciler/canary"].state is StatusState.PENDING
    assert final["reconciler/canary"].description.startswith(
        "canary: org beta suspended by an operator, 1 change waiting; 1 recreated")

    del env.parts.memory.workspaces[BETA[1]]  # removed by hand: not brought back while beta is suspended
    applied = len(env.parts.memory.applied())
    env.run(v2, Trigger.RESYNC, resync=True)
    assert BETA[1] not in env.parts.memory.workspaces and len(env.parts.memory.applied()) == applied

    assert env.journal.resume("beta") == ["beta"]
    assert env.run(v2, Trigger.POLL, resync=True, operator=True) is RunStatus.SUCCESS
    assert set(env.revisions().values()) == {v2}
    assert {line.state for line in env.poster.final(v2).values()} == {StatusState.SUCCESS}


def test_an_operators_retry_runs_a_failed_head_and_a_plain_request_does_not(tmp_path: Path) -> None:
    env = Env(tmp_path)
    v1 = env.commit("1", "1")
    assert env.run(v1) is RunStatus.SUCCESS
    v2 = env.commit("2", "2")
    env.parts.memory.unhealthy.add(ACME[0])
    assert env.run(v2) is RunStatus.FAILED
    env.parts.memory.unhealthy.clear()
    env.parts.holds.path.unlink()  # released: the spec may be applied again
    worker = Worker(env.runs, env.journal.last_status)
    worker.start()
    try:
        assert worker.submit(Request(v2, Trigger.PUSH))
        assert wait_until(lambda: worker.idle and worker.last_finished is not None, timeout=10)
        assert len(env.rows(v2)) == 1  # not retried: the change is wrong
        assert worker.submit(Request(v2, Trigger.RETRY, operator=True, force=True))
        assert wait_until(lambda: len(env.rows(v2)) == 2 and worker.idle, timeout=20)
        assert [(r.status, r.trigger) for r in env.rows(v2)] == [(RunStatus.FAILED, "push"),
                                                                  (RunStatus.SUCCESS, "operator")]
    finally:
        worker.shutdown(10)


def test_with_production_manual_production_waits_for_approval_after_a_passed_canary(tmp_path: Path) -> None:
    env = Env(tmp_path, production="manual")
    v1 = env.commit("1", "1")
    assert env.run(v1) is RunStatus.SUCCESS
    assert env.revisions() == {ACME[0]: v1, BETA[0]: v1}  # canary only
    final = env.poster.final(v1)
    assert final["reconciler/canary"].state is StatusState.SUCCESS
    production = final["reconciler/production"]
    assert production.state is StatusState.PENDING
    assert production.description.startswith(f"production: waiting for approval (2 changes): reconciler promote "
                                              f"{v1[:12]}")
    assert env.journal.last_good() == {"canary": v1}  # production does not run it
    assert "production waiting for approval" in env.rows(v1)[-1].message
    posted = len(env.poster.posted)
    assert env.run(v1, Trigger.RESYNC, resync=True) is RunStatus.NOOP and len(env.poster.posted) == posted

    assert env.journal.approve(v1) and not env.journal.approve(v1)
    assert env.run(v1, Trigger.POLL, resync=True, operator=True) is RunStatus.SUCCESS
    assert set(env.revisions().values()) == {v1} and len(env.revisions()) == 4
    assert {line.state for line in env.poster.final(v1).values()} == {StatusState.SUCCESS}
    assert env.journal.last_good() == {"canary": v1, "production": v1}

    v2 = env.commit("2", "2")  # the canary fails: production says so, not "waiting for approval"
    env.parts.memory.unhealthy.add(ACME[0])
    assert env.run(v2) is RunStatus.FAILED
    assert env.poster.final(v2)["reconciler/production"].state is StatusState.FAILURE
    assert "approval" not in env.poster.final(v2)["reconciler/production"].description
    assert "approval" not in env.rows(v2)[-1].message


def hold(kind: str, subject: str, value: str, at: float = 1000.0) -> Hold:
    return Hold(kind=kind, subject=subject, value=value, label=f"{kind} {value[:12]}", workspace="acme/a",  # type: ignore[arg-type]
                revision="f" * 40, failed_at=at)


def test_holds_are_named_by_id_value_prefix_or_subject_and_released_under_the_lock(tmp_path: Path) -> None:
    image = hold("image", "127.0.0.1:5000/agent", "127.0.0.1:5000/agent@sha256:" + "ab" * 32)
    plugin = hold("plugin", "web#tools", "c" * 40)
    spec = hold("spec", "acme/a", "1a2b3c4d5e6f7788")
    spec2 = hold("spec", "acme/a", "99887766aabbccdd")
    holds = [image, plugin, spec, spec2]
    assert matching(holds, hold_id(plugin)) == [plugin]
    assert matching(holds, image.value) == [image]
    assert matching(holds, "sha256:" + "ab" * 5) == [image] and matching(holds, "abababa") == [image]
    assert matching(holds, "c" * 7) == [plugin] and matching(holds, "c" * 6) == []
    assert matching(holds, "web#tools") == [plugin] and matching(holds, "acme/a") == [spec, spec2]
    assert matching(holds, "") == [] and matching(holds, "nothing") == []

    store = HoldStore(tmp_path / "quarantine.json")
    store.add(holds, 1000.0)
    assert release(store, {spec.key}, 1000.0) == [spec]
    assert [h.key for h in store.current(1000.0)] == [image.key, plugin.key, spec2.key]
    assert release(store, {spec.key}, 1000.0) == []


def test_hold_back_and_the_statuses_of_a_run_that_kept_an_org_back() -> None:
    plan = Plan(actions=(Action(kind=ActionKind.CREATE, workspace_id="beta/a", tier=Tier.CANARY, reason="new"),
                         Action(kind=ActionKind.DELETE, workspace_id="beta/b", tier=Tier.PRODUCTION, reason="gone"),
                         Action(kind=ActionKind.CREATE, workspace_id="acme/a", tier=Tier.CANARY, reason="new")))
    kept, waiting = hold_back(plan, {"beta"})
    assert [a.kind for a in kept.actions] == [ActionKind.NOOP, ActionKind.NOOP, ActionKind.CREATE]
    assert waiting == {Tier.CANARY: 1, Tier.PRODUCTION: 1}
    assert hold_back(plan, set()) == (plan, {})
    lines = [StatusLine("reconciler/x/canary", StatusState.SUCCESS, "canary: 1 created"),
             StatusLine("reconciler/x/production", StatusState.FAILURE, "production: failed: boom")]
    out = with_suspended(lines, waiting, {"beta"})
    assert out[0] == StatusLine("reconciler/x/canary", StatusState.PENDING,
                                "canary: org beta suspended by an operator, 1 change waiting; 1 created")
    assert out[1].state is StatusState.FAILURE and out[1].description.endswith("1 change waiting")


# ---- the API in-process ------------------------------------------------------------------------

class ApiMirror(TreeMirror):
    def remote_heads(self) -> dict[str, str]:
        return {"refs/heads/main": "a" * 40}


@pytest.fixture
def client(tmp_path: Path) -> tuple[TestClient, Worker, Journal]:
    journal = Journal(tmp_path / "journal.sqlite")
    worker = Worker(lambda *a: RunStatus.SUCCESS, journal.last_status)  # type: ignore[arg-type]  # never started
    parts = memory_parts(tmp_path / "state")
    control = Control(worker, journal, ApiMirror(tmp_path / "trees"), "main", parts, lambda: {"step": None},  # type: ignore[arg-type]
                      public_url="http://r.example")
    return TestClient(api_app(control)), worker, journal


def test_the_api_answers_json_and_clear_errors(client: tuple[TestClient, Worker, Journal]) -> None:
    http, worker, journal = client
    status = http.get("/status").json()
    assert status["head"]["sha"] is None and status["fleet"] == {"error": None, "orgs": {}, "workspaces": []}
    assert "branch main: head -: no finished run" in render_status(status)
    retry = http.post("/retry")
    assert retry.status_code == 409 and retry.json() == {"error": "no head yet: the daemon has not listed the branch",
                                                         "status": 409}
    synced = http.post("/sync", json={})
    assert synced.status_code == 202 and synced.json()["queued"] == "a" * 40 and worker.head == "a" * 40
    assert worker.snapshot()[1] == Request("a" * 40, Trigger.POLL, resync=True, operator=True)
    assert http.post("/sync", content=b"[1]").json()["error"] == "the body must be a JSON object"
    assert http.post("/sync", content=b"x" * (70 * 1024)).status_code == 413
    assert http.post("/release", json={"hold": "abc"}).status_code == 404
    assert http.post("/release", json={"hold": ""}).json()["error"] == "hold is required"
    assert http.post("/suspend", json={"org": "../x"}).status_code == 400
    assert http.post("/suspend", json={"org": "beta"}).json()["changed"] is True
    assert journal.suspended().keys() == {"beta"}
    assert http.post("/suspend").json()["changed"] is True
    assert http.post("/sync").status_code == 409
    resumed = http.post("/resume", json={"org": "beta"}).json()
    assert resumed["changed"] is True and "everything is still suspended" in resumed["message"]
    assert http.post("/resume").json()["suspended"] == {}
    missing = http.get("/nope")
    assert missing.status_code == 404 and missing.json()["status"] == 404
    assert http.delete("/status").status_code == 405
    auto = http.post("/promote", json={"sha": "a" * 12})
    assert auto.status_code == 409 and "nothing to promote" in auto.json()["error"]
    assert http.get("/status").json()["production"] == {"mode": "auto", "waiting_for_approval": None}
