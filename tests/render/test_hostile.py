"""Hostile config repos: every one fails with file:line:col, nothing is rendered."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.render import loader
from tests.render.conftest import LocalFetcher, WriteRepo, render_errors, render_ok

HEAD = "name: Acme\ndefaults: {runtime: claude-code}\nworkspaces:\n"


def test_include_traversal_by_dotdot_absolute_and_symlink(write_repo: WriteRepo, tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("- name: Evil\n")
    repo = write_repo(
        {
            "orgs/acme/org.yaml": HEAD
            + (f"  - !include ../../../outside.yaml\n  - !include {outside}\n  - !include link.yaml\n")
        }
    )
    os.symlink(outside, repo / "orgs/acme/link.yaml")
    errors = render_errors(repo)
    assert len(errors) == 3
    assert errors[0].startswith("orgs/acme/org.yaml:4:5:") and "outside the repository" in errors[0]
    assert errors[1].startswith("orgs/acme/org.yaml:5:5:") and "must be a relative path" in errors[1]
    assert errors[2].startswith("orgs/acme/org.yaml:6:5:") and "outside the repository" in errors[2]


def test_symlinked_directory_inside_repo_works(write_repo: WriteRepo) -> None:
    repo = write_repo(
        {
            "orgs/acme/org.yaml": HEAD + "  - !include teams/eng.yaml\n",
            "shared/teams/eng.yaml": "- name: Engineer\n",
        }
    )
    os.symlink(repo / "shared/teams", repo / "orgs/acme/teams")
    assert list(render_ok(repo).by_id()) == ["acme/engineer"]


def test_files_dir_escape_is_rejected(write_repo: WriteRepo, tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    repo = write_repo(
        {"orgs/acme/org.yaml": HEAD + ("  - name: A\n    files_dir: ../../../etc\n  - name: B\n    files_dir: files\n")}
    )
    (repo / "orgs/acme/files").mkdir()
    os.symlink("/etc/passwd", repo / "orgs/acme/files/passwd")
    errors = render_errors(repo)
    assert errors[0].startswith("orgs/acme/org.yaml:5:16:") and "outside the repository" in errors[0]
    assert errors[1].startswith("orgs/acme/org.yaml:7:16:") and "links outside the repository" in errors[1]


def test_include_cycle_reports_the_chain(write_repo: WriteRepo) -> None:
    repo = write_repo(
        {
            "orgs/acme/org.yaml": HEAD + "  - !include a.yaml\n",
            "orgs/acme/a.yaml": "- name: A\n  children: !include b.yaml\n",
            "orgs/acme/b.yaml": "- name: B\n  children: !include a.yaml\n",
        }
    )
    (error,) = render_errors(repo)
    assert error.startswith("orgs/acme/b.yaml:2:13:")
    assert "cycle: orgs/acme/a.yaml -> orgs/acme/b.yaml -> orgs/acme/a.yaml" in error


def test_include_depth_is_bounded(write_repo: WriteRepo) -> None:
    files = {"orgs/acme/org.yaml": HEAD + "  - !include d0.yaml\n"}
    for i in range(20):
        files[f"orgs/acme/d{i}.yaml"] = f"- name: D{i}\n  children: !include d{i + 1}.yaml\n"
    files["orgs/acme/d20.yaml"] = "- name: Last\n"
    (error,) = render_errors(write_repo(files))
    assert "nested deeper than 16 levels" in error


def test_billion_laughs_is_refused(write_repo: WriteRepo) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    repo = write_repo({"orgs/acme/org.yaml": "name: Acme\nbomb:\n  " + "\n  ".join(lines) + "\n"})
    (error,) = render_errors(repo)
    assert error.startswith("orgs/acme/org.yaml:1:1:") and "alias bomb" in error


def test_huge_file_is_refused_before_parsing(write_repo: WriteRepo) -> None:
    repo = write_repo({"orgs/acme/org.yaml": HEAD + "# " + "x" * (loader.MAX_FILE_BYTES + 10) + "\n"})
    (error,) = render_errors(repo)
    assert error.startswith("orgs/acme/org.yaml:") and "byte limit" in error


def test_unknown_and_python_tags_are_rejected(write_repo: WriteRepo) -> None:
    repo = write_repo(
        {
            "orgs/acme/org.yaml": HEAD + "  - name: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
            "orgs/beta/org.yaml": "name: Beta\nworkspaces:\n  - !secret foo\n",
        }
    )
    errors = render_errors(repo)
    assert errors[0].startswith("orgs/acme/org.yaml:4:11:") and "python/object/apply" in errors[0]
    assert errors[1].startswith("orgs/beta/org.yaml:3:5:") and "'!secret' is not allowed" in errors[1]
    assert not Path("/tmp/pwned").exists()


def test_duplicate_mapping_keys_and_bad_yaml(write_repo: WriteRepo) -> None:
    repo = write_repo(
        {
            "orgs/acme/org.yaml": HEAD + "  - name: A\n    tier: canary\n    tier: production\n",
            "orgs/beta/org.yaml": "name: Beta\nworkspaces: [\n",
        }
    )
    errors = render_errors(repo)
    assert errors[0].startswith("orgs/acme/org.yaml:6:5:") and "duplicate key 'tier'" in errors[0]
    assert errors[1].startswith("orgs/beta/org.yaml:3:1:") and "invalid YAML" in errors[1]


def test_external_semantics_with_a_local_fetcher(write_repo: WriteRepo, tmp_path: Path) -> None:
    fetched = tmp_path / "ext" / "127.0.0.1:3000/agents/shared" / "v1"
    (fetched / "teams" / "prompts").mkdir(parents=True)
    (fetched / "teams" / "prompts" / "system-prompt.md").write_text("from the shared repo\n")
    (fetched / "teams" / "team.yaml").write_text("- name: Shared Agent\n  files_dir: prompts\n")
    repo = write_repo(
        {
            "reconciler.yaml": "allowed_sources: ['127.0.0.1:3000/agents/']\n",
            "orgs/acme/org.yaml": HEAD
            + "  - !external {repo: 127.0.0.1:3000/agents/shared, ref: v1, path: teams/team.yaml}\n",
        }
    )
    fetcher = LocalFetcher(tmp_path / "ext")
    ws = render_ok(repo, fetcher=fetcher).by_id()["acme/shared-agent"]
    assert ws.files is not None and ws.files.root == str(fetched / "teams" / "prompts")
    assert ws.files.display == "127.0.0.1:3000/agents/shared@v1:teams/prompts"


def test_external_checks_happen_before_any_fetch(write_repo: WriteRepo, tmp_path: Path) -> None:
    repo = write_repo(
        {
            "reconciler.yaml": "allowed_sources: ['127.0.0.1:3000/agents/']\n",
            "orgs/acme/org.yaml": HEAD
            + (
                "  - !external {repo: 127.0.0.1:3000/agents-evil/x, ref: v1, path: a.yaml}\n"
                "  - !external {repo: 127.0.0.1:3000/agents/x, ref: ../main, path: a.yaml}\n"
                "  - !external {repo: 127.0.0.1:3000/agents/x, ref: v1, path: a.yaml, url: 'http://u:p@127.0.0.1:3000/agents/x.git'}\n"
                "  - !external {repo: 127.0.0.1:3000/agents/x, ref: v1, path: a.yaml, url: 'http://127.0.0.1:9/other/x.git'}\n"
                "  - !external {repo: 127.0.0.1:3000/agents/x, ref: 'v 1', path: a.yaml}\n"
                "  - name: Disabled\n    spawning: false\n"
                "    children: !external {repo: nope/x, ref: v1, path: a.yaml}\n"
            ),
        }
    )
    fetcher = LocalFetcher(tmp_path)
    errors = render_errors(repo, fetcher=fetcher)
    assert fetcher.calls == []
    assert len(errors) == 5  # the spawning:false subtree is never looked at
    assert "not allowed" in errors[0] and "contain no '..'" in errors[1]
    assert "without credentials" in errors[2] and "does not point at repo" in errors[3]
    assert errors[4].startswith("orgs/acme/org.yaml:8:")


def test_external_path_must_stay_in_fetched_tree_and_depth_is_bounded(write_repo: WriteRepo, tmp_path: Path) -> None:
    base = tmp_path / "ext"
    for i in range(6):
        tree = base / f"127.0.0.1:3000/agents/r{i}" / "v1"
        tree.mkdir(parents=True)
        (tree / "a.yaml").write_text(
            f"- name: R{i}\n  children: !external {{repo: 127.0.0.1:3000/agents/r{i + 1}, ref: v1, path: a.yaml}}\n"
        )
    escape = base / "127.0.0.1:3000/agents/esc" / "v1"
    escape.mkdir(parents=True)
    repo = write_repo(
        {
            "reconciler.yaml": "allowed_sources: ['127.0.0.1:3000/agents/']\n",
            "orgs/acme/org.yaml": HEAD
            + (
                "  - !external {repo: 127.0.0.1:3000/agents/r0, ref: v1, path: a.yaml}\n"
                "  - !external {repo: 127.0.0.1:3000/agents/esc, ref: v1, path: ../../r0/v1/a.yaml}\n"
            ),
        }
    )
    errors = render_errors(repo, fetcher=LocalFetcher(base))
    assert any("nested deeper than 4 levels" in e for e in errors)
    assert any(e.startswith("orgs/acme/org.yaml:5:") and "outside the repository" in e for e in errors)


def test_deep_nesting_is_refused_without_crashing(write_repo: WriteRepo) -> None:
    repo = write_repo({
        "orgs/acme/org.yaml": "name: A\nx: " + "[" * 5000 + "]" * 5000 + "\n",
        "orgs/beta/org.yaml": (
            "name: B\nworkspaces:\n  - name: x\n    env: {A: " + "{a: " * 3000 + "1" + "}" * 3001 + "\n"
        ),
    })
    errors = render_errors(repo)
    assert len(errors) == 2
    assert all("nests deeper than" in e for e in errors)


def test_config_files_linked_from_outside_are_refused(write_repo: WriteRepo, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    (outside / "evil").mkdir(parents=True)
    (outside / "images.yaml").write_text("images: {}\n")
    (outside / "evil" / "org.yaml").write_text("name: Evil\nworkspaces: [{name: X, runtime: claude-code}]\n")
    repo = write_repo({"orgs/acme/org.yaml": HEAD + "  - name: A\n"})
    (repo / "images.yaml").unlink()
    os.symlink(outside / "images.yaml", repo / "images.yaml")
    os.symlink(outside / "evil", repo / "orgs" / "evil")
    errors = render_errors(repo)
    assert any(e.startswith("images.yaml:") and "outside the repository" in e for e in errors)
    assert any(e.startswith("orgs/evil/org.yaml") and "outside the repository" in e for e in errors)
