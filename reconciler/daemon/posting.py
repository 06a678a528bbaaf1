"""Commit statuses out of the daemon: post now, or keep in the journal and post when Gitea is back.

`StatusPoster` is the poster the daemon hands to the pipeline: it posts through the real client,
and a post that fails (Gitea down) is kept in the journal (latest per commit and context), and the
pass carries on with the apply. `flush` (a scheduler job) posts
what was kept, oldest first, and stops at the first failure. A later successful post for the same
commit and context drops the kept one, so an old state never overwrites a newer one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from reconciler.daemon.journal import Journal, Unposted
from reconciler.errors import ForgeError
from reconciler.forge.base import CombinedStatus, Forge, PullRequest, StatusState, StatusUpdate
from reconciler.report.statuses import StatusLine

log = logging.getLogger(__name__)


class StatusPoster:
    def __init__(self, forge: Forge, journal: Journal) -> None:
        self.forge = forge
        self.journal = journal

    def post_status(self, sha: str, update: StatusUpdate) -> bool:
        try:
            posted = self.forge.post_status(sha, update)
        except ForgeError:
            self.journal.keep_unposted(Unposted(revision=sha, context=update.context, state=str(update.state),
                                                description=update.description, target_url=update.target_url))
            raise
        self.journal.drop_unposted(sha, update.context)
        return posted

    def post_lines(self, sha: str, lines: Sequence[StatusLine], target_url: str) -> list[StatusLine]:
        """Post `lines`; a failure is kept for `flush` (and returned), never raised."""
        kept: list[StatusLine] = []
        for line in lines:
            try:
                self.post_status(sha, line.update(target_url))
            except ForgeError as exc:
                kept.append(line)
                log.warning("status kept for later: forge unreachable",
                            extra={"revision": sha, "context": line.context, "error": str(exc)})
        return kept

    def flush(self) -> int:
        """Post the statuses kept while the forge was down; returns how many went out."""
        sent = 0
        for row in self.journal.unposted():
            update = StatusUpdate(context=row.context, state=StatusState(row.state),
                                  description=row.description, target_url=row.target_url)
            try:
                self.forge.post_status(row.revision, update)
            except ForgeError:
                return sent  # still down: try again on the next tick
            # a newer status kept while this one was in flight stays kept (and goes out next)
            self.journal.drop_unposted(row.revision, row.context, row.at)
            sent += 1
        if sent:
            log.info("kept statuses posted", extra={"outcome": f"{sent} posted"})
        return sent

    # the rest of the Forge protocol, passed through
    def branch_head(self, branch: str) -> str:
        return self.forge.branch_head(branch)

    def open_pull_requests(self, base_branch: str) -> list[PullRequest]:
        return self.forge.open_pull_requests(base_branch)

    def combined_status(self, ref: str) -> CombinedStatus:
        return self.forge.combined_status(ref)

    def upsert_pr_comment(self, number: int, body: str, marker: str) -> int:
        return self.forge.upsert_pr_comment(number, body, marker)
