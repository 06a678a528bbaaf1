"""`--format text|json|github` of `validate` and `plan`: the same errors for a person, a script and a CI
run (GitHub/Gitea Actions workflow commands, which annotate the lines at fault).

The real-process tests break the example repository's plugins.yaml: a bad `track` is one error, and
the six workspaces using that plugin would each say it is "not declared" (counted, not shown). `plan`
stops at such an error before asking the engine, so none of this needs the environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.errors import ConfigError, ConfigErrors, Location
from reconciler.report.annotations import (
    Annotation,
    escape_data,
    escape_property,
    from_errors,
    from_lines,
    to_github,
    to_text,
)
from tests.support.policy import policy_file

ROOT = Path(__file__).resolve().parents[2]
TRACK = ("plugins.yaml:15:12", "plugins.notes.track must be one of none, tag:<name>, branch:<name>, sha:<40 hex>, "
         "got 'latest'")
NOTE = "6 more errors follow from this one and are not shown"


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m reconciler ARGS` in a fresh process, from `cwd`, with no RECONCILER_*/GITHUB_* of this shell."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "GITHUB_"))}
    base["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), base.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def broken(tmp_path: Path) -> tuple[Path, list[str]]:
    """`tmp_path/config`: the example with `track: latest` for notes; and the flags of a test (policy, state)."""
    repo = tmp_path / "config"
    shutil.copytree(ROOT / "examples/org-repo", repo)
    plugins = repo / "plugins.yaml"
    plugins.write_text(plugins.read_text().replace("track: none ", "track: latest", 1))
    policy = policy_file(tmp_path / "policy", "127.0.0.1:3000/agents/")
    return repo, ["--policy", str(policy), "--state-dir", str(tmp_path / "state")]


def test_validate_format_github_as_a_real_process(broken: tuple[Path, list[str]], tmp_path: Path) -> None:
    """From the workspace root the runner checked out, files are named as in that workspace."""
    repo, flags = broken
    done = run("validate", "config", "--format", "github", *flags, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        f"::error file=config/plugins.yaml,line=15,col=12::{TRACK[1]}",
        f"::notice file=config/plugins.yaml,line=15,col=12::{NOTE}",
    ]
    assert done.stderr.strip().splitlines()[-1] == "1 error(s); nothing was changed."
    assert "Traceback" not in done.stderr
    # $GITHUB_WORKSPACE, when set, is the workspace whatever the current directory
    inside = run("validate", str(repo), "--format", "github", *flags, cwd=repo,
                 env={"GITHUB_WORKSPACE": str(tmp_path)})
    assert inside.stdout.splitlines()[0].startswith("::error file=config/plugins.yaml,line=15,col=12::")
    at_root = run("validate", ".", "--format", "github", *flags, cwd=repo)
    assert at_root.stdout.splitlines()[0].startswith("::error file=plugins.yaml,line=15,col=12::")


def test_validate_format_json_and_text(broken: tuple[Path, list[str]], tmp_path: Path) -> None:
    repo, flags = broken
    as_json = run("validate", str(repo), "--format", "json", *flags, cwd=tmp_path)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == [
        {"file": "plugins.yaml", "line": 15, "column": 12, "message": TRACK[1], "severity": "error"},
        {"file": "plugins.yaml", "line": 15, "column": 12, "message": NOTE, "severity": "notice"},
    ]
    as_text = run("validate", str(repo), *flags, cwd=tmp_path)
    assert as_text.returncode == 1 and as_text.stdout == ""
    assert as_text.stderr.splitlines()[-3:] == [f"error: {TRACK[0]}: {TRACK[1]}", f"  {NOTE}",
                                                "1 error(s); nothing was changed."]
    valid = run("validate", str(ROOT / "examples/org-repo"), "--format", "json", *flags, cwd=tmp_path)
    assert valid.returncode == 0, valid.stderr
    assert json.loads(valid.stdout) == [] and valid.stderr.startswith("valid: 8 workspaces")


def test_plan_format_github_and_json(broken: tuple[Path, list[str]], tmp_path: Path) -> None:
    repo, flags = broken
    github = run("plan", "--source", "config", "--format", "github", *flags, cwd=tmp_path)
    assert github.returncode == 1, github.stderr
    assert github.stdout.splitlines() == [
        f"::error file=config/plugins.yaml,line=15,col=12::{TRACK[1]}",
        f"::notice file=config/plugins.yaml,line=15,col=12::{NOTE}",
    ]
    as_json = run("plan", "--source", str(repo), "--format", "json", *flags, cwd=tmp_path)
    assert as_json.returncode == 1
    assert [(a["file"], a["line"], a["severity"]) for a in json.loads(as_json.stdout)] == [
        ("plugins.yaml", 15, "error"), ("plugins.yaml", 15, "notice")]
    text = run("plan", "--source", str(repo), *flags, cwd=tmp_path)
    assert text.stderr.splitlines()[-3:] == [f"error: {TRACK[0]}: {TRACK[1]}", f"  {NOTE}",
                                             "1 error(s); nothing was changed."]


def test_an_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    done = run("validate", str(ROOT / "examples/org-repo"), "--format", "xml", cwd=tmp_path)
    assert done.returncode == 64 and "'xml' is not one of 'text', 'json', 'github'" in done.stderr


# ---- the github formatter -------------------------------------------------------------------------
def test_github_escapes_data_and_properties_as_the_actions_toolkit_does() -> None:
    assert escape_data("100% done\r\nnext: a, b") == "100%25 done%0D%0Anext: a, b"
    assert escape_property("100% done\r\nnext: a, b") == "100%25 done%0D%0Anext%3A a%2C b"
    assert escape_data("%0A") == "%250A"  # `%` first: an escape already in the text stays literal
    lines = to_github([Annotation("orgs/acme/a:b,c.yaml", 3, 7, "env X must be a string:\nquote it (50%)")])
    assert lines == ["::error file=orgs/acme/a%3Ab%2Cc.yaml,line=3,col=7::env X must be a string:%0Aquote it (50%25)"]


def test_github_places_and_severities() -> None:
    lines = to_github([
        Annotation("orgs/acme/org.yaml", 4, 11, "tier must be canary or production"),
        Annotation("orgs/acme/org.yaml", None, None, "orgs/acme/ has no org.yaml", "warning"),
        Annotation(None, None, None, "plan refused: 3 deletions, over max_delete 2"),
        Annotation("127.0.0.1:3000/agents/shared@v1:teams/a.yaml", 2, 3, "unknown key 'x'"),
        Annotation("/abs/policy.yaml", 1, 1, "bad", "notice"),
    ], prefix="deploy/config/")
    assert lines == [
        "::error file=deploy/config/orgs/acme/org.yaml,line=4,col=11::tier must be canary or production",
        "::warning file=deploy/config/orgs/acme/org.yaml::orgs/acme/ has no org.yaml",
        "::error::plan refused: 3 deletions, over max_delete 2",
        # a file of a fetched !external tree is not in the workspace: the place goes into the message
        "::error::127.0.0.1:3000/agents/shared@v1:teams/a.yaml:2:3: unknown key 'x'",
        "::notice::/abs/policy.yaml:1:1: bad",
    ]


def test_annotations_from_errors_and_back_from_their_text() -> None:
    cause = ConfigError("plugins.notes.track must be ...", Location("plugins.yaml", 15, 12))
    followers = [ConfigError(f"acme/{i}: plugin 'notes' is not declared", Location("orgs/acme/org.yaml", i, 5),
                             follows=cause.location) for i in range(2)]
    errors = ConfigErrors([*followers, cause, ConfigError("no orgs/ directory", Location("/x/repo"))])
    annotations = from_errors(errors)
    assert annotations == [
        Annotation("plugins.yaml", 15, 12, "plugins.notes.track must be ..."),
        Annotation("plugins.yaml", 15, 12, "2 more errors follow from this one and are not shown", "notice"),
        Annotation("/x/repo", None, None, "no orgs/ directory"),
    ]
    assert from_lines(str(errors).splitlines()) == [*annotations[:2], Annotation(None, None, None,
                                                                                 "/x/repo: no orgs/ directory")]
    assert to_text(annotations) == ["error: plugins.yaml:15:12: plugins.notes.track must be ...",
                                    "  2 more errors follow from this one and are not shown",
                                    "error: /x/repo: no orgs/ directory"]
