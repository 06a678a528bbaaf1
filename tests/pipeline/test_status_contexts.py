"""Status contexts with the instance in them (`--status-context-instance`): two reconcilers can report on one
repository, each on its own `reconciler/<instance>/<kind>` contexts; without the flag nothing changes.

Pure lines first (`report.statuses.Contexts`), then a whole pass on the in-memory backend and a pull request
review, each posting to a recording forge: every context that reaches the forge is the instance's."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.daemon.journal import Journal
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.reviews import Reviewer
from reconciler.errors import BackendError, ConfigError
from reconciler.model.enums import Outcome, RunStatus, StatusState, Tier
from reconciler.model.results import RunResult
from reconciler.pipeline.passes import ForgePoster, failed_outcome, run_pass
from reconciler.pipeline.settings import Settings
from reconciler.report.statuses import (
    CONTEXTS,
    DEFAULT_CONTEXTS,
    PLAN_CONTEXT,
    Contexts,
    config_error_statuses,
    each_tier,
    error_statuses,
    plan_error_status,
    plan_pending,
    planning_statuses,
    run_statuses,
    superseded_statuses,
    tier_pending,
)
from reconciler.source.checkout import Checkout
from tests.pipeline.test_pass import sha_of, write_repo
from tests.support.fakes import FakeForge, memory_parts

EU = Contexts("eu")
EU_ALL = ("reconciler/eu/canary", "reconciler/eu/production", "reconciler/eu/plan")


def test_the_default_contexts_stay_as_they_were() -> None:
    assert DEFAULT_CONTEXTS.all() == ("reconciler/canary", "reconciler/production", "reconciler/plan")
    assert CONTEXTS == {Tier.CANARY: "reconciler/canary", Tier.PRODUCTION: "reconciler/production"}
    assert PLAN_CONTEXT == "reconciler/plan"
    assert [line.context for line in planning_statuses("a" * 40)] == list(CONTEXTS.values())


def test_with_an_instance_every_builder_names_the_instance() -> None:
    assert EU.all() == EU_ALL
    lines = [*each_tier(StatusState.PENDING, "x", EU), tier_pending(Tier.PRODUCTION, 2, EU),
             *config_error_statuses("orgs/a/org.yaml:1:1: bad", EU), *error_statuses("engine away", EU),
             *planning_statuses("a" * 40, EU), *superseded_statuses("b" * 40, verified=True, contexts=EU),
             *run_statuses(RunResult(outcome=Outcome.FAILED, refused="too many deletes"), contexts=EU),
             plan_pending(EU), plan_error_status("bad", invalid=True, contexts=EU)]
    assert {line.context for line in lines} == set(EU_ALL)
    assert tier_pending(Tier.CANARY, 1, EU).description == "canary: applying 1 change"  # the text is unchanged


def test_the_setting_picks_the_contexts(tmp_path: Path) -> None:
    assert Settings(state_dir=tmp_path, instance_id="eu").contexts == DEFAULT_CONTEXTS  # off by default
    assert Settings(state_dir=tmp_path, instance_id="eu", status_context_instance=True).contexts == EU
    assert Settings(state_dir=tmp_path, status_context_instance=True).contexts.plan == "reconciler/default/plan"


@pytest.mark.parametrize("exc", [ConfigError("orgs/a/org.yaml:1:1: bad"), BackendError("engine away")])
def test_a_failed_pass_reports_on_the_instance_contexts(exc: Exception) -> None:
    assert [s.context for s in failed_outcome("c" * 40, exc, EU).statuses] == list(EU_ALL[:2])


def test_a_pass_posts_only_to_the_instance_contexts(tmp_path: Path) -> None:
    forge = FakeForge()
    parts = memory_parts(tmp_path / "state", forge=forge, instance_id="eu", status_context_instance=True)
    outcome = run_pass(write_repo(tmp_path / "repo"), parts, poster=ForgePoster(forge))
    assert outcome.status is RunStatus.SUCCESS
    assert {u.context for _, u in forge.statuses} == set(EU_ALL[:2])
    assert forge.final(sha_of())["reconciler/eu/production"].state is StatusState.SUCCESS
    assert [s.context for s in outcome.final()] == list(EU_ALL[:2])  # what the CLI and the run page show

    broken = run_pass(write_repo(tmp_path / "repo", env="2", broken=True), parts, poster=ForgePoster(forge))
    assert broken.status is RunStatus.FAILED
    assert set(forge.final(sha_of("2", broken=True))) == set(EU_ALL[:2])


class _Mirror:
    """The commit of a pull request head, already on disk."""

    def __init__(self, tree: Path) -> None:
        self.tree = tree

    def ensure_commit(self, sha: str, extra_refspecs: tuple[str, ...] = ()) -> None:
        return None

    def export_tree(self, sha: str) -> Path:
        return self.tree


def test_a_review_posts_the_instance_plan_context(tmp_path: Path) -> None:
    forge = FakeForge()
    parts = memory_parts(tmp_path / "state", forge=forge, instance_id="eu", status_context_instance=True)
    checkout: Checkout = write_repo(tmp_path / "repo")
    journal = Journal(tmp_path / "journal.sqlite")
    reviewer = Reviewer(_Mirror(checkout.root), "main", journal, Metrics(), _Posting(forge),  # type: ignore[arg-type]
                        parts, "http://r.example")
    assert reviewer.review(7, sha_of(), fork=False) is RunStatus.PLANNED
    assert [(u.context, u.state) for _, u in forge.statuses] == [
        ("reconciler/eu/plan", StatusState.PENDING), ("reconciler/eu/plan", StatusState.SUCCESS)]
    assert 7 in forge.comments
    row = journal.run(journal.runs(limit=1)[0].id)
    assert row is not None and [s["context"] for s in row.statuses] == ["reconciler/eu/plan"]


class _Posting(ForgePoster):
    """The daemon's poster, reduced to what a review calls."""

    def upsert_pr_comment(self, number: int, body: str, marker: str) -> int:
        return self.forge.upsert_pr_comment(number, body, marker)
