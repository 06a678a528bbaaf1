"""GitExternalFetcher: allowlist and ref checks before any network, the (repo, SHA) cache, refetch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from reconciler.errors import SourceError
from reconciler.fsutil import is_complete
from reconciler.model.config import source_allowed
from reconciler.model.credentials import Credentials, GitCredential
from reconciler.source.external import GitExternalFetcher
from tests.support.git_server import TOKEN, GitServer
from tests.support.git_work import Work
from tests.support.net import dead_port


@pytest.fixture
def shared(git_server: GitServer, make_work: Callable[[Path], Work]) -> tuple[str, str, Work]:
    """`acme/shared-agents` with one commit; returns (repo, url, work)."""
    work = make_work(git_server.repo("acme", "shared-agents"))
    work.commit({"agents.yaml": "- name: helper\n", "prompts/p.md": "hi\n"}, "agents")
    work.push()
    return f"{git_server.host}/acme/shared-agents", git_server.repo_url("acme", "shared-agents"), work


def test_fetch_returns_the_tree_at_the_resolved_sha(shared: tuple[str, str, Work], tmp_path: Path) -> None:
    repo, url, work = shared
    fetcher = GitExternalFetcher(tmp_path / "state", [repo.rsplit("/", 1)[0] + "/"])
    root = fetcher.fetch(repo, "main", url)
    sha = work.run("rev-parse", "HEAD")
    assert root.name == sha and root.parent.parent == tmp_path / "state" / "external" and is_complete(root)
    assert (root / "agents.yaml").read_text() == "- name: helper\n"
    moved = work.commit({"agents.yaml": "- name: moved\n"}, "move")
    work.push()
    again = fetcher.fetch(repo, "main", url)
    assert again.name == moved and (again / "agents.yaml").read_text() == "- name: moved\n"
    assert (root / "agents.yaml").read_text() == "- name: helper\n"  # the old SHA's tree is untouched


def test_tags_and_full_shas_resolve(shared: tuple[str, str, Work], tmp_path: Path) -> None:
    repo, url, work = shared
    first = work.run("rev-parse", "HEAD")
    work.run("tag", "-a", "v1.0", "-m", "release")
    work.commit({"later": "x"})
    work.push("main", "v1.0")
    fetcher = GitExternalFetcher(tmp_path / "state", [repo])
    assert fetcher.fetch(repo, "v1.0", url).name == first
    assert fetcher.fetch(repo, "refs/tags/v1.0", url).name == first
    assert fetcher.fetch(repo, first, url).name == first
    assert fetcher.fetch(repo, first[:12], url).name == first
    with pytest.raises(SourceError, match="ref 'nope' not found"):
        fetcher.fetch(repo, "nope", url)


def test_allowlist_is_enforced_before_any_network(tmp_path: Path) -> None:
    host = f"127.0.0.1:{dead_port()}"
    fetcher = GitExternalFetcher(tmp_path / "state", [f"{host}/acme/"])
    for repo in (f"{host}/acme-evil/x", f"{host}/evil/acme", f"{host}/acme-x/acme/x", "other.example/acme/x"):
        with pytest.raises(SourceError, match="is not in allowed_sources"):
            fetcher.fetch(repo, "main", f"http://{repo}.git")
    for repo in (f"{host}/acme/../evil/x", f"{host}/acme", f"{host}/acme/x y", f"http://{host}/acme/x"):
        with pytest.raises(SourceError, match="not of the form host/owner/name"):
            fetcher.fetch(repo, "main", None)
    with pytest.raises(SourceError, match="is not in allowed_sources"):
        GitExternalFetcher(tmp_path / "state", []).fetch(f"{host}/acme/x", "main", None)
    assert not (tmp_path / "state" / "mirrors").exists()


def test_source_allowed_matches_on_segment_boundaries() -> None:
    assert source_allowed("git.example.com/acme/x", ["git.example.com/acme/"])
    assert source_allowed("git.example.com/acme/x", ["git.example.com/acme"])
    assert not source_allowed("git.example.com/acme-evil/x", ["git.example.com/acme"])
    assert not source_allowed("git.example.com.evil/acme/x", ["git.example.com/"])
    assert not source_allowed("git.example.com/acme/x", ["", "/"])


def test_bad_refs_and_urls_are_rejected_before_any_network(tmp_path: Path) -> None:
    repo = f"127.0.0.1:{dead_port()}/acme/x"
    fetcher = GitExternalFetcher(tmp_path / "state", [repo.rsplit("/", 2)[0] + "/"])
    for ref in ("..", "main..evil", "a b", "", "main;rm", "ref\n", "../../etc"):
        with pytest.raises(SourceError, match="is not allowed: use letters"):
            fetcher.fetch(repo, ref, None)
    bad_urls = {
        "http://127.0.0.1:1/acme/x.git": "does not point at repo",
        f"ftp://{repo}.git": "must be http or https",
        f"http://oauth2:{TOKEN}@{repo}.git": "must not carry credentials",
        f"http://{repo}.git?x=1": "query or fragment",
    }
    for url, message in bad_urls.items():
        with pytest.raises(SourceError, match=message) as err:
            fetcher.fetch(repo, "main", url)
        assert TOKEN not in str(err.value)
    assert not (tmp_path / "state" / "mirrors").exists()


def test_cached_sha_needs_no_network(
    git_server: GitServer, shared: tuple[str, str, Work], tmp_path: Path
) -> None:
    repo, url, work = shared
    fetcher = GitExternalFetcher(tmp_path / "state", [repo])
    sha = fetcher.fetch(repo, "main", url).name
    git_server.stop()
    served = fetcher.fetch(repo, sha, url)
    assert served.name == sha and (served / "agents.yaml").exists()
    with pytest.raises(SourceError, match="Connection refused"):
        fetcher.fetch(repo, "main", url)  # a branch may have moved: asking is required


def test_unmoved_ref_is_served_from_cache_with_a_listing_only(
    git_server: GitServer, shared: tuple[str, str, Work], tmp_path: Path
) -> None:
    repo, url, _ = shared
    fetcher = GitExternalFetcher(tmp_path / "state", [repo])
    first = fetcher.fetch(repo, "main", url)
    before = git_server.gate.requests
    assert fetcher.fetch(repo, "main", url) == first
    assert git_server.gate.requests - before == 1  # one ref listing, no fetch


def test_half_written_cache_is_refetched(shared: tuple[str, str, Work], tmp_path: Path) -> None:
    repo, url, _ = shared
    fetcher = GitExternalFetcher(tmp_path / "state", [repo])
    root = fetcher.fetch(repo, "main", url)
    root.with_name(root.name + ".complete").unlink()
    (root / "agents.yaml").write_text("tampered\n")
    (root / "junk").write_text("left behind\n")
    again = fetcher.fetch(repo, root.name, url)
    assert again == root and is_complete(again)
    assert (again / "agents.yaml").read_text() == "- name: helper\n" and not (again / "junk").exists()


def test_the_credential_of_the_host_is_used(git_server: GitServer, make_work: Callable[[Path], Work],
                                            tmp_path: Path) -> None:
    work = make_work(git_server.repo("private", "agents"))
    sha = work.commit({"a.yaml": "[]\n"})
    work.push()
    repo = f"{git_server.host}/private/agents"
    elsewhere = Credentials(git=(GitCredential(host="127.0.0.1:9", password=SecretStr(TOKEN)),))
    fetcher = GitExternalFetcher(tmp_path / "other", [f"{git_server.host}/private/"], elsewhere)
    with pytest.raises(SourceError, match="no credential is configured for"):
        fetcher.fetch(repo, "main", git_server.repo_url("private", "agents"))  # another host's token: not sent

    mine = Credentials(git=(GitCredential(host=git_server.host, password=SecretStr(TOKEN)),))
    fetcher = GitExternalFetcher(tmp_path / "state", [f"{git_server.host}/private/"], mine)
    assert fetcher.fetch(repo, "main", git_server.repo_url("private", "agents")).name == sha
    for config in (tmp_path / "state").rglob("config"):
        assert TOKEN not in config.read_text()
