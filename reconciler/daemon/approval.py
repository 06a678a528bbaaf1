"""Production approval: which production changes wait for it, and approval by a review on the forge.

Production waits after a passed canary when the operator policy says `production: manual` (every org)
or an org's own `org.yaml` does (that org only; the repo may only make the policy stricter). A commit
is approved by an operator (`reconciler promote <sha>`) or, when the daemon has the forge's API, by an
approving review on the pull request that was merged as that very commit. The review is checked the
way someone with pull request rights would try to get around it:

- the pull request is the one Gitea records as merged as the commit (`GET /commits/{sha}/pull`,
  looked up by the exact merge commit), merged into the watched branch;
- one official review (by someone whose review counts: write access, or the branch protection's
  approvers), APPROVED, neither stale nor dismissed, by someone other than the pull request's
  author, counts; an official, undismissed REQUEST_CHANGES blocks;
- what goes to production is exactly what was reviewed: the commit's tree must be the reviewed
  commit's change since the pull request's merge base applied to a commit production already
  accepted (one the branch ran through production, or one approved before), on the commit's
  first-parent history. So an unapproved commit pushed to the branch before the merge, an evil merge
  that adds content, or a change pushed after the review never rides in on somebody's approval;
- no commit of the reviewed change (merge base..reviewed commit) was a head of the branch before
  (the daemon ran it): content that sat on the branch unapproved cannot come back through a pull
  request whose diff did not show it.
What is not verifiable this way (a conflict resolved by hand, a history longer than the bounds below)
is simply not approved by review: `reconciler promote` remains.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from reconciler.daemon.journal import Journal
from reconciler.daemon.suspension import WAITING_MARKS, hold_back_tier
from reconciler.errors import ReconcilerError
from reconciler.forge.base import MergedPullRequest, PullReview, PullReviews
from reconciler.model.desired import DesiredState
from reconciler.model.enums import RunStatus, Tier
from reconciler.model.plan import Plan
from reconciler.source.ancestry import first_parents, merges_to, only_in
from reconciler.source.mirror import GitMirror

log = logging.getLogger(__name__)
EVERY_ORG = None  # `manual_orgs` for a policy that says `production: manual`
BASE_WALK = 64  # first-parent commits searched for one production accepted
CHANGE_LIMIT = 500  # commits of a reviewed change checked against the branch's past heads
APPROVED, CHANGES = "APPROVED", "REQUEST_CHANGES"


def manual_orgs(policy_production: str, desired: DesiredState) -> frozenset[str] | None:
    """The orgs whose production waits for approval: `EVERY_ORG` when the policy says manual, else
    those whose org.yaml says so (maybe none)."""
    return EVERY_ORG if policy_production == "manual" else frozenset(desired.manual_orgs)


def keep_for_approval(plan: Plan, orgs: frozenset[str] | None) -> tuple[Plan, int]:
    """`plan` with the production changes of `orgs` (None: every org) kept back; how many."""
    if orgs is not None and not orgs:
        return plan, 0
    return hold_back_tier(plan, Tier.PRODUCTION, orgs)


@dataclass(frozen=True)
class Verdict:
    approver: str | None  # who approved, e.g. `alice (review on #3)`; None: not approved
    why: str  # one line: what approved it, or why not


def review_verdict(pr: MergedPullRequest, reviews: list[PullReview], sha: str, branch: str) -> tuple[
        list[PullReview], str]:
    """The reviews that may approve `sha` (before the content check), or none and why."""
    if not pr.merged or pr.merge_commit_sha != sha:
        return [], f"#{pr.number} was not merged as {sha[:12]}"
    if pr.base_ref != branch:
        return [], f"#{pr.number} was merged into {pr.base_ref!r}, not {branch!r}"
    if not pr.merge_base:
        return [], f"#{pr.number} has no merge base"
    author = pr.author.casefold()
    blocking = [r for r in reviews if r.state == CHANGES and r.official and not r.dismissed]
    if blocking:
        return [], f"#{pr.number}: changes requested by {', '.join(sorted({r.user or '?' for r in blocking}))}"
    ok = [r for r in reviews if r.state == APPROVED and r.official and not r.stale and not r.dismissed
          and r.user and r.user.casefold() != author and len(r.commit_id) >= 40]
    if not ok:
        return [], f"#{pr.number}: no official, current approval by someone other than its author {pr.author}"
    return ok, ""


class ReviewApproval:
    """Asks the forge whether a commit waiting for production was approved by a review (see above)."""

    def __init__(self, forge: PullReviews, mirror: GitMirror, journal: Journal, branch: str) -> None:
        self.forge, self.mirror, self.journal, self.branch = forge, mirror, journal, branch

    def check(self, sha: str) -> Verdict:
        try:
            pr = self.forge.merged_pull_request(sha)
            if pr is None:
                return Verdict(None, f"no pull request was merged as {sha[:12]}")
            candidates, why = review_verdict(pr, self.forge.pull_reviews(pr.number), sha, self.branch)
            for review in candidates:
                why = self._same_content(pr, review, sha)
                if not why:
                    return Verdict(f"{review.user} (review on #{pr.number})",
                                   f"approved by {review.user} on #{pr.number} ({pr.url})")
            return Verdict(None, why)
        except ReconcilerError as exc:  # the forge or the mirror away: still waiting, asked again later
            return Verdict(None, f"could not check the reviews: {exc}")

    def approve_if_reviewed(self, sha: str) -> bool:
        """Approve `sha` in the journal when a review approved it; logged either way."""
        verdict = self.check(sha)
        if verdict.approver is None:
            log.info("production still waits for approval", extra={"revision": sha, "context": verdict.why})
            return False
        self.journal.approve(sha, verdict.approver)
        log.warning("production approved by a review", extra={"revision": sha, "context": verdict.why})
        return True

    def _same_content(self, pr: MergedPullRequest, review: PullReview, sha: str) -> str:
        """"" when `sha` is the reviewed change on a commit production accepted; else why not."""
        reviewed = review.commit_id
        self.mirror.ensure_commit(reviewed, (f"+refs/pull/{pr.number}/head:refs/pull/{pr.number}/head",))
        change = only_in(self.mirror, reviewed, pr.merge_base, CHANGE_LIMIT)
        if change is None:
            return f"#{pr.number}: more than {CHANGE_LIMIT} commits to check"
        seen = self.journal.ran([c for c in change if c != sha])  # a fast-forward's own head runs now
        if seen:
            return (f"#{pr.number}: the reviewed change holds {sorted(seen)[0][:12]}, a commit the branch had before "
                    "(its diff did not show it)")
        bases = [c for c in dict.fromkeys([*first_parents(self.mirror, sha, BASE_WALK), pr.merge_base])
                 if self.accepted(c)]
        if any(merges_to(self.mirror, sha, base, pr.merge_base, reviewed) for base in bases):
            return ""
        return (f"#{pr.number}: {sha[:12]} is not the reviewed {reviewed[:12]} on a commit production accepted "
                "(something else came in with the merge)")

    def accepted(self, sha: str) -> bool:
        """Production runs (or ran) `sha`'s content: approved, production's last good revision, or a run
        of it that applied production without keeping anything back."""
        if self.journal.approved(sha) or self.journal.last_good().get(Tier.PRODUCTION.value) == sha:
            return True
        last = self.journal.last_run(sha)
        return (last is not None and last.status is RunStatus.SUCCESS
                and not any(mark in last.message for mark in WAITING_MARKS))
