"""GitMirror against a real smart-HTTP git server: fetch, force-push, deletes, exports, auth, timeouts."""

from __future__ import annotations

import logging
import os
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from reconciler.errors import SourceError
from reconciler.fsutil import is_complete
from reconciler.model.credentials import Credentials, GitCredential
from reconciler.source.mirror import GitMirror, list_remote_heads, mask, safe_url
from tests.support.git_server import TOKEN, GitServer
from tests.support.git_work import Work


@pytest.fixture
def acme(git_server: GitServer, make_work: Callable[[Path], Work]) -> tuple[str, Work]:
    work = make_work(git_server.repo("acme", "config"))
    work.commit({"org.yaml": "name: one\n"}, "one")
    work.push()
    return git_server.repo_url("acme", "config"), work


def test_first_fetch_clones_then_fetches_reuse_the_mirror(acme: tuple[str, Work], tmp_path: Path) -> None:
    url, work = acme
    mirror = GitMirror(url, tmp_path / "state")
    mirror.fetch()
    first = work.run("rev-parse", "HEAD")
    assert mirror.resolve("main") == first
    assert mirror.path.parent == tmp_path / "state" / "mirrors" and mirror.path.name.endswith("-config.git")
    inode = mirror.path.stat().st_ino
    (mirror.path / "sentinel").write_text("still here")

    second = work.commit({"org.yaml": "name: two\n"}, "two")
    work.push()
    again = GitMirror(url, tmp_path / "state")
    assert again.path == mirror.path
    again.fetch()
    assert again.resolve("main") == second
    assert again.has_commit(first)  # history kept: fetched incrementally, not recloned
    assert mirror.path.stat().st_ino == inode and (mirror.path / "sentinel").exists()
    assert "tok" not in (mirror.path / "config").read_text()


def test_force_push_updates_the_mirror(acme: tuple[str, Work], tmp_path: Path) -> None:
    url, work = acme
    mirror = GitMirror(url, tmp_path / "state")
    old = work.commit({"a.txt": "a\n"}, "to be rewritten")
    work.push()
    mirror.fetch()
    assert mirror.resolve("main") == old
    work.run("reset", "-q", "--hard", "HEAD~1")
    new = work.commit({"b.txt": "b\n"}, "rewritten")
    work.push(force=True)
    mirror.fetch()
    assert mirror.resolve("main") == new
    tree = mirror.export_tree(new)
    assert (tree / "b.txt").exists() and not (tree / "a.txt").exists()


def test_deleted_branch_gives_a_clear_error(acme: tuple[str, Work], tmp_path: Path) -> None:
    url, work = acme
    work.run("checkout", "-q", "-b", "feature")
    sha = work.commit({"f.txt": "f\n"}, "feature")
    work.push("feature")
    mirror = GitMirror(url, tmp_path / "state")
    mirror.fetch()
    assert mirror.resolve("feature") == sha
    work.push(":feature")
    mirror.fetch()
    with pytest.raises(SourceError) as err:
        mirror.resolve("feature")
    assert str(err.value) == f"branch 'feature' no longer exists at {url}"
    with pytest.raises(SourceError, match=r"ref 'nope' not found at http://127\.0\.0\.1:\d+/acme/config\.git"):
        mirror.resolve("nope")
    work.push("feature")  # recreated: resolvable again
    mirror.fetch()
    assert mirror.resolve("refs/heads/feature") == sha


def test_remote_heads_lists_without_fetching(acme: tuple[str, Work], tmp_path: Path) -> None:
    url, work = acme
    head = work.run("rev-parse", "HEAD")
    work.run("tag", "-a", "v1", "-m", "annotated")
    work.run("tag", "light")
    work.push("main", "v1", "light")
    mirror = GitMirror(url, tmp_path / "state")
    heads = mirror.remote_heads()
    assert heads == {"HEAD": head, "refs/heads/main": head, "refs/tags/v1": head, "refs/tags/light": head}
    assert not mirror.has_commit(head)
    assert list_remote_heads(url) == heads


