"""Plugin pins: resolve a tracked ref to a commit SHA, and check a plugin out at that SHA.

`track` is a closed vocabulary (`none`, `tag:<name>`, `branch:<name>`, `sha:<40 hex>`).
Resolution only lists the remote's refs (no clone), one listing per source per run when the
caller passes a cache dict; `sha:` needs no network at all. Checkouts go through the source's
`GitMirror` and are exported once per SHA, so the same plugin at the same SHA is never fetched
twice; the plugin's subdirectory is confined to the exported tree.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from reconciler.errors import SourceError
from reconciler.fsutil import is_complete
from reconciler.model.credentials import Credentials
from reconciler.model.refs import FULL_SHA, is_safe_ref
from reconciler.source.mirror import GitMirror, list_remote_heads, safe_url


def parse_track(track: str) -> tuple[str, str]:
    """`tag:v1` -> ("tag", "v1"); `none` -> ("none", ""). Anything else is a SourceError."""
    if track == "none":
        return "none", ""
    kind, sep, value = track.partition(":")
    if sep and kind in ("tag", "branch") and is_safe_ref(value):
        return kind, value
    if sep and kind == "sha" and FULL_SHA.fullmatch(value):
        return kind, value
    raise SourceError(f"track {track!r} is not one of none, tag:<name>, branch:<name>, sha:<40 hex>")


def resolve_track(
    url: str,
    track: str,
    auth: Credentials | None = None,
    cache: dict[str, dict[str, str]] | None = None,
    timeout_s: float = 30,
) -> str:
    """The commit SHA `track` names at `url` right now. `cache` (url -> remote refs) spans one run."""
    kind, value = parse_track(track)
    if kind == "sha":
        return value
    heads = cache.get(url) if cache is not None else None
    if heads is None:
        heads = list_remote_heads(url, auth=auth, timeout_s=timeout_s)
        if cache is not None:
            cache[url] = heads
    name = {"none": "HEAD", "tag": f"refs/tags/{value}", "branch": f"refs/heads/{value}"}[kind]
    if name not in heads:
        what = "a default branch (HEAD)" if kind == "none" else f"{kind} {value!r}"
        raise SourceError(f"{safe_url(url)} has no {what}")
    return heads[name]


def plugin_checkout(
    url: str,
    sha: str,
    state_dir: Path,
    subdir: str | None,
    auth: Credentials | None = None,
    timeout_s: float = 30,
) -> Path:
    """The plugin's directory at `sha` (its `subdir` inside the exported tree), fetched only if needed."""
    sha = sha.lower()
    if not FULL_SHA.fullmatch(sha):
        raise SourceError(f"plugin checkout needs a full commit SHA, got {sha!r}")
    tree = Path(state_dir) / "trees" / sha
    if not is_complete(tree):
        mirror = GitMirror(url, state_dir, auth=auth, timeout_s=timeout_s)
        mirror.ensure_commit(sha)
        tree = mirror.export_tree(sha)
    return confine_subdir(tree, subdir)


def confine_subdir(tree: Path, subdir: str | None) -> Path:
    """`tree/subdir`, refusing absolute paths, `..` and symlinks that lead outside `tree`."""
    if not subdir or subdir.strip("/") in ("", "."):
        return tree
    rel = PurePosixPath(subdir)
    if rel.is_absolute() or ".." in rel.parts or "\\" in subdir:
        raise SourceError(f"plugin path {subdir!r} must be relative and stay inside the plugin repository")
    root = os.path.realpath(tree)
    target = os.path.realpath(os.path.join(root, *rel.parts))
    if os.path.commonpath([root, target]) != root:
        raise SourceError(f"plugin path {subdir!r} leaves the plugin repository (through a symlink)")
    if not os.path.isdir(target):
        raise SourceError(f"plugin path {subdir!r} is not a directory at commit {tree.name}")
    return Path(target)
