"""What the reconciler needs from a forge, as values and one small Protocol.

The forge is where operators read results: branch heads, open pull requests, commit statuses
and one plan comment per pull request. Everything above `forge/` talks to this Protocol and these
frozen pydantic values, never to HTTP; `GiteaClient` is the real implementation (Gitea 1.21+ and
Forgejo), tests of other stages can use a fake that satisfies the same Protocol.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from reconciler.model.enums import StatusState


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class PullRequest(_Frozen):
    """An open pull request, as far as the reconciler cares."""

    number: int
    head_sha: str  # where statuses go, always in the base repository
    head_ref: str  # branch name, or `refs/pull/{N}/head` when the branch is gone / AGit
    base_ref: str
    url: str  # the HTML URL (Gitea's `url` is not an API URL)
    is_fork: bool = False


class MergedPullRequest(_Frozen):
    """The pull request a commit of the base branch was merged as (`GET /commits/{sha}/pull`)."""

    number: int
    url: str
    author: str  # login of the pull request's poster
    merged: bool
    merge_commit_sha: str  # the commit the merge made on the base branch
    base_ref: str
    head_sha: str  # the head the pull request was merged at
    merge_base: str  # what its diff was computed against (what a reviewer saw: merge_base..head_sha)
    merged_by: str = ""


class PullReview(_Frozen):
    """One review of a pull request (Gitea's `PullReview`)."""

    id: int
    user: str  # the reviewer's login; "" for a team review or a deleted user
    state: str  # APPROVED, REQUEST_CHANGES, COMMENT, PENDING, REQUEST_REVIEW
    official: bool = False  # by a reviewer whose review counts (write access, or the branch protection's list)
    stale: bool = False  # made on a commit that is no longer the head
    dismissed: bool = False
    commit_id: str = ""


class StatusUpdate(_Frozen):
    """One commit status to post; the description is cut to 140 characters on the way out."""

    context: str
    state: StatusState
    description: str = ""
    target_url: str = ""


class CommitStatus(_Frozen):
    """One stored status row. `id` is the per-commit index on Gitea, unique per SHA only."""

    id: int
    context: str
    state: str  # raw: Gitea's `status` (or GitHub's `state`); may be `skipped` on Gitea >=1.25
    description: str = ""
    target_url: str = ""


class CombinedStatus(_Frozen):
    """The latest status per context and the forge's own combined state.

    `state` is None when the commit has no status at all (Gitea answers `""` there, not `pending`).
    Gitea >=1.25 combines to failure/pending/success; <=1.24 and Forgejo can also say `warning`.
    """

    sha: str
    state: StatusState | None
    statuses: tuple[CommitStatus, ...] = ()

    def for_context(self, context: str) -> CommitStatus | None:
        return next((s for s in self.statuses if s.context == context), None)


class Forge(Protocol):
    """The forge calls the reconciler makes. Errors raise `reconciler.errors.ForgeError`."""

    def branch_head(self, branch: str) -> str:
        """The commit SHA the branch points at."""
        ...

    def open_pull_requests(self, base_branch: str) -> list[PullRequest]:
        """Every open pull request against `base_branch`, all pages."""
        ...

    def post_status(self, sha: str, update: StatusUpdate) -> bool:
        """Post a commit status; False when skipped because the latest one is identical."""
        ...

    def combined_status(self, ref: str) -> CombinedStatus:
        """The latest status per context of a commit (or branch / tag)."""
        ...

    def upsert_pr_comment(self, number: int, body: str, marker: str) -> int:
        """Create or edit in place the one comment carrying `marker`; returns its id."""
        ...


@runtime_checkable
class PullReviews(Protocol):
    """What approving production by a review needs from the forge."""

    def merged_pull_request(self, sha: str) -> MergedPullRequest | None:
        """The pull request merged as `sha` (its merge commit); None when the commit is no such merge."""
        ...

    def pull_reviews(self, number: int) -> list[PullReview]:
        """Every review of pull request `number`, all pages."""
        ...


@runtime_checkable
class TriesOnce(Protocol):
    """A forge that can also hand out a twin trying each call once, without retries of its own, for a
    caller that retries on its own schedule (the daemon's kept statuses)."""

    def one_attempt(self) -> Forge:
        """The same forge, connections shared, each call tried once."""
        ...
