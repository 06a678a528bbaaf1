"""Journal retention: old runs go with their actions, by age and by count; a run still running or not
yet recovered stays, so does the newest apply run. Delivery ids survive a restart, and are pruned."""

from __future__ import annotations

from pathlib import Path

from reconciler.daemon.journal import Journal, JournalDeliveries
from reconciler.model.enums import RunKind, RunStatus, Trigger

DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def finished(journal: Journal, sha: str, status: RunStatus = RunStatus.SUCCESS, kind: RunKind = RunKind.APPLY,
             **extra: bool) -> int:
    run_id = journal.start_run(kind, sha, Trigger.PUSH, pr=7 if kind is RunKind.REVIEW else None)
    journal.add_action(run_id, "canary", "acme/ws0", "create", "success", "", 1, 0.1)
    journal.finish_run(run_id, status, "", **extra)
    return run_id


def ids(journal: Journal) -> list[int]:
    return sorted(r.id for r in journal.runs(limit=1000))


def test_runs_older_than_the_retention_go_with_their_actions(tmp_path: Path) -> None:
    clock = Clock()
    journal = Journal(tmp_path / "journal.sqlite", clock=clock)
    old = [finished(journal, c * 40) for c in "ab"]
    unrecovered = finished(journal, "c" * 40, RunStatus.INTERRUPTED)  # rolled back at the next start: kept
    running = journal.start_run(RunKind.APPLY, "d" * 40, Trigger.PUSH)
    review = finished(journal, "e" * 40, RunStatus.PLANNED, RunKind.REVIEW, recovered=True)
    newest_apply = finished(journal, "f" * 40)
    clock.now += 31 * DAY
    fresh = finished(journal, "1" * 40, RunStatus.PLANNED, RunKind.REVIEW, recovered=True)

    assert journal.prune_runs(30 * DAY, 5000) == 3
    assert ids(journal) == [unrecovered, running, newest_apply, fresh]
    assert all(journal.actions(i) == [] for i in (*old, review)) and journal.actions(unrecovered)
    journal.mark_recovered(unrecovered)
    journal.finish_run(running, RunStatus.SUCCESS, "")
    assert journal.prune_runs(30 * DAY, 5000) == 1  # the run that was still running is newer than 30 days
    assert ids(journal) == [running, newest_apply, fresh]


def test_runs_beyond_the_count_go_oldest_first(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    runs = [finished(journal, f"{i:040x}") for i in range(6)]
    assert journal.prune_runs(30 * DAY, 2) == 4
    assert ids(journal) == runs[-2:]
    assert journal.last_status(f"{5:040x}") is RunStatus.SUCCESS


def test_recent_reviews_newest_first(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    finished(journal, "a" * 40, RunStatus.PLANNED, RunKind.REVIEW, recovered=True)
    finished(journal, "b" * 40)
    finished(journal, "c" * 40, RunStatus.PLANNED, RunKind.REVIEW, recovered=True)
    assert journal.recent_reviews(5) == [(7, "c" * 40), (7, "a" * 40)]
    assert journal.recent_reviews(1) == [(7, "c" * 40)]


def test_delivery_ids_survive_a_restart_and_are_pruned_by_age_and_count(tmp_path: Path) -> None:
    clock = Clock()
    journal = Journal(tmp_path / "journal.sqlite", clock=clock)
    seen = JournalDeliveries(journal)
    seen.add("d1")
    seen.add("")  # Gitea always sends one; an empty id is never remembered
    journal.close()

    journal = Journal(tmp_path / "journal.sqlite", clock=clock)
    seen = JournalDeliveries(journal)
    assert "d1" in seen and "d2" not in seen and "" not in seen
    clock.now += 10
    for name in ("d2", "d3", "d4"):
        seen.add(name)
        clock.now += 1
    assert journal.prune_deliveries(max_age_s=8, max_rows=100) == 1  # d1 is older than 8 s
    assert journal.prune_deliveries(max_age_s=100, max_rows=2) == 1  # d2, the oldest left
    assert [d for d in ("d1", "d2", "d3", "d4") if d in seen] == ["d3", "d4"]
