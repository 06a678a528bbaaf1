"""A pass where one org's config is broken: that org is kept as it runs, the others converge canary
first as usual, and the commit still shows red naming the org and its first file:line.

Without an engine: a config repo on disk, the in-memory backend, a recording forge.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from reconciler.daemon.journal import Journal
from reconciler.daemon.pages import run_page
from reconciler.errors import SourceUnreachable
from reconciler.model.enums import ActionKind, RunKind, RunStatus, StatusState
from reconciler.model.events import ActionDone, ApplyEvent
from reconciler.pipeline.passes import ForgePoster, run_pass
from reconciler.plan import plan_to_json
from reconciler.plan.diff import FAILED_ORG_REASON
from reconciler.source.checkout import Checkout
from tests.support.fakes import FakeForge, MemoryParts, memory_parts
from tests.support.policy import policy_for

IMAGE = "127.0.0.1:5000/agent@sha256:" + "a" * 64


def org(name: str, env: str = "1", *, required: list[str] | None = None, external: bool = False) -> dict[str, Any]:
    workspaces: list[Any] = [{"name": "Canary", "key": "canary", "tier": "canary"},
                             {"name": "Prod", "key": "prod", "required_env": required or []}]
    if external:
        workspaces.append("EXTERNAL")
    return {"name": name, "defaults": {"runtime": "claude-code", "env": {"ROUND": env}}, "workspaces": workspaces}


def commit(root: Path, orgs: dict[str, dict[str, Any]]) -> Checkout:
    """The config repo as a commit: its SHA stands for its content."""
    files = {"images.yaml": yaml.safe_dump({"images": {"claude-code": IMAGE}})}
    for name, template in orgs.items():
        text = yaml.safe_dump(template, sort_keys=False)
        files[f"orgs/{name}/org.yaml"] = text.replace(
            "- EXTERNAL", "- !external {repo: git.example.com/acme/team, ref: main, path: ws.yaml}")
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for stale in (root / "orgs").iterdir():
        if stale.name not in orgs:
            for f in stale.iterdir():
                f.unlink()
            stale.rmdir()
    sha = hashlib.sha1("".join(files[k] for k in sorted(files)).encode()).hexdigest()
    return Checkout(root, sha, "main")


def converged(tmp_path: Path, forge: FakeForge | None = None) -> tuple[MemoryParts, Path]:
    parts = memory_parts(tmp_path / "state", forge=forge, policy=policy_for("git.example.com/acme/"))
    repo = tmp_path / "repo"
    first = run_pass(commit(repo, {"alpha": org("Alpha"), "beta": org("Beta"), "gamma": org("Gamma")}), parts)
    assert first.status is RunStatus.SUCCESS and len(parts.memory.workspaces) == 6
    return parts, repo


def line_of(path: Path, needle: str) -> int:
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text)


def test_one_broken_org_is_kept_while_the_others_converge(tmp_path: Path) -> None:
    forge = FakeForge()
    parts, repo = converged(tmp_path, forge)
    before = dict(parts.memory.workspaces)
    events: list[ApplyEvent] = []
    tree = commit(repo, {"alpha": org("Alpha", "2"), "beta": org("Beta", "2", required=["API_URL"]),
                         "gamma": org("Gamma", "2")})
    line = line_of(repo / "orgs/beta/org.yaml", "- API_URL")  # the required name that is missing

    outcome = run_pass(tree, parts, poster=ForgePoster(forge), on_event=events.append)

    assert outcome.status is RunStatus.FAILED and outcome.exit_code == 1
    done = [e.result.workspace_id for e in events if isinstance(e, ActionDone)]
    assert done[:2] == ["alpha/canary", "gamma/canary"] and sorted(done[2:]) == ["alpha/prod", "gamma/prod"]
    after = parts.memory.workspaces
    for ws_id in ("beta/canary", "beta/prod"):  # untouched: same container, same spec
        assert after[ws_id] == before[ws_id]
    for ws_id in ("alpha/canary", "alpha/prod", "gamma/canary", "gamma/prod"):
        assert after[ws_id].backend_ref != before[ws_id].backend_ref
    assert outcome.plan is not None
    assert {a.workspace_id: a.reason for a in outcome.plan.actions if a.kind is ActionKind.NOOP} == {
        "beta/canary": FAILED_ORG_REASON, "beta/prod": FAILED_ORG_REASON}
    assert outcome.message.startswith(f"org beta failed: orgs/beta/org.yaml:{line}:")
    assert outcome.message.endswith("; 2 other org(s) converged")
    assert outcome.errors and outcome.errors[0].startswith(f"orgs/beta/org.yaml:{line}:")
    final = forge.final(tree.revision or "")
    assert {u.state for u in final.values()} == {StatusState.FAILURE}
    for context, update in final.items():
        tier = context.rsplit("/", 1)[1]
        assert update.description.startswith(f"{tier}: org beta failed: orgs/beta/org.yaml:{line}:"), update
        assert update.description.endswith("; 2 other org(s) converged")


def test_the_plan_command_shows_the_failed_org_and_exits_1(tmp_path: Path) -> None:
    parts, repo = converged(tmp_path)
    tree = commit(repo, {"alpha": org("Alpha", "2"), "beta": org("Beta", required=["API_URL"]),
                         "gamma": org("Gamma")})
    outcome = run_pass(tree, parts, apply=False)
    assert outcome.status is RunStatus.FAILED and outcome.exit_code == 1
    assert outcome.plan is not None and [f.org for f in outcome.plan.failed_orgs] == ["beta"]
    assert [a.workspace_id for a in outcome.plan.changes()] == ["alpha/canary", "alpha/prod"]
    assert outcome.message.startswith("org beta failed: orgs/beta/org.yaml:")
    assert outcome.message.endswith("; 2 other org(s) planned")


def test_every_org_broken_changes_nothing(tmp_path: Path) -> None:
    parts, repo = converged(tmp_path)
    before = dict(parts.memory.workspaces)
    broken = {name: org(name.title(), "2", required=["API_URL"]) for name in ("alpha", "beta", "gamma")}
    outcome = run_pass(commit(repo, broken), parts)
    assert outcome.status is RunStatus.FAILED and outcome.plan is None
    assert len(outcome.errors) == 3 and parts.memory.workspaces == before
    assert all(s.description.startswith("invalid config: orgs/alpha/org.yaml:") for s in outcome.statuses)


def test_a_broken_org_that_is_fixed_converges(tmp_path: Path) -> None:
    parts, repo = converged(tmp_path)
    run_pass(commit(repo, {"alpha": org("Alpha"), "beta": org("Beta", "2", required=["API_URL"]),
                           "gamma": org("Gamma")}), parts)
    fixed = run_pass(commit(repo, {"alpha": org("Alpha"), "beta": org("Beta", "2"), "gamma": org("Gamma")}), parts)
    assert fixed.status is RunStatus.SUCCESS and fixed.plan is not None
    assert sorted(a.workspace_id for a in fixed.plan.changes()) == ["beta/canary", "beta/prod"]


class DownFetcher:
    used = True

    def fetch(self, repo: str, ref: str, url: str | None) -> Path:
        raise SourceUnreachable(f"listing refs of https://{repo}.git failed: failed to connect: Connection refused")


def test_an_external_remote_that_is_down_is_an_error_of_the_pass_not_a_failure(tmp_path: Path) -> None:
    parts, repo = converged(tmp_path)
    before = dict(parts.memory.workspaces)
    parts.fetcher = lambda repo_file: DownFetcher()  # type: ignore[method-assign]
    tree = commit(repo, {"alpha": org("Alpha", "2"), "beta": org("Beta", external=True), "gamma": org("Gamma")})
    outcome = run_pass(tree, parts)
    assert outcome.status is RunStatus.ERROR and outcome.exit_code == 2
    assert "Connection refused" in outcome.message and "orgs/beta/org.yaml:" in outcome.message
    assert [s.state for s in outcome.statuses] == [StatusState.ERROR, StatusState.ERROR]
    assert parts.memory.workspaces == before


def test_the_run_page_names_the_org_and_shows_what_is_kept(tmp_path: Path) -> None:
    parts, repo = converged(tmp_path)
    tree = commit(repo, {"alpha": org("Alpha", "2"), "beta": org("Beta", required=["API_URL"]),
                         "gamma": org("Gamma")})
    outcome = run_pass(tree, parts)
    assert outcome.plan is not None and tree.revision is not None
    journal = Journal(tmp_path / "journal.sqlite")
    run_id = journal.start_run(RunKind.APPLY, tree.revision, "push")
    journal.set_plan(run_id, plan_to_json(outcome.plan))
    journal.finish_run(run_id, outcome.status, outcome.message, statuses=[s.as_json() for s in outcome.statuses])
    row = journal.run(run_id)
    assert row is not None and row.plan is not None and row.plan["failed_orgs"][0]["org"] == "beta"
    page = run_page(row, journal.actions(run_id))
    assert "org beta failed: orgs/beta/org.yaml:" in page and "required_env missing: API_URL" in page
    assert "<code>beta/prod</code>" in page and FAILED_ORG_REASON in page
