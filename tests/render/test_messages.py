"""Errors that point at the cause: what a new user sees for the common mistakes, made in a copy of the
example repository. For each: the exact first message (file:line:col of the value itself) and how
many errors that only follow from it are suppressed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.errors import ConfigError, ConfigErrors, Location
from reconciler.model.policy import Policy
from reconciler.render import render_repo
from reconciler.secrets import SecretStore
from tests.support.policy import policy_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/org-repo"
POLICY = policy_for("127.0.0.1:3000/agents/")
TRACK_WORDS = "one of none, tag:<name>, branch:<name>, sha:<40 hex>"


def broken_example(tmp_path: Path, edits: dict[str, tuple[str, str]]) -> Path:
    """The example repository with each `file: (old, new)` replaced once (the old text must be there)."""
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE, root)
    for rel, (old, new) in edits.items():
        path = root / rel
        text = path.read_text()
        assert old in text, (rel, old)
        path.write_text(text.replace(old, new, 1))
    return root


def failure(root: Path, policy: Policy = POLICY, **kw: object) -> ConfigErrors:
    with pytest.raises(ConfigErrors) as info:
        render_repo(root, policy=policy, **kw)  # type: ignore[arg-type]
    return info.value


def first_and_suppressed(errors: ConfigErrors) -> tuple[str, int]:
    first = errors.errors[0]
    assert errors.followers_of(first) == len(errors.suppressed)  # all of them follow from the first
    return str(first), len(errors.suppressed)


# (edits, the first error, how many errors follow from it and are not shown, how many are shown)
CASES = {
    # the example's 6 workspaces that use `notes` would each say "plugin 'notes' is not declared"
    "bad track": ({"plugins.yaml": ("track: none ", "track: latest")},
                  f"plugins.yaml:15:12: plugins.notes.track must be {TRACK_WORDS}, got 'latest'", 6),
    "bad mode": ({"reconciler.yaml": ("mode: reconcile", "mode: sync")},
                 "reconciler.yaml:3:7: mode must be reconcile or merge, got 'sync'", 0),
    # the 5 claude-code workspaces would each say "runtime 'claude-code' has no image"
    "bad image ref": ({"images.yaml": ("claude-code: 127.0.0.1:5000/workspace-template-claude-code:latest",
                                       "claude-code: 127.0.0.1:5000/Workspace-Template:latest")},
                      "images.yaml:4:16: images.claude-code: image reference "
                      "'127.0.0.1:5000/Workspace-Template:latest' must be [host[:port]/]path[:tag][@digest] with a "
                      "lowercase path (a-z, 0-9, single '.', '_' or '__', or dashes between them)", 5),
    "images.yaml not YAML": ({"images.yaml": ("images:", "images:\n  bad: [")},
                             "images.yaml:4:8: invalid YAML: the `[` at line 4, column 8 is never closed with `]`", 7),
    "plugins.yaml duplicate key": ({"plugins.yaml": ("  notes:", "  memory:\n    source: x\n  notes:")},
                                   "plugins.yaml:13:3: duplicate key 'memory' (first at line 10); remove one of them",
                                   10),
    "env value a list": ({"orgs/acme/org.yaml": ('env: {MAX_PAGES: "20"}', "env: {MAX_PAGES: [20]}")},
                         "orgs/acme/org.yaml:30:30: env MAX_PAGES must be a string, not a list", 0),
    "memory size": ({"orgs/acme/org.yaml": ("memory: 256m", "memory: 256MB")},
                    "orgs/acme/org.yaml:22:36: resources.memory must be a size like 512m or 2g (digits, then k, m or "
                    "g), got '256MB'; did you mean `256m`?", 0),
    "unknown key": ({"orgs/acme/org.yaml": ("    tier: canary\n    files_dir", "    teir: canary\n    files_dir")},
                    "orgs/acme/org.yaml:13:5: unknown key 'teir'; did you mean `tier`?", 0),
    "bad tier": ({"orgs/globex/org.yaml": ("tier: canary", "tier: canery")},
                 "orgs/globex/org.yaml:8:11: tier must be canary or production, got 'canery'; did you mean "
                 "`canary`?", 0),
    "plugin not declared": ({"orgs/globex/org.yaml": ("model: gpt-5", "model: gpt-5\n    plugins: [web-serch]")},
                            "orgs/globex/org.yaml:11:15: globex/planner: plugin 'web-serch' is not declared in "
                            "plugins.yaml; did you mean `web-search`?", 0),
    # every workspace inheriting the bad entry has the same problem at the same place: told once
    "plugin of the defaults not declared": ({"orgs/acme/org.yaml": ("  plugins: [notes]", "  plugins: [notez]")},
                                            "orgs/acme/org.yaml:8:13: acme/lead: plugin 'notez' is not declared in "
                                            "plugins.yaml; did you mean `notes`?", 5),
    "plugin entry of no known shape": ({"orgs/globex/org.yaml": ("model: gpt-5", "model: gpt-5\n    plugins: [5]")},
                                       "orgs/globex/org.yaml:11:15: plugins.0 must be a string or mapping, got 5", 0),
    "runtime without image": ({"orgs/globex/org.yaml": ("runtime: hermes", "runtime: hermez")},
                              "orgs/globex/org.yaml:12:9: globex/executor: runtime 'hermez' has no image in "
                              "images.yaml; did you mean `hermes`?", 0),
    # the 5 workspaces that take their runtime from the defaults would each say "runtime is required"
    "bad runtime in the defaults": ({"orgs/acme/org.yaml": ("runtime: claude-code", "runtime: Claude-Code")},
                                    "orgs/acme/org.yaml:4:12: defaults.runtime must be a runtime name (lowercase "
                                    "letters, digits, '_' and '-'), got 'Claude-Code'", 5),
    "required_env missing": ({"orgs/acme/org.yaml": ("required_env: [ANTHROPIC_API_KEY, LOG_LEVEL]",
                                                     "required_env: [ANTHROPIC_API_KEY, LOG_LEVEL, GITHUB_TOKEN]")},
                             "orgs/acme/org.yaml:20:50: acme/lead: required_env missing: GITHUB_TOKEN (set it in env "
                             "or secrets, on this workspace or in the org defaults)", 0),
    "tab in YAML": ({"orgs/globex/org.yaml": ("  runtime: langgraph", "  runtime: langgraph\n\ttier: canary")},
                    "orgs/globex/org.yaml:5:1: invalid YAML: a tab character in the indentation: YAML indents with "
                    "spaces only", 0),
    "duplicate workspace key": ({"orgs/globex/org.yaml": ("      - name: Executor",
                                                          "      - name: Planner\n      - name: Executor")},
                                "orgs/globex/org.yaml:12:9: duplicate workspace key 'planner' in org 'globex': also at "
                                "orgs/globex/org.yaml:7:5; give one of them its own `key`", 0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_first_error_is_the_cause_and_what_follows_is_counted(case: str, tmp_path: Path) -> None:
    edits, first, suppressed = CASES[case]
    errors = failure(broken_example(tmp_path, edits))
    assert first_and_suppressed(errors) == (first, suppressed)
    assert len(errors.errors) == 1, str(errors)
    assert "Value error" not in str(errors)


def test_the_suppression_line_follows_its_cause(tmp_path: Path) -> None:
    errors = failure(broken_example(tmp_path, {"plugins.yaml": ("track: none ", "track: latest")}))
    assert str(errors).splitlines() == [
        f"plugins.yaml:15:12: plugins.notes.track must be {TRACK_WORDS}, got 'latest'",
        "  6 more errors follow from this one and are not shown",
    ]
    assert {e.message.split(": ", 1)[1] for e in errors.suppressed} == {
        "plugin 'notes' is not declared in plugins.yaml"}


def test_one_bad_plugin_entry_leaves_the_others_declared(tmp_path: Path) -> None:
    """The entry that failed is the only one missing: a workspace using another plugin is fine, and one
    using a plugin nobody declared is still its own error."""
    errors = failure(broken_example(tmp_path, {
        "plugins.yaml": ("track: none ", "track: latest"),
        "orgs/globex/org.yaml": ("model: gpt-5", "model: gpt-5\n    plugins: [memory, nope]")}))
    assert [str(e) for e in errors.errors] == [
        f"plugins.yaml:15:12: plugins.notes.track must be {TRACK_WORDS}, got 'latest'",
        "orgs/globex/org.yaml:11:23: globex/planner: plugin 'nope' is not declared in plugins.yaml",
    ]
    assert errors.followers_of(errors.errors[0]) == 6 and errors.followers_of(errors.errors[1]) == 0


def test_root_files_come_first_whatever_their_names_sort_to(tmp_path: Path) -> None:
    errors = failure(broken_example(tmp_path, {
        "reconciler.yaml": ("max_delete: 3", "max_delete: -3"),
        "plugins.yaml": ("track: tag:v1.2.0", "track: v1.2.0"),
        "images.yaml": ("langgraph: 127.0.0.1:5000/", "langgraph: 127.0.0.1:5000//"),
        "orgs/acme/org.yaml": ("    key: lead\n", "    key: Lead\n")}))
    assert [str(e.location) for e in errors.errors] == [
        "reconciler.yaml:4:13", "images.yaml:5:14", "plugins.yaml:6:12", "orgs/acme/org.yaml:11:10"]
    assert str(errors.errors[0]) == "reconciler.yaml:4:13: max_delete must be at least 0, got -3"


def test_a_setting_that_failed_is_not_blamed_through_its_default(tmp_path: Path) -> None:
    """reconciler.yaml does not parse: its docker.network default (`none`) is outside a policy that allows
    only `bridge`, an error that only follows from the file failing."""
    root = broken_example(tmp_path, {"reconciler.yaml": ("  network: none", "  network: bridge\n\tx: 1")})
    policy = Policy(sources=["127.0.0.1:3000/agents/"], registries=["127.0.0.1:5000"],
                    docker={"networks": ["bridge"]}, origin="the test policy")
    errors = failure(root, policy)
    assert first_and_suppressed(errors) == (
        "reconciler.yaml:12:1: invalid YAML: a tab character in the indentation: YAML indents with spaces only", 1)
    assert "docker.network 'none' is not allowed" in errors.suppressed[0].message


def test_a_missing_secret_names_the_real_directory(tmp_path: Path) -> None:
    root = broken_example(tmp_path, {})
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    store = SecretStore.open(secrets, tmp_path / "state")
    errors = failure(root, secrets=store)
    assert first_and_suppressed(errors) == (
        f"orgs/acme/org.yaml:19:15: acme/lead: secret ANTHROPIC_API_KEY not found in the secrets directory {secrets}: "
        f"create one of {secrets}/acme/lead/ANTHROPIC_API_KEY, {secrets}/acme/ANTHROPIC_API_KEY, "
        f"{secrets}/ANTHROPIC_API_KEY", 0)
    assert "<dir>" not in str(errors)
    gone = tmp_path / "no-such-dir"
    errors = failure(root, secrets=SecretStore(gone, b"k" * 32))
    assert str(errors.errors[0]).endswith(
        f"acme/lead: secret ANTHROPIC_API_KEY not found: the secrets directory {gone} does not exist (--secrets-dir)")


def test_a_union_value_is_one_message_of_the_branch_its_type_chose(tmp_path: Path) -> None:
    """A plugin entry is a name or a mapping: a bad name gets the name's message, a bad mapping the
    mapping's, something else one message for both; never one per branch."""
    errors = failure(broken_example(tmp_path, {"orgs/globex/org.yaml": (
        "model: gpt-5", "model: gpt-5\n    plugins: [Web_Search, {name: memory, trak: main}, [x]]")}))
    assert [str(e) for e in errors.errors] == [
        "orgs/globex/org.yaml:11:15: plugins.0 must be a lowercase slug (a-z, 0-9 and '-', at most 63 characters, no "
        "'-' at either end), got 'Web_Search'",
        "orgs/globex/org.yaml:11:42: unknown key 'trak'; did you mean `track`?",
        "orgs/globex/org.yaml:11:55: plugins.2 must be a string or mapping, got a list",
    ]


def test_errors_are_ordered_causes_first_and_counted_under_their_cause() -> None:
    cause = ConfigError("images.claude-code: bad", Location("images.yaml", 3, 16))
    other = ConfigError("teir", Location("orgs/a/org.yaml", 2, 1))
    followers = [ConfigError(f"a/{i}: runtime 'claude-code' has no image", Location("orgs/a/org.yaml", i, 1),
                             follows=cause.location) for i in range(3, 6)]
    errors = ConfigErrors([*followers, other, cause])
    assert errors.errors == [cause, other] and errors.suppressed == followers
    assert str(errors).splitlines() == ["images.yaml:3:16: images.claude-code: bad",
                                        "  3 more errors follow from this one and are not shown",
                                        "orgs/a/org.yaml:2:1: teir"]
    one = ConfigErrors([cause, followers[0]])
    assert str(one).splitlines()[1] == "  1 more error follows from this one and is not shown"
