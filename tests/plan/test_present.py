"""Renderings of a plan: markers, summary, refusal, JSON shape, and never a secret value."""

from __future__ import annotations

import json

from reconciler.model.enums import Tier
from reconciler.plan import PlanPolicy, plan, plan_to_json, render_markdown, render_table
from tests.plan.factory import observed, state, ws

SECRET = "sk-live-THIS-MUST-NEVER-SHOW-4242"


def sample_plan():
    old_env = ws("env", env={"API_KEY": "old"})
    desired = state(
        ws("new", tier=Tier.CANARY, env={"API_KEY": SECRET}),
        ws("env", env={"API_KEY": SECRET}),
        ws("skill", skills_hash="skills-2"),
        ws("files", files_hash="files-2"),
        ws("same"),
    )
    actual = [observed(old_env), observed(ws("skill")), observed(ws("files")), observed(ws("same")),
              observed(ws("gone")), *[observed(ws(f"keep{i}")) for i in range(4)]]
    desired = state(*desired.workspaces, *[ws(f"keep{i}") for i in range(4)])
    return plan(desired, actual, PlanPolicy())


def test_table_has_markers_columns_and_summary() -> None:
    text = render_table(sample_plan())
    lines = text.splitlines()
    assert lines[0].split() == ["tier", "workspace", "action", "reason"]
    assert lines[1].split()[:4] == ["+", "canary", "acme/new", "create"]
    assert any(line.startswith("-/+") and "acme/env" in line and "env changed: API_KEY" in line for line in lines)
    assert any(line.startswith("~ ") and "acme/files" in line and "update " in line for line in lines)
    assert any(line.startswith("~ ") and "update (no restart)" in line for line in lines)
    assert any(line.startswith("- ") and "acme/gone" in line and "not in repo" in line for line in lines)
    assert "(5 unchanged workspaces not shown; use --verbose)" in lines
    assert lines[-1] == "Plan: 1 to create, 2 to update, 1 to recreate, 1 to delete, 5 unchanged."


def test_verbose_table_lists_noops() -> None:
    text = render_table(sample_plan(), verbose=True)
    assert any(line.startswith("=") and "acme/same" in line and "up to date" in line for line in text.splitlines())


def test_refused_plan_shows_the_refusal() -> None:
    refused = plan(state(), [observed(ws("a")), observed(ws("b"))], PlanPolicy())
    text = render_table(refused)
    assert text.splitlines()[-1] == (
        "REFUSED: desired state is empty but 2 managed workspaces exist; pass --allow-empty to delete them all")
    assert "Plan: 0 to create, 0 to update, 0 to recreate, 2 to delete, 0 unchanged." in text
    assert "acme/a" in text
    assert "**Refused:** desired state is empty" in render_markdown(refused, "abc")


def test_no_changes_table() -> None:
    a = ws("a")
    assert render_table(plan(state(a), [observed(a)], PlanPolicy())).splitlines()[0] == "No changes."


def test_markdown_comment() -> None:
    text = render_markdown(sample_plan(), "0123456789abcdef")
    assert text.startswith("### Reconciler plan for `0123456789ab` (reconcile mode)")
    assert "| `+` | canary | `acme/new` | create | not running |" in text
    assert "<details><summary>5 unchanged</summary>" in text
    assert "**Plan: 1 to create, 2 to update, 1 to recreate, 1 to delete, 5 unchanged.**" in text


def test_json_is_machine_readable_and_reduced() -> None:
    data = plan_to_json(sample_plan())
    assert data["summary"] == {"create": 1, "update": 2, "recreate": 1, "delete": 1, "noop": 5, "hold": 0}
    first = data["actions"][0]
    assert first["kind"] == "create" and first["workspace_id"] == "acme/new" and first["tier"] == "canary"
    assert set(first["desired"]) == {"id", "tier", "runtime", "provisioned", "parent", "image", "spec_hash"}
    assert first["observed"] is None
    json.dumps(data)  # plain JSON types only


def test_no_rendering_contains_a_secret_looking_env_value() -> None:
    p = sample_plan()
    assert SECRET in p.actions[0].desired.env.values()  # the fixture really carries it
    for text in (json.dumps(plan_to_json(p)), render_table(p, verbose=True), render_markdown(p, "abc")):
        assert SECRET not in text
        assert "API_KEY" not in text or "env changed: API_KEY" in text
