"""Garbage collection of the state dir: the keep decision (pure), and one collection on a real dir."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.daemon.cleanup import GRACE_S, Entry, Needed, StateCleaner, needed, to_remove
from reconciler.source.mirror import GitMirror
from tests.support.git_cli import git
from tests.support.git_work import Work

NOW = 2_000_000_000.0
DAY = 86400.0
A, B, C, D, E, F = (c * 40 for c in "abcdef")


def test_needed_keeps_head_runs_last_good_and_recent_reviews() -> None:
    keep = needed(wanted={A, B}, last_good={"canary": C, "production": D}, reviews=[(4, E), (3, C)],
                  reviewing={5: F})
    assert keep == Needed(commits=frozenset({A, B, C, D, E, F}), pulls=frozenset({3, 4, 5}))
    assert needed([], {}, [], {}) == Needed(frozenset(), frozenset())


def test_to_remove_spares_what_is_kept_and_what_is_younger_than_the_grace() -> None:
    entries = [Entry(A, Path(A), NOW - 2 * GRACE_S), Entry(B, Path(B), NOW - 2 * GRACE_S),
               Entry(C, Path(C), NOW - GRACE_S / 2), Entry(f".{D}.x1", Path(f".{D}.x1"), NOW - GRACE_S)]
    assert [e.name for e in to_remove(entries, {A}, now=NOW, min_age_s=GRACE_S)] == [B, f".{D}.x1"]
    assert to_remove(entries, {A, B}, now=NOW, min_age_s=10 * GRACE_S) == []


def tree(parent: Path, name: str, age_s: float, *, complete: bool = True) -> Path:
    path = parent / name
    (path / "orgs").mkdir(parents=True)
    (path / "orgs" / "org.yaml").write_text("name: x\n")
    os.symlink("/etc/passwd", path / "link")  # removed as a link, never followed
    stamps = [path]
    if complete:
        marker = parent / f"{name}.complete"
        marker.write_text("complete\n")
        stamps.append(marker)
    for stamp in stamps:
        os.utime(stamp, (NOW - age_s, NOW - age_s))
    return path


class Pulls:
    def __init__(self) -> None:
        self.kept: list[frozenset[int]] = []

    def prune_pull_refs(self, keep: frozenset[int]) -> list[int]:
        self.kept.append(keep)
        return [9]


def test_one_collection_over_a_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    trees = state / "trees"
    kept, old, young = tree(trees, A, DAY), tree(trees, B, DAY), tree(trees, C, 60)
    leftover = tree(trees, f".{D}.tmp1", DAY, complete=False)  # an export cut short
    orphan = trees / f"{E}.complete"  # a marker whose tree is gone
    orphan.write_text("complete\n")
    os.utime(orphan, (NOW - DAY, NOW - DAY))
    plugin_old, plugin_new = tree(state / "plugins" / "trees", D, 8 * DAY), tree(state / "plugins" / "trees", E, DAY)
    ext_old = tree(state / "external" / "1234abcd", F, 8 * DAY)
    mirror = Pulls()
    busy = [False]
    cleaner = StateCleaner(state, mirror, lambda: Needed(frozenset({A}), frozenset({2})),
                           lambda: busy[0], cache_s=7 * DAY, clock=lambda: NOW)

    busy[0] = True  # a run is in progress: the caches wait, the trees do not
    assert cleaner.run() == {"trees": 3, "pull_refs": 1}
    assert kept.is_dir() and young.is_dir() and (trees / f"{A}.complete").exists()
    assert not old.exists() and not (trees / f"{B}.complete").exists() and not (trees / f"{B}.lock").exists()
    assert not leftover.exists() and not orphan.exists()
    assert plugin_old.is_dir() and ext_old.is_dir()
    assert Path("/etc/passwd").exists()

    busy[0] = False
    assert cleaner.run() == {"plugins": 1, "external": 1, "pull_refs": 1}
    assert not plugin_old.exists() and plugin_new.is_dir()
    assert not (state / "external" / "1234abcd").exists()  # emptied: gone too
    assert mirror.kept == [frozenset({2})] * 2
    assert sorted(p.name for p in trees.iterdir()) == sorted([A, f"{A}.complete", C, f"{C}.complete"])


def test_pull_request_refs_are_pruned_from_the_mirror(tmp_path: Path) -> None:
    bare = tmp_path / "origin.git"
    git("init", "-q", "--bare", str(bare))
    work = Work(tmp_path / "work", bare)
    work.commit(message="one")
    work.push("main", "HEAD:refs/pull/1/head", "HEAD:refs/pull/2/head", "HEAD:refs/pull/3/head")
    mirror = GitMirror(str(bare), tmp_path / "state")
    mirror.fetch(("+refs/pull/*:refs/pull/*",))
    assert mirror.resolve("refs/pull/1/head")
    assert mirror.prune_pull_refs({2}) == [1, 3]
    assert mirror.resolve("refs/pull/2/head") and mirror.resolve("main")
    assert mirror.prune_pull_refs({2}) == []
    assert GitMirror(str(bare), tmp_path / "fresh").prune_pull_refs(set()) == []  # no mirror yet: nothing to do
