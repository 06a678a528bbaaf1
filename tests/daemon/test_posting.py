"""Statuses kept while Gitea was down: a newer one kept while an older one is in flight is never lost."""

from __future__ import annotations

from pathlib import Path

from reconciler.daemon.journal import Journal, Unposted
from reconciler.daemon.posting import StatusPoster
from reconciler.errors import ForgeError
from reconciler.forge.base import StatusUpdate

SHA = "a" * 40


class SlowForge:
    """Posts succeed; while the first post is in flight, the run keeps a newer status (the race)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.posted: list[tuple[str, str]] = []
        self.down = False

    def post_status(self, sha: str, update: StatusUpdate) -> bool:
        if self.down:
            raise ForgeError("POST statuses: 500", 500)
        if not self.posted:
            self.journal.keep_unposted(Unposted(revision=sha, context=update.context, state="success",
                                                description="canary: 1 created", target_url=""))
        self.posted.append((update.context, str(update.state)))
        return True


def test_a_newer_kept_status_survives_the_flush_of_an_older_one(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    journal.keep_unposted(Unposted(revision=SHA, context="reconciler/canary", state="pending",
                                   description="canary: planning", target_url=""))
    forge = SlowForge(journal)
    poster = StatusPoster(forge, journal)  # type: ignore[arg-type]

    assert poster.flush() == 1  # the stale pending went out while the newer success was being kept
    assert [(u.state, u.description) for u in journal.unposted()] == [("success", "canary: 1 created")]
    assert poster.flush() == 1
    assert forge.posted == [("reconciler/canary", "pending"), ("reconciler/canary", "success")]
    assert journal.unposted() == []
