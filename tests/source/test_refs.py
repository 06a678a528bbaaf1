"""Plugin pins: resolve_track for every kind (annotated tags peeled) and confined plugin checkouts."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.errors import SourceError
from reconciler.source.refs import parse_track, plugin_checkout, resolve_track
from tests.support.git_server import GitServer
from tests.support.git_work import Work
from tests.support.net import dead_port


@pytest.fixture
def plugin(git_server: GitServer, make_work: Callable[[Path], Work]) -> tuple[str, Work, dict[str, str]]:
    work = make_work(git_server.repo("acme", "plugins"))
    first = work.commit({"plugins/search/SKILL.md": "# search\n", "README": "r\n"}, "first")
    work.run("tag", "-a", "v1", "-m", "annotated release")
    work.run("tag", "light")
    work.run("checkout", "-q", "-b", "dev")
    dev = work.commit({"plugins/search/SKILL.md": "# search dev\n"}, "dev")
    work.run("checkout", "-q", "main")
    second = work.commit({"plugins/search/SKILL.md": "# search 2\n"}, "second")
    work.push("main", "dev", "v1", "light")
    return git_server.repo_url("acme", "plugins"), work, {"first": first, "dev": dev, "second": second}


def test_resolve_track_for_every_kind(
    git_server: GitServer, plugin: tuple[str, Work, dict[str, str]]
) -> None:
    url, work, shas = plugin
    tag_object = work.run("rev-parse", "v1")
    assert tag_object != shas["first"]
    cache: dict[str, dict[str, str]] = {}
    assert resolve_track(url, "none", cache=cache) == shas["second"]
    assert resolve_track(url, "branch:dev", cache=cache) == shas["dev"]
    assert resolve_track(url, "tag:v1", cache=cache) == shas["first"]  # peeled to the commit
    assert resolve_track(url, "tag:light", cache=cache) == shas["first"]
    assert list(cache) == [url]
    git_server.stop()
    assert resolve_track(url, "branch:main", cache=cache) == shas["second"]  # one listing per run
    sha = "ab" * 20
    assert resolve_track(f"http://127.0.0.1:{dead_port()}/x/y.git", f"sha:{sha}") == sha  # no network


def test_resolve_track_errors(plugin: tuple[str, Work, dict[str, str]]) -> None:
    url, _, _ = plugin
    with pytest.raises(SourceError, match=r"has no tag 'v9'"):
        resolve_track(url, "tag:v9")
    with pytest.raises(SourceError, match=r"has no branch 'gone'"):
        resolve_track(url, "branch:gone")
    for bad in ("latest", "main", "tag:", "tag:a..b", "sha:abc", "branch:a b"):
        with pytest.raises(SourceError, match="is not one of none"):
            parse_track(bad)


def test_plugin_checkout_applies_and_confines_the_subdir(
    git_server: GitServer, plugin: tuple[str, Work, dict[str, str]], tmp_path: Path
) -> None:
    url, work, shas = plugin
    state = tmp_path / "state"
    path = plugin_checkout(url, shas["dev"], state, "plugins/search")
    assert (path / "SKILL.md").read_text() == "# search dev\n"
    root = plugin_checkout(url, shas["second"], state, None)
    assert (root / "plugins" / "search" / "SKILL.md").read_text() == "# search 2\n"
    git_server.stop()
    assert plugin_checkout(url, shas["dev"], state, "plugins/search/") == path  # cached by SHA
    for bad, message in (("../x", "must be relative"), ("/etc", "must be relative"),
                         ("plugins/../..", "must be relative"), ("nope", "is not a directory")):
        with pytest.raises(SourceError, match=message):
            plugin_checkout(url, shas["dev"], state, bad)


def test_plugin_checkout_refuses_a_symlink_escape(
    git_server: GitServer, make_work: Callable[[Path], Work], tmp_path: Path
) -> None:
    work = make_work(git_server.repo("acme", "sneaky"))
    os.symlink("/etc", work.path / "escape")
    os.symlink("real", work.path / "inside")
    sha = work.commit({"real/SKILL.md": "ok\n"})
    work.push()
    url = git_server.repo_url("acme", "sneaky")
    with pytest.raises(SourceError, match="leaves the plugin repository"):
        plugin_checkout(url, sha, tmp_path / "state", "escape")
    assert (plugin_checkout(url, sha, tmp_path / "state", "inside") / "SKILL.md").exists()
    with pytest.raises(SourceError, match="full commit SHA"):
        plugin_checkout(url, "main", tmp_path / "state", None)
