"""In-process stand-ins for the pipeline's edges: a forge that records, a pin resolver with no I/O,
and `Parts` wired to the in-memory backend. For the fast middle layer (no engine, no git, no HTTP)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.backends.memory import MemoryBackend
from reconciler.forge.base import CombinedStatus, PullRequest, StatusUpdate
from reconciler.model.config import ReconcilerFile
from reconciler.model.desired import PluginPinRef
from reconciler.pipeline.compose import Parts, build_parts
from reconciler.pipeline.settings import Settings
from reconciler.report.statuses import StatusLine
from tests.support.policy import policy_for


@dataclass
class FakeForge:
    """Records what the reconciler posts; `down = True` makes every call fail like an unreachable Gitea."""

    statuses: list[tuple[str, StatusUpdate]] = field(default_factory=list)
    comments: dict[int, str] = field(default_factory=dict)
    pulls: list[PullRequest] = field(default_factory=list)
    down: bool = False

    def _check(self) -> None:
        if self.down:
            from reconciler.errors import ForgeError

            raise ForgeError("POST /statuses: connection refused")

    def branch_head(self, branch: str) -> str:
        self._check()
        return "0" * 40

    def open_pull_requests(self, base_branch: str) -> list[PullRequest]:
        self._check()
        return list(self.pulls)

    def post_status(self, sha: str, update: StatusUpdate) -> bool:
        self._check()
        self.statuses.append((sha, update))
        return True

    def combined_status(self, ref: str) -> CombinedStatus:
        self._check()
        return CombinedStatus(sha=ref, state=None)

    def upsert_pr_comment(self, number: int, body: str, marker: str) -> int:
        self._check()
        self.comments[number] = body
        return number

    def final(self, sha: str) -> dict[str, StatusUpdate]:
        """The latest status per context on `sha`."""
        return {u.context: u for s, u in self.statuses if s == sha}


@dataclass
class FakeResolver:
    """Digests by image reference, a fixed SHA and directory per plugin; no network."""

    digests: dict[str, str] = field(default_factory=dict)
    plugin_dir: Path | None = None
    calls: int = 0

    def image_digest(self, ref: str) -> str:
        self.calls += 1
        return self.digests[ref]

    def plugin(self, pin: PluginPinRef) -> tuple[str, Path]:
        self.calls += 1
        assert self.plugin_dir is not None
        return "c" * 40, self.plugin_dir


class MemoryParts(Parts):
    """`Parts` whose backend is one `MemoryBackend` and whose pins resolve through a `FakeResolver`."""

    memory: MemoryBackend
    fake_resolver: FakeResolver

    def backend(self, repo: ReconcilerFile) -> MemoryBackend:
        return self.memory

    def resolver(self) -> FakeResolver:
        return self.fake_resolver


def memory_parts(state_dir: Path, *, forge: FakeForge | None = None, clock: float | None = None,
                 **settings: object) -> MemoryParts:
    settings.setdefault("policy", policy_for())
    built = build_parts(Settings(state_dir=state_dir, secrets_dir=None, max_delete=100, health_timeout_s=5,
                                 **settings), forge=forge)  # type: ignore[arg-type]
    parts = MemoryParts(**vars(built))
    parts.memory, parts.fake_resolver = MemoryBackend("test"), FakeResolver()
    if clock is not None:
        parts.wall = lambda: clock
    else:
        parts.wall = time.time
    return parts


class TreeMirror:
    """The commits a test wrote, by SHA (what `checkout_commit` asks of a `GitMirror`); `fail`: an
    exception every fetch raises."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.trees: dict[str, Path] = {}
        self.fail: Exception | None = None

    def add(self, sha: str, files: dict[str, Any]) -> str:
        """Commit `files` (path -> data, written as YAML) as `sha`."""
        tree = self.root / sha
        for rel, data in files.items():
            path = tree / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.trees[sha] = tree
        return sha

    def ensure_commit(self, sha: str, extra_refspecs: tuple[str, ...] = ()) -> None:
        if self.fail is not None:
            raise self.fail

    def export_tree(self, sha: str) -> Path:
        return self.trees[sha]


class RecordingPoster:
    """Records posted status lines per commit; a call whose number is in `raise_on` raises instead."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, StatusLine]] = []
        self.raise_on: set[int] = set()
        self.calls = 0

    def post_lines(self, sha: str, lines: Sequence[StatusLine], target_url: str) -> list[StatusLine]:
        self.calls += 1
        if self.calls in self.raise_on:
            raise RuntimeError("poster bug")
        self.posted += [(sha, line) for line in lines]
        return []

    def final(self, sha: str) -> dict[str, StatusLine]:
        return {line.context: line for s, line in self.posted if s == sha}
