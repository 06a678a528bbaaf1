"""Merging pull requests and reviewing them in the Gitea emulator, mixed into `GiteaEmulator`.

Test control: `merge_pull_request` (a real merge in the bare repository: `merge`, `squash` or
`fast-forward-only`, or `merge_commit=` to record any commit as the merge, as Gitea's manual-merge
detection would), `add_review`, `dismiss_review`. Faithful to Gitea's behaviour:
- `GET /commits/{sha}/pull` finds the pull request whose merge commit is exactly `sha`
  (`GetPullRequestByMergedCommit`), 404 otherwise;
- `GET /pulls/{index}/reviews` lists `PullReview` objects, paginated; a PENDING review only for its
  author (`ToPullReviewList`);
- a new official review (APPROVED or REQUEST_CHANGES) makes the reviewer's older reviews unofficial;
  a push to the head marks reviews of other commits stale (and of the new head not stale);
- an approval by the pull request's poster is refused (422 "approve your own pull is not allowed").
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from tests.support import gitea_payloads as shapes
from tests.support.gitea_rest import ApiError, Repo

MergeStyle = Literal["merge", "squash", "fast-forward-only"]
IDENTITY = {"GIT_AUTHOR_NAME": "Gitea", "GIT_AUTHOR_EMAIL": "gitea@noreply.localhost",
            "GIT_COMMITTER_NAME": "Gitea", "GIT_COMMITTER_EMAIL": "gitea@noreply.localhost"}


class PullReviewsMixin:
    lock: threading.RLock
    app_url: str
    login: str
    _ids: Iterator[int]

    if TYPE_CHECKING:  # provided by GiteaEmulator and RestHandlers
        def repo(self, owner: str, name: str) -> Repo: ...
        def pull_json(self, repo: Repo, pr: dict[str, Any], single: bool = False) -> dict[str, Any]: ...
        def paginate(self, items: list[Any], params: dict[str, str], path: str
                     ) -> tuple[list[Any], list[tuple[str, str]]]: ...

    # -- test control ---------------------------------------------------------------------------
    def merge_pull_request(self, owner: str, name: str, number: int, *, style: MergeStyle = "merge",
                           merged_by: str = "maintainer", merge_commit: str | None = None) -> str:
        """Merge PR `number` into its base branch as Gitea would; returns the merge commit."""
        with self.lock:
            repo = self.repo(owner, name)
            pr = repo.pulls[number]
            head = shapes.git(repo.path, "rev-parse", f"refs/pull/{number}/head")
            base = shapes.git(repo.path, "rev-parse", f"refs/heads/{pr['base']}")
            pr["merge_base"] = shapes.git(repo.path, "merge-base", base, head)
            if merge_commit is None:
                merge_commit = self._merge(repo, base, head, style, f"Merge pull request #{number}")
            shapes.git(repo.path, "update-ref", f"refs/heads/{pr['base']}", merge_commit)
            pr.update(state="closed", merged=True, merge_commit_sha=merge_commit, merged_by=merged_by,
                      merged_at=time.time())
            return merge_commit

    def add_review(self, owner: str, name: str, number: int, user: str, state: str = "APPROVED", *,
                   official: bool = True, commit_id: str | None = None) -> dict[str, Any]:
        """A review of PR `number` by `user` on `commit_id` (default: the PR's head now)."""
        with self.lock:
            repo = self.repo(owner, name)
            pr = repo.pulls[number]
            if state == "APPROVED" and user == (pr.get("author") or self.login):
                raise ApiError(422, "approve your own pull is not allowed")
            head = shapes.git(repo.path, "rev-parse", f"refs/pull/{number}/head")
            commit = commit_id or head
            reviews = pr.setdefault("reviews", [])
            if official and state in ("APPROVED", "REQUEST_CHANGES"):
                for older in reviews:
                    if older["user"] == user:
                        older["official"] = False
            review = {"id": next(self._ids), "user": user, "state": state, "official": official,
                      "commit_id": commit, "stale": commit != head, "dismissed": False, "at": time.time()}
            reviews.append(review)
            return review

    def dismiss_review(self, owner: str, name: str, number: int, review_id: int) -> None:
        with self.lock:
            for review in self.repo(owner, name).pulls[number].get("reviews", []):
                if review["id"] == review_id:
                    review["dismissed"] = True

    def mark_stale(self, pr: dict[str, Any], head: str) -> None:
        """After a push to the head (Gitea: MarkReviewsAsStale, then MarkReviewsAsNotStale for the head)."""
        for review in pr.get("reviews", []):
            review["stale"] = review["commit_id"] != head

    def _merge(self, repo: Repo, base: str, head: str, style: MergeStyle, message: str) -> str:
        if style == "fast-forward-only":
            if shapes.git(repo.path, "merge-base", base, head) != base:
                raise ApiError(405, "Not fast-forward")
            return head
        tree = shapes.git(repo.path, "merge-tree", "--write-tree", base, head).splitlines()[0]
        parents = ["-p", base] + (["-p", head] if style == "merge" else [])
        env = {**os.environ, **IDENTITY}
        done = subprocess.run(["git", "-C", str(repo.path), "commit-tree", tree, *parents, "-m", message],
                              capture_output=True, text=True, check=True, env=env)
        return done.stdout.strip()

    # -- routes (called with the lock held) -------------------------------------------------------
    def _commit_pull(self, repo: Repo, params: dict[str, str], body: bytes, path: str, sha: str) -> Any:
        for pr in repo.pulls.values():
            if pr.get("merged") and pr.get("merge_commit_sha") == sha:  # the exact SHA, as Gitea's query
                return 200, [], self.pull_json(repo, pr, single=True)
        raise ApiError(404, f"pull request does not exist [id: 0, issue_id: 0, head_repo_id: 0, base_repo_id: "
                            f"{repo.rid}, head_branch: , base_branch: ]")

    def _list_reviews(self, repo: Repo, params: dict[str, str], body: bytes, path: str, number: str) -> Any:
        pr = repo.pulls.get(int(number))
        if pr is None:
            raise ApiError(404, "The target couldn't be found.")
        rows = [r for r in pr.get("reviews", []) if r["state"] != "PENDING" or r["user"] == self.login]
        page, headers = self.paginate(rows, params, path)
        html = f"{self.app_url}{repo.full_name}/pulls/{number}"
        return 200, headers, [{
            "id": r["id"], "user": shapes.user(self.app_url, r["user"], 100 + r["id"]), "team": None,
            "state": r["state"], "body": "", "commit_id": r["commit_id"], "stale": r["stale"],
            "official": r["official"], "dismissed": r["dismissed"], "comments_count": 0,
            "submitted_at": shapes.rfc3339(r["at"]), "updated_at": shapes.rfc3339(r["at"]),
            "html_url": f"{html}#issuecomment-{r['id']}", "pull_request_url": html,
        } for r in page]
