"""Approval of production by a review (`daemon/approval.py`), against the Gitea emulator and a real
mirror, with the journal: only an official, current approval by someone other than the author, on
the pull request merged as the commit, approves it, and only when the commit is exactly the reviewed
change on a commit production accepted. Each way someone with pull request rights could try to get
an unreviewed change through is one case here."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.daemon.approval import ReviewApproval, review_verdict
from reconciler.daemon.journal import Journal
from reconciler.forge.base import MergedPullRequest, PullReview
from reconciler.forge.gitea import GiteaClient
from reconciler.model.enums import RunKind
from reconciler.source.mirror import GitMirror
from tests.support.git_work import Work
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_repo import NAME, OWNER, TOKEN


class Setup:
    def __init__(self, gitea: GiteaEmulator, tmp_path: Path) -> None:
        self.gitea = gitea
        self.work = Work(tmp_path / "work", gitea.clone_url(OWNER, NAME))
        self.journal = Journal(tmp_path / "journal.sqlite")
        self.mirror = GitMirror(gitea.clone_url(OWNER, NAME), tmp_path / "state")
        self.client = GiteaClient(gitea.url, f"{OWNER}/{NAME}", TOKEN, timeout=5, max_attempts=1)
        self.approval = ReviewApproval(self.client, self.mirror, self.journal, "main")
        self.accepted = self.work.commit({"orgs/acme/org.yaml": "name: Acme\n"}, "base")
        self.work.push("main")
        self.journal.approve(self.accepted, "operator")  # production runs it
        self.branches = 0
        self.why = ""

    def pull(self, files: dict[str, str], *, start: str | None = None, commits: int = 1, author: str = "dev") -> int:
        """A pull request by `author` from a branch off `start` (default: the accepted commit)."""
        self.branches += 1
        branch = f"change{self.branches}"
        self.work.run("checkout", "-q", "-B", branch, start or self.accepted)
        for n in range(commits):
            self.work.commit({k: f"{v}{n}" for k, v in files.items()}, f"{branch} {n}")
        self.work.push(branch, force=True)
        self.work.run("checkout", "-q", "main")
        return self.gitea.open_pull_request(OWNER, NAME, branch, author=author)

    def main_at(self, sha: str) -> None:
        self.gitea.repo(OWNER, NAME).path.joinpath("refs/heads/main").write_text(sha + "\n")

    def push_main(self, files: dict[str, str], message: str) -> str:
        self.work.run("checkout", "-q", "-B", "main", self.head())
        sha = self.work.commit(files, message)
        self.work.push("main", force=True)
        return sha

    def head(self) -> str:
        return self.client.branch_head("main")

    def check(self, sha: str) -> str | None:
        self.mirror.fetch()
        verdict = self.approval.check(sha)
        self.why = verdict.why
        return verdict.approver


@pytest.fixture
def setup(gitea: GiteaEmulator, tmp_path: Path) -> Setup:
    return Setup(gitea, tmp_path)


def test_an_official_current_approval_on_the_merged_pull_request_approves_each_merge_style(setup: Setup) -> None:
    gitea = setup.gitea
    for style in ("merge", "squash", "fast-forward-only"):
        setup.main_at(setup.accepted)
        number = setup.pull({"orgs/acme/a.txt": style}, commits=2)
        gitea.add_review(OWNER, NAME, number, "eve", official=False)  # no write access: does not count
        gitea.add_review(OWNER, NAME, number, "bob")
        merged = gitea.merge_pull_request(OWNER, NAME, number, style=style)  # type: ignore[arg-type]
        assert setup.check(merged) == f"bob (review on #{number})", style
        assert setup.approval.approve_if_reviewed(merged)
        assert setup.journal.approved_by(merged) == f"bob (review on #{number})"
    assert setup.check(setup.accepted) is None  # no pull request was merged as it


@pytest.mark.parametrize("case", ["unofficial", "stale", "dismissed", "changes requested", "author", "other branch"])
def test_what_does_not_approve(setup: Setup, case: str) -> None:
    gitea = setup.gitea
    number = setup.pull({"orgs/acme/a.txt": "x"})
    pr = gitea.repo(OWNER, NAME).pulls[number]
    if case == "unofficial":
        gitea.add_review(OWNER, NAME, number, "bob", official=False)
    elif case == "stale":  # approved, then the author pushed more: the approval is of the old commit
        gitea.add_review(OWNER, NAME, number, "bob")
        setup.work.commit({"orgs/acme/b.txt": "sneaked in"}, "after the review", branch=pr["head"])
        setup.work.push(pr["head"], force=True)
        gitea.sync_pull_request(OWNER, NAME, number)
    elif case == "dismissed":
        gitea.dismiss_review(OWNER, NAME, number, gitea.add_review(OWNER, NAME, number, "bob")["id"])
    elif case == "changes requested":
        gitea.add_review(OWNER, NAME, number, "bob")
        gitea.add_review(OWNER, NAME, number, "carol", "REQUEST_CHANGES")
    elif case == "author":  # Gitea refuses it; a forge that let it through still does not approve
        pr.setdefault("reviews", []).append({"id": 9999, "user": "dev", "state": "APPROVED", "official": True,
                                             "commit_id": gitea.sync_pull_request(OWNER, NAME, number),
                                             "stale": False, "dismissed": False, "at": 0.0})
    else:
        gitea.add_review(OWNER, NAME, number, "bob")
        pr["base"] = "release"
        gitea.repo(OWNER, NAME).path.joinpath("refs/heads/release").write_text(setup.accepted + "\n")
    merged = gitea.merge_pull_request(OWNER, NAME, number)
    assert setup.check(merged) is None, case
    expected = {"changes requested": "changes requested by carol", "other branch": "merged into 'release'"}
    assert expected.get(case, "no official, current approval by someone other than its author dev") in setup.why


def test_an_unapproved_commit_of_the_branch_never_rides_in_on_a_review(setup: Setup) -> None:
    gitea = setup.gitea
    # 1. pushed to the branch (waiting for approval), then a reviewed pull request merged on top of it
    sneaked = setup.push_main({"orgs/acme/evil.txt": "1"}, "straight to main")
    setup.journal.start_run(RunKind.APPLY, sneaked, "push")
    number = setup.pull({"orgs/acme/a.txt": "ok"})
    gitea.add_review(OWNER, NAME, number, "bob")
    assert setup.check(gitea.merge_pull_request(OWNER, NAME, number)) is None
    assert "something else came in with the merge" in setup.why
    # 2. the pull request's branch starts at that commit (its diff does not show it)
    setup.main_at(sneaked)
    number = setup.pull({"orgs/acme/a.txt": "ok"}, start=sneaked)
    gitea.add_review(OWNER, NAME, number, "bob")
    assert setup.check(gitea.merge_pull_request(OWNER, NAME, number)) is None
    assert "something else came in with the merge" in setup.why
    # 3. ... and the branch is force-pushed back first, so its merge base is an accepted commit again
    setup.main_at(sneaked)
    number = setup.pull({"orgs/acme/a.txt": "ok"}, start=sneaked)
    gitea.add_review(OWNER, NAME, number, "bob")
    setup.main_at(setup.accepted)
    merged = gitea.merge_pull_request(OWNER, NAME, number)
    assert gitea.repo(OWNER, NAME).pulls[number]["merge_base"] == setup.accepted
    assert setup.check(merged) is None
    assert f"the reviewed change holds {sneaked[:12]}, a commit the branch had before" in setup.why
    # 4. an evil merge: recorded as the pull request's merge, with more in it than was reviewed
    setup.main_at(setup.accepted)
    number = setup.pull({"orgs/acme/a.txt": "ok"})
    gitea.add_review(OWNER, NAME, number, "bob")
    setup.work.run("checkout", "-q", "-B", "evil", setup.accepted)
    setup.work.run("merge", "-q", "--no-ff", "--no-commit", f"origin/{gitea.repo(OWNER, NAME).pulls[number]['head']}")
    evil = setup.work.commit({"orgs/acme/evil.txt": "2"}, "Merge (and a little more)")
    setup.work.push("evil", force=True)
    assert setup.check(gitea.merge_pull_request(OWNER, NAME, number, merge_commit=evil)) is None
    assert "something else came in with the merge" in setup.why


def test_the_verdict_names_why() -> None:
    pr = MergedPullRequest(number=3, url="u", author="Dev", merged=True, merge_commit_sha="m" * 40, base_ref="main",
                           head_sha="h" * 40, merge_base="b" * 40)
    mine = PullReview(id=1, user="dev", state="APPROVED", official=True, commit_id="h" * 40)
    assert review_verdict(pr, [mine], "m" * 40, "main") == (
        [], "#3: no official, current approval by someone other than its author Dev")
    assert review_verdict(pr, [], "x" * 40, "main")[1] == f"#3 was not merged as {'x' * 12}"
    assert review_verdict(pr, [], "m" * 40, "prod")[1] == "#3 was merged into 'main', not 'prod'"
