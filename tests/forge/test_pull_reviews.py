"""The two calls approval by review needs, against the emulator: the pull request merged as a commit
(`GET /commits/{sha}/pull`, by the exact merge commit, 404 when none) and its reviews (`PullReview`:
state, official, stale, dismissed, commit_id, the reviewer's login), paged."""

from __future__ import annotations

import pytest

from reconciler.forge.gitea import GiteaClient
from tests.support.git_work import Work
from tests.support.gitea_emulator import ApiError, GiteaEmulator
from tests.support.gitea_repo import NAME, OWNER


def test_the_pull_request_merged_as_a_commit_and_its_reviews(
    client: GiteaClient, gitea: GiteaEmulator, work: Work, head: str
) -> None:
    first = work.commit({"a.txt": "1"}, message="pr", branch="change")
    work.push("change")
    number = gitea.open_pull_request(OWNER, NAME, "change", author="dev")
    assert client.merged_pull_request(head) is None  # a commit no pull request was merged as: 404
    early = gitea.add_review(OWNER, NAME, number, "bob")  # then the author pushes again: stale
    second = work.commit({"a.txt": "2"}, message="more", branch="change")
    work.push("change")
    gitea.sync_pull_request(OWNER, NAME, number)
    gitea.add_review(OWNER, NAME, number, "carol", "COMMENT", official=False)
    gitea.add_review(OWNER, NAME, number, "bob")
    with pytest.raises(ApiError):
        gitea.add_review(OWNER, NAME, number, "dev")  # Gitea refuses the author's own approval
    assert client.merged_pull_request(second) is None  # open: not merged as anything yet

    merge = gitea.merge_pull_request(OWNER, NAME, number)
    pr = client.merged_pull_request(merge)
    assert pr is not None
    assert (pr.number, pr.author, pr.merged, pr.merge_commit_sha, pr.base_ref, pr.head_sha, pr.merge_base,
            pr.merged_by) == (number, "dev", True, merge, "main", second, head, "maintainer")
    assert client.merged_pull_request(merge[:12]) is None  # Gitea matches the whole SHA only
    reviews = client.pull_reviews(number)
    assert [(r.user, r.state, r.official, r.stale, r.commit_id) for r in reviews] == [
        ("bob", "APPROVED", False, True, first), ("carol", "COMMENT", False, False, second),
        ("bob", "APPROVED", True, False, second)]
    gitea.dismiss_review(OWNER, NAME, number, early["id"])
    assert client.pull_reviews(number)[0].dismissed


def test_reviews_page_past_fifty(client: GiteaClient, gitea: GiteaEmulator, work: Work, head: str) -> None:
    work.commit(message="pr", branch="change")
    work.push("change")
    number = gitea.open_pull_request(OWNER, NAME, "change", author="dev")
    for n in range(53):
        gitea.add_review(OWNER, NAME, number, f"user{n}", "COMMENT", official=False)
    assert len(client.pull_reviews(number)) == 53
    assert len(gitea.api_calls("GET", f"/pulls/{number}/reviews")) == 2