def test_resolve_accepts_branches_tags_and_shas(acme: tuple[str, Work], tmp_path: Path) -> None:
    url, work = acme
    first = work.run("rev-parse", "HEAD")
    work.run("tag", "-a", "v1", "-m", "annotated")
    second = work.commit({"x": "x\n"})
    work.push("main", "v1")
    mirror = GitMirror(url, tmp_path / "state")
    mirror.fetch()
    assert mirror.resolve("main") == mirror.resolve("refs/heads/main") == mirror.resolve("HEAD") == second
    assert mirror.resolve("v1") == mirror.resolve("refs/tags/v1") == first  # annotated tag peeled
    assert mirror.resolve(first) == mirror.resolve(first[:10]) == first
    with pytest.raises(SourceError, match="commit '0000000000' not found"):
        mirror.resolve("0000000000")
    with pytest.raises(SourceError, match="invalid ref"):
        mirror.resolve("a b")


def test_export_writes_modes_and_keeps_symlinks_unfollowed(acme: tuple[str, Work], tmp_path: Path) -> None:
    url, work = acme
    (work.path / "bin").mkdir()
    (work.path / "bin" / "run.sh").write_text("#!/bin/sh\n")
    (work.path / "bin" / "run.sh").chmod(0o755)
    os.symlink("/etc/passwd", work.path / "abs-link")
    os.symlink("../outside", work.path / "bin" / "rel-link")
    sub = work.run("rev-parse", "HEAD")
    work.run("update-index", "--add", "--cacheinfo", f"160000,{sub},vendored")  # a submodule entry
    sha = work.commit({"deep/er/file.txt": "deep\n"}, "tree")
    work.push()
    mirror = GitMirror(url, tmp_path / "state")
    mirror.fetch()
    tree = mirror.export_tree(sha)
    assert tree == tmp_path / "state" / "trees" / sha and is_complete(tree)
    assert (tree / "deep" / "er" / "file.txt").read_text() == "deep\n"
    assert stat.S_IMODE((tree / "bin" / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((tree / "org.yaml").stat().st_mode) == 0o644
    assert os.readlink(tree / "abs-link") == "/etc/passwd" and (tree / "abs-link").is_symlink()
    assert os.readlink(tree / "bin" / "rel-link") == "../outside"
    assert not (tree / "vendored").exists()
    assert sorted(p.name for p in tree.iterdir()) == ["abs-link", "bin", "deep", "org.yaml"]


def test_half_written_tree_is_rewritten(acme: tuple[str, Work], tmp_path: Path) -> None:
    url, work = acme
    sha = work.run("rev-parse", "HEAD")
    mirror = GitMirror(url, tmp_path / "state")
    mirror.fetch()
    partial = tmp_path / "state" / "trees" / sha
    partial.mkdir(parents=True)
    (partial / "junk").write_text("left by a crash")
    tree = mirror.export_tree(sha)
    assert sorted(p.name for p in tree.iterdir()) == ["org.yaml"] and is_complete(tree)


def test_concurrent_exports_of_two_shas_do_not_interfere(acme: tuple[str, Work], tmp_path: Path) -> None:
    url, work = acme
    shas = [work.commit({"org.yaml": "name: v0\n", "only-0.txt": "0"}, "v0"),
            work.commit({"org.yaml": "name: v1\n", "only-1.txt": "1", "only-0.txt": None}, "v1")]
    work.push()
    mirror = GitMirror(url, tmp_path / "state")
    mirror.fetch()
    results: dict[int, Path] = {}
    errors: list[BaseException] = []

    def export(i: int) -> None:
        try:
            results[i] = GitMirror(url, tmp_path / "state").export_tree(shas[i % 2])
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=export, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, path in results.items():
        v = i % 2
        assert path.name == shas[v]
        assert (path / "org.yaml").read_text() == f"name: v{v}\n"
        assert (path / f"only-{v}.txt").exists() and not (path / f"only-{1 - v}.txt").exists()
        assert is_complete(path)


def test_same_sha_from_four_threads_gives_one_complete_tree(acme: tuple[str, Work], tmp_path: Path) -> None:
    url, work = acme
    sha = work.commit({f"d{i}/f{j}.txt": f"{i}-{j}" for i in range(10) for j in range(20)}, "many files")
    work.push()
    GitMirror(url, tmp_path / "state").fetch()
    barrier = threading.Barrier(4)
    results: list[Path] = []
    errors: list[BaseException] = []

    def export() -> None:
        try:
            barrier.wait()
            results.append(GitMirror(url, tmp_path / "state").export_tree(sha))
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=export) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4 and len(set(results)) == 1
    tree = results[0]
    assert len(list(tree.rglob("*.txt"))) == 200 and is_complete(tree)
    leftovers = [p.name for p in tree.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_token_goes_through_callbacks_and_nowhere_else(
    git_server: GitServer, make_work: Callable[[Path], Work], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    work = make_work(git_server.repo("private", "config"))
    sha = work.commit({"secret-free.txt": "x\n"})
    work.push()
    url = git_server.repo_url("private", "config")
    state = tmp_path / "state"

    with pytest.raises(SourceError, match="requires authentication and no credential is configured"):
        GitMirror(url, state / "anon").fetch()

    mirror = GitMirror(url, state, auth=creds(git_server.host, TOKEN))
    assert mirror.remote_heads()["refs/heads/main"] == sha
    mirror.fetch()
    assert mirror.resolve("main") == sha
    assert (mirror.export_tree(sha) / "secret-free.txt").exists()

    messages: list[str] = []
    for bad in (GitMirror(url, state / "wrong", auth=creds(git_server.host, "not-the-token")),
                GitMirror(git_server.repo_url("private", "missing"), state, auth=creds(git_server.host, TOKEN)),
                GitMirror(f"http://oauth2:{TOKEN}@127.0.0.1:{git_server.served.port}/private/missing.git",
                          state, auth=creds(git_server.host, TOKEN))):
        with pytest.raises(SourceError) as err:
            bad.fetch()
        messages.append(str(err.value))
    assert "rejected the configured credential" in messages[0]
    assert all(TOKEN not in m and "tok-SECRET" not in m for m in messages)

    for config in state.rglob("config"):
        assert TOKEN not in config.read_text()
    for record in caplog.records:
        assert TOKEN not in record.getMessage() and TOKEN not in repr(record.__dict__)


def test_network_calls_time_out(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/acme/slow.git"
        with pytest.raises(SourceError, match="timed out"):
            GitMirror(url, tmp_path / "state", timeout_s=0.5).fetch()
        with pytest.raises(SourceError, match="timed out"):
            list_remote_heads(url, timeout_s=0.5)


def test_local_path_sources(git_server: GitServer, make_work: Callable[[Path], Work], tmp_path: Path) -> None:
    work = make_work(git_server.repo("acme", "local"))
    sha = work.commit({"a": "a\n"})
    for source in (str(work.path), str(git_server.root / "acme" / "local.git")):
        if source.endswith(".git"):
            work.push()
        mirror = GitMirror(source, tmp_path / "state")
        mirror.fetch()
        assert mirror.resolve("main") == sha
    with pytest.raises(SourceError, match="is not a git repository"):
        GitMirror(str(tmp_path / "nothing-here"), tmp_path / "state")
    (work.path / "sub").mkdir()
    with pytest.raises(SourceError, match="is not a git repository"):  # no search upwards
        GitMirror(str(work.path / "sub"), tmp_path / "state")


def test_mirror_never_reads_an_enclosing_repository(acme: tuple[str, Work]) -> None:
    url, work = acme
    mirror = GitMirror(url, work.path / "state")  # state dir inside a work tree
    assert not mirror.has_commit(work.run("rev-parse", "HEAD"))
    with pytest.raises(SourceError, match="no mirror of .* yet; fetch first"):
        mirror.resolve("main")


def test_mask_and_safe_url() -> None:
    text = f"GET https://oauth2:{TOKEN}@h/x failed; auth=b2F1dGgyOnRvay1TRUNSRVQtMTIz; tok-SECRET-123"
    masked = mask(text, TOKEN)
    assert TOKEN not in masked and "b2F1dGgy" not in masked and "https://h/x" in masked
    assert mask("nothing", "") == "nothing"
    assert safe_url(f"https://u:{TOKEN}@host:3000/a/b.git") == "https://host:3000/a/b.git"
    assert safe_url("https://host/a.git") == "https://host/a.git"


def creds(host: str, token: str) -> Credentials:
    return Credentials(git=(GitCredential(host=host, password=SecretStr(token)),))
