"""Garbage collection of the state dir: what runs wrote there and no run needs any more.

- exported trees (`<state>/trees/<sha>`): removed unless the daemon still needs the commit (the
  branch head, the run in progress or queued, the last good revision of each tier, the heads of the
  newest reviews and of the reviews running or queued), and only once older than a grace period,
  so a tree exported a moment ago for a reader the daemon does not track stays;
- caches (`<state>/external/<repo>/<sha>`, `<state>/plugins/trees/<sha>`): removed when not written
  for the cache retention, and only while no run or review is in progress (their renders read
  them); a render that needs one again fetches or exports it again;
- leftovers of an export cut short (`.<sha>.*` temp dirs, markers and locks without their tree);
- the mirror's `refs/pull/N/...` of pull requests neither among the newest reviews nor queued.

Each removal goes marker first (`remove_materialized`): a half-removed tree is never trusted. Which
entries go is decided by two pure functions, `needed` and `to_remove`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.fsutil import remove_materialized
from reconciler.source.mirror import GitMirror

log = logging.getLogger(__name__)

GRACE_S = 3600.0  # a tree younger than this is never removed
KEEP_REVIEWS = 10  # the heads (and PR refs) of this many newest reviews stay
_BESIDE = (".complete", ".lock")  # files `materialize` keeps next to a tree


@dataclass(frozen=True)
class Entry:
    name: str  # the directory's name: a commit SHA (or a leftover's temp name)
    path: Path
    last_used: float  # epoch seconds: the newest mtime of the tree, its marker and its lock


@dataclass(frozen=True)
class Needed:
    """What the daemon holds on to at one moment."""

    commits: frozenset[str]
    pulls: frozenset[int]


def needed(wanted: Iterable[str], last_good: Mapping[str, str], reviews: Iterable[tuple[int, str]],
           reviewing: Mapping[int, str]) -> Needed:
    """The commits whose trees stay and the PRs whose refs stay (pure).

    `wanted`: the worker's head, running and queued commits; `last_good`: tier -> revision;
    `reviews`: (PR, head) of the newest reviews; `reviewing`: PR -> head running or queued.
    """
    reviews = list(reviews)
    commits = {*wanted, *last_good.values(), *(sha for _, sha in reviews), *reviewing.values()}
    return Needed(frozenset(c.lower() for c in commits if c), frozenset({*(n for n, _ in reviews), *reviewing}))


def to_remove(entries: Iterable[Entry], keep: Collection[str], *, now: float, min_age_s: float) -> list[Entry]:
    """The entries to remove: not kept by name and not used for `min_age_s` (pure)."""
    return [e for e in entries if e.name not in keep and now - e.last_used >= min_age_s]


def scan(directory: Path) -> list[Entry]:
    """The materialized entries directly under `directory`, leftovers included (markers grouped)."""
    try:
        children = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    used: dict[str, float] = {}
    for child in children:
        name = next((child.name.removesuffix(s) for s in _BESIDE if child.name.endswith(s)), child.name)
        try:
            mtime = child.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        used[name] = max(used.get(name, 0.0), mtime)
    return [Entry(name, directory / name, at) for name, at in sorted(used.items())]


class StateCleaner:
    """Runs one collection over a state dir (a scheduler job); never raises."""

    def __init__(self, state_dir: Path, mirror: GitMirror, needs: Callable[[], Needed], busy: Callable[[], bool],
                 *, cache_s: float, grace_s: float = GRACE_S, clock: Callable[[], float] = time.time) -> None:
        self.state_dir, self.mirror, self.needs, self.busy = Path(state_dir), mirror, needs, busy
        self.cache_s, self.grace_s, self.clock = cache_s, grace_s, clock

    def run(self) -> dict[str, int]:
        """Remove what nothing needs; how many of each kind went."""
        removed: Counter[str] = Counter()
        now = self.clock()
        for entry in to_remove(scan(self.state_dir / "trees"), self.needs().commits, now=now, min_age_s=self.grace_s):
            if entry.name not in self.needs().commits:  # asked for again since the snapshot: stays
                removed["trees"] += self._remove(entry)
        caches = [("plugins", self.state_dir / "plugins" / "trees")]
        external = self.state_dir / "external"
        caches += [("external", d) for d in sorted(external.iterdir())] if external.is_dir() else []
        for kind, directory in caches:
            for entry in to_remove(scan(directory), (), now=now, min_age_s=self.cache_s):
                if self.busy():  # a render may be reading it: next time
                    break
                removed[kind] += self._remove(entry)
            if kind == "external":
                with contextlib.suppress(OSError):  # only when empty
                    directory.rmdir()
        try:
            removed["pull_refs"] = len(self.mirror.prune_pull_refs(self.needs().pulls))
        except Exception as exc:
            log.warning("could not prune pull request refs", extra={"error": str(exc)})
        done = {k: v for k, v in removed.items() if v}
        if done:
            log.info("state dir cleaned", extra={"outcome": ", ".join(f"{v} {k}" for k, v in sorted(done.items()))})
        return done

    @staticmethod
    def _remove(entry: Entry) -> int:
        try:
            return int(remove_materialized(entry.path))
        except OSError as exc:
            log.warning("could not remove from the state dir", extra={"context": str(entry.path), "error": str(exc)})
            return 0
