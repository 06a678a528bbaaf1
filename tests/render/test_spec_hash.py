"""The spec hash changes when something that should cause a change changes, and only then."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.render.conftest import WriteRepo, render_ok

WORKSPACE = {
    "name": "Lead Agent",
    "key": "lead",
    "tier": "canary",
    "runtime": "claude-code",
    "model": "claude-sonnet-4-5",
    "env": {"A": "1", "B": "two", "C": "3"},
    "resources": {"cpus": 0.5, "memory": "256m"},
    "health": {"port": 8080, "path": "/health"},
    "required_env": ["A"],
}


def org_text(workspace: dict[str, object], order: list[int], style: str, comments: bool) -> str:
    keys = list(workspace)
    ordered = {keys[i]: workspace[keys[i]] for i in order}
    body = yaml.safe_dump(
        {"name": "Acme", "workspaces": [ordered]},
        default_flow_style={"block": False, "flow": True, "mixed": None}[style],
        sort_keys=False,
        indent=4 if style == "block" else 2,
    )
    if comments:
        body = "# operators' notes\n\n" + body + "# trailing note\n"
        if style == "block":  # an end-of-line comment is only safe outside flow collections
            body = body.replace("\n", "  # note\n", 3)
    return body


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    order=st.permutations(list(range(len(WORKSPACE)))),
    style=st.sampled_from(["block", "flow", "mixed"]),
    comments=st.booleans(),
)
def test_hash_stable_under_key_order_formatting_and_comments(
    write_repo: WriteRepo, order: list[int], style: str, comments: bool
) -> None:
    baseline = render_ok(
        write_repo({"orgs/acme/org.yaml": org_text(WORKSPACE, list(range(len(WORKSPACE))), "block", False)})
    )
    varied = render_ok(write_repo({"orgs/acme/org.yaml": org_text(WORKSPACE, order, style, comments)}))
    assert varied.workspaces[0].spec_hash == baseline.workspaces[0].spec_hash


# any env value the model admits: text without control characters but tab and newline
ENV_TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs")) | st.sampled_from("\t\n"), max_size=20)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(env=st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True), ENV_TEXT, max_size=6))
def test_hash_ignores_env_order_but_sees_every_value(write_repo: WriteRepo, env: dict[str, str]) -> None:
    def render_env(e: dict[str, str]) -> str:
        ws = {**WORKSPACE, "env": e, "required_env": []}
        return (
            render_ok(write_repo({"orgs/acme/org.yaml": yaml.safe_dump({"name": "A", "workspaces": [ws]})}))
            .workspaces[0]
            .spec_hash
        )

    first = render_env(env)
    assert render_env(dict(reversed(list(env.items())))) == first
    if env:
        key = next(iter(env))
        assert render_env({**env, key: env[key] + "x"}) != first


def test_moving_to_another_file_keeps_the_hash_and_another_parent_changes_only_parent(write_repo: WriteRepo) -> None:
    inline = render_ok(
        write_repo(
            {
                "orgs/acme/org.yaml": """\
        name: Acme
        defaults: {runtime: claude-code}
        workspaces:
          - name: Lead
            children:
              - {name: Worker, env: {X: "1"}}
          - name: Other
        """
            }
        )
    )
    moved_file = render_ok(
        write_repo(
            {
                "orgs/acme/org.yaml": """\
        name: Acme
        defaults: {runtime: claude-code}
        workspaces:
          - name: Lead
            children: !include team/workers.yaml
          - name: Other
        """,
                "orgs/acme/team/workers.yaml": "- name: Worker\n  env:\n    X: '1'\n",
            }
        )
    )
    reparented = render_ok(
        write_repo(
            {
                "orgs/acme/org.yaml": """\
        name: Acme
        defaults: {runtime: claude-code}
        workspaces:
          - name: Lead
          - name: Other
            children:
              - {name: Worker, env: {X: "1"}}
        """
            }
        )
    )
    a, b, c = (s.by_id()["acme/worker"] for s in (inline, moved_file, reparented))
    assert a.spec_hash == b.spec_hash
    assert c.spec_hash != a.spec_hash
    assert {k for k in a.spec_parts if a.spec_parts[k] != c.spec_parts[k]} == {"parent"}
    assert c.env["PARENT_ID"] == "acme/other"


def test_each_component_moves_its_own_part(write_repo: WriteRepo, tmp_path: Path) -> None:
    def parts(**changes: object) -> dict[str, str]:
        ws = {**WORKSPACE, **changes}
        state = render_ok(write_repo({"orgs/acme/org.yaml": yaml.safe_dump({"name": "A", "workspaces": [ws]})}))
        return state.workspaces[0].spec_parts

    base = parts()
    for change, part in [
        ({"tier": "production"}, "tier"),
        ({"resources": {"cpus": 1.0, "memory": "256m"}}, "resources"),
        ({"health": {"port": 9090, "path": "/health"}}, "health"),
        ({"runtime": "langgraph"}, "image"),
        ({"env": {"A": "1", "B": "two", "C": "4"}}, "env.C"),
    ]:
        changed = {k for k in set(base) | set(parts(**change)) if base.get(k) != parts(**change).get(k)}
        assert part in changed, (change, changed)
