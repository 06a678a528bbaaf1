"""The run timeline (report/timeline.py): where each bar goes on the time axis, the health-gate wait,
the failure marker and its tooltip, and that whatever the run quotes stays inert text. Pure, fast."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from reconciler.logs import mask_secret
from reconciler.model.enums import ActionKind, Outcome, Tier
from reconciler.model.results import ActionResult, RunResult, TierResult
from reconciler.report.timeline import (
    FAIL_COLOUR,
    FILL,
    GATE_FILL,
    LABEL_W,
    MAX_ROWS,
    PAD_R,
    WIDTH,
    layout,
    svg,
    ticks,
    timeline_svg,
)
from tests.support.run_results import GATE_MESSAGE, action, failed_action_run, failed_gate_run, passed_run

NS = "{http://www.w3.org/2000/svg}"
PLOT = WIDTH - LABEL_W - PAD_R


def as_json(result: RunResult) -> dict[str, Any]:
    return result.model_dump(mode="json")


def rows(result: RunResult) -> list[tuple[str, str, float, float, str]]:
    drawn = layout(as_json(result))
    assert drawn is not None
    return [(b.kind, b.label, b.start, b.end, b.outcome) for b in drawn.rows]


def groups(document: str) -> list[ET.Element]:
    """The drawn rows and markers (the SVG is well-formed XML)."""
    root = ET.fromstring(document)
    return [g for g in root.iter(f"{NS}g") if g.get("class") != "axis"]


def title(element: ET.Element) -> str:
    found = element.find(f"{NS}title")
    assert found is not None and found.text is not None
    return found.text


def test_each_tier_its_actions_and_its_gate_wait_on_one_time_axis() -> None:
    assert rows(passed_run()) == [
        ("tier", "canary · success", 0.5, 6.5, "success"),
        ("action", "acme/ws0 create", 0.5, 2.0, "success"),
        ("action", "acme/ws1 update", 0.5, 1.5, "success"),
        ("gate", "health gate 2/2", 2.0, 6.0, "success"),  # from the tier's last change ending
        ("tier", "production · success", 6.5, 13.0, "success"),
        ("action", "acme/ws2 recreate", 6.5, 8.5, "success"),
        ("gate", "health gate 1/1", 8.5, 11.5, "success"),
        ("action", "acme/old delete", 11.5, 12.5, "success"),  # deletes come after the gate
    ]
    drawn = layout(as_json(passed_run()))
    assert drawn is not None and drawn.failures == () and drawn.total_s == 13.0 and not drawn.estimated


def test_bars_are_placed_and_sized_by_time() -> None:
    document = timeline_svg(as_json(passed_run()))
    by_label = {g.findtext(f"{NS}text"): g for g in groups(document)}
    ws0 = by_label["acme/ws0 create"]
    rect = ws0.find(f"{NS}rect")
    assert rect is not None
    assert float(rect.get("x", "")) == pytest.approx(LABEL_W + 0.5 / 13 * PLOT, abs=0.1)
    assert float(rect.get("width", "")) == pytest.approx(1.5 / 13 * PLOT, abs=0.1)
    assert rect.get("fill") == FILL["success"] and ws0.get("data-workspace") == "acme/ws0"
    gate = by_label["health gate 2/2"]
    gate_rect = gate.find(f"{NS}rect")
    assert gate_rect is not None and gate_rect.get("fill") == GATE_FILL["success"]
    assert float(gate_rect.get("x", "")) == pytest.approx(LABEL_W + 2 / 13 * PLOT, abs=0.1)
    assert title(gate) == "canary health gate: success, 2/2 healthy after 4.0s"
    ys = [float(label.get("y", "")) for g in groups(document) if (label := g.find(f"{NS}text")) is not None]
    assert ys == sorted(ys) and len(set(ys)) == len(ys)  # one row each, top to bottom
    axis = [t.text for t in ET.fromstring(document).iter(f"{NS}text") if t.get("text-anchor") == "middle"]
    assert axis == ["0s", "2s", "4s", "6s", "8s", "10s", "12s"]


def test_a_failed_gate_is_red_with_a_marker_whose_tooltip_is_the_message() -> None:
    drawn = layout(as_json(failed_gate_run()))
    assert drawn is not None
    assert [(b.kind, b.label, b.outcome) for b in drawn.rows][3:] == [
        ("gate", "health gate 1/2", "failed"), ("tier", "production · skipped", "skipped")]
    [failure] = drawn.failures
    assert failure.at == pytest.approx(22.2) and failure.row == 3
    assert GATE_MESSAGE in failure.message and "unhealthy: acme/ws1" in failure.message
    assert drawn.rows[4].note == "not applied: canary failed"
    document = svg(drawn)
    [marker] = [g for g in groups(document) if g.get("class") == "failure"]
    assert title(marker).startswith("failed here: canary health gate: failed, 1/2 healthy after 20.0s")
    assert GATE_MESSAGE in title(marker)
    line = marker.find(f"{NS}line")
    assert line is not None and line.get("stroke") == FAIL_COLOUR
    assert float(line.get("x1", "")) == pytest.approx(LABEL_W + 22.2 / 23.5 * PLOT, abs=0.1)
    gate = next(g for g in groups(document) if g.get("class") == "gate failed")
    assert gate.find(f"{NS}rect").get("fill") == FILL["failed"]  # type: ignore[union-attr]


def test_a_failed_action_is_where_it_failed_and_what_it_stopped_is_shown_not_attempted() -> None:
    drawn = layout(as_json(failed_action_run()))
    assert drawn is not None
    [failure] = drawn.failures
    assert (failure.at, drawn.rows[failure.row].label) == (2.5, "acme/ws1 create")
    assert failure.message.endswith("image not found: 127.0.0.1:5000/nope:latest")
    skipped = drawn.rows[3]
    assert (skipped.label, skipped.outcome, skipped.note) == ("acme/ws2 create", "skipped",
                                                             "not attempted: acme/ws1 failed")
    assert "not attempted: acme/ws1 failed</text>" in svg(drawn)


def test_a_tier_that_failed_without_a_failed_action_or_gate_is_marked_on_its_own_row() -> None:
    tier = TierResult(tier=Tier.CANARY, outcome=Outcome.ERROR, duration_s=4.0,
                      actions=(action("a/b", ActionKind.CREATE, Tier.CANARY, 1.0, 1.0),),
                      message="a/b: commit failed (finished by the next recovery)")
    drawn = layout(as_json(RunResult(outcome=Outcome.ERROR, tiers=(tier,), duration_s=5.0)))
    assert drawn is not None
    assert [(f.at, f.row, f.message) for f in drawn.failures] == [
        (5.0, 0, "canary: a/b: commit failed (finished by the next recovery)")]
    refused = RunResult(outcome=Outcome.FAILED, refused="would delete 9 workspaces (max_delete 2)",
                        tiers=(TierResult(tier=Tier.CANARY, outcome=Outcome.FAILED, blocked_by="plan refused"),))
    drawn = layout(as_json(refused))
    assert drawn is not None and [f.message for f in drawn.failures] == ["would delete 9 workspaces (max_delete 2)"]


def test_tiers_timed_from_their_own_start_follow_the_tier_before() -> None:
    """A heal applies each tier apart: its production actions start at 0 again."""
    canary = TierResult(tier=Tier.CANARY, outcome=Outcome.SUCCESS, duration_s=3.0,
                        actions=(action("a/c", ActionKind.RECREATE, Tier.CANARY, 0.0, 3.0),))
    production = TierResult(tier=Tier.PRODUCTION, outcome=Outcome.SUCCESS, duration_s=2.0,
                            actions=(action("a/p", ActionKind.CREATE, Tier.PRODUCTION, 0.0, 2.0),))
    assert [(label, start, end) for _, label, start, end, _ in rows(
        RunResult(outcome=Outcome.SUCCESS, tiers=(canary, production), duration_s=5.0))] == [
        ("canary · success", 0.0, 3.0), ("a/c recreate", 0.0, 3.0),
        ("production · success", 3.0, 5.0), ("a/p create", 3.0, 5.0)]


def test_without_a_result_the_journalled_actions_are_laid_end_to_end() -> None:
    journalled = [{"tier": "canary", "workspace": "a/x", "kind": "create", "outcome": "success", "message": "",
                   "attempts": 1, "duration_s": 2.0},
                  {"tier": "canary", "workspace": "a/y", "kind": "update", "outcome": "error",
                   "message": "engine gone", "attempts": 4, "duration_s": 1.0}]
    drawn = layout(None, journalled)
    assert drawn is not None and drawn.estimated and drawn.total_s == 3.0
    assert [(b.label, b.start, b.end) for b in drawn.rows] == [
        ("canary · error", 0.0, 3.0), ("a/x create", 0.0, 2.0), ("a/y update", 2.0, 3.0)]
    assert [f.message for f in drawn.failures] == [
        "canary update a/y: error, started at 2.0s, took 1.0s, 4 attempts — engine gone"]
    timed = layout(None, [{**journalled[0], "started_at": 5.0}])
    assert timed is not None and not timed.estimated and timed.rows[1].start == 5.0


def test_nothing_applied_draws_nothing() -> None:
    assert layout(None) is None and layout({"tiers": []}, []) is None and timeline_svg(None) == ""


def test_whatever_the_run_quotes_stays_text_and_a_secret_never_shows() -> None:
    mask_secret("sk-timeline-secret-77")
    evil = "<script>alert(1)</script>\"' onload=\"x()\" &amp; sk-timeline-secret-77"
    hostile = {"duration_s": "soon", "error": evil, "tiers": [
        {"tier": evil, "outcome": evil, "duration_s": -5, "rolled_back": [evil], "message": evil,
         "actions": [{"tier": evil, "workspace_id": evil, "kind": evil, "outcome": evil, "message": evil,
                      "attempts": evil, "started_at": float("nan"), "duration_s": "1e999"}],
         "gate": {"outcome": evil, "healthy": evil, "total": None, "message": evil, "unhealthy": [evil]}}]}
    document = timeline_svg(hostile)
    root = ET.fromstring(document)  # still well-formed
    assert {e.tag.removeprefix(NS) for e in root.iter()} <= {"svg", "title", "g", "line", "text", "rect", "path"}
    assert "<script" not in document and "sk-timeline-secret-77" not in document and "***" in document
    assert all(not k.startswith("on") for e in root.iter() for k in e.attrib)
    assert {g.get("class") for g in groups(document)} == {"tier unknown", "action unknown", "gate unknown",
                                                          "failure"}


def test_a_run_with_more_actions_than_fit_says_how_many_are_not_drawn() -> None:
    many = tuple(action(f"a/w{i}", ActionKind.CREATE, Tier.CANARY, i * 0.1, 0.1) for i in range(MAX_ROWS + 20))
    drawn = layout(as_json(RunResult(outcome=Outcome.SUCCESS, tiers=(
        TierResult(tier=Tier.CANARY, outcome=Outcome.SUCCESS, actions=many),))))
    assert drawn is not None and len(drawn.rows) == MAX_ROWS and drawn.hidden == 21
    assert "21 more action(s) not drawn" in svg(drawn)


def test_axis_ticks_are_round_numbers() -> None:
    assert ticks(13.0) == [0, 2, 4, 6, 8, 10, 12]
    assert ticks(0.9) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])
    assert ticks(300.0) == [0, 50, 100, 150, 200, 250, 300]
    assert ticks(0) == [0.0]


def test_skipped_actions_keep_their_place() -> None:
    skipped = ActionResult(workspace_id="a/s", kind=ActionKind.DELETE, tier=Tier.CANARY, outcome=Outcome.SKIPPED,
                           message="not attempted: the tier did not pass", started_at=2.0)
    tier = TierResult(tier=Tier.CANARY, outcome=Outcome.SUCCESS, duration_s=3.0, actions=(skipped,))
    drawn = layout(as_json(RunResult(outcome=Outcome.SUCCESS, tiers=(tier,), duration_s=3.0)))
    assert drawn is not None and (drawn.rows[1].start, drawn.rows[1].end) == (2.0, 2.0)
    assert 'stroke-dasharray="3 2"' in svg(drawn)
