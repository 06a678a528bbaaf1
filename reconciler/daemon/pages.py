"""The run pages as plain server-rendered HTML: readable without JavaScript, no secrets. Pure.

`/runs` lists runs newest first; `/runs/<id>` shows one: the commit, trigger, status, timings,
the plan (ids, tiers, kinds, reasons: `plan_to_json` never holds an env value), each action's
result, each tier's health gate, and the statuses posted. Every text is HTML-escaped and passed
through the log scrubber, so a registered secret could not appear even inside an error message.

The run page draws the run as a timeline (inline SVG from `report.timeline`, no JavaScript): each
tier's actions as bars on one time axis, the health-gate wait, and a red marker where it failed
with the message as its tooltip. `/runs` starts with a strip of outcomes per revision: a coloured
square per run (a circle for a pull request review), oldest to newest, each linking to its run.
"""

from __future__ import annotations

import html
import time
from typing import Any

from reconciler.daemon.journal import RunRow
from reconciler.logs import scrub
from reconciler.model.enums import RunKind, RunStatus
from reconciler.report import timeline

STATUS_COLOUR: dict[RunStatus, str] = {
    RunStatus.SUCCESS: "#2e9d5b", RunStatus.PLANNED: "#7cc48f", RunStatus.NOOP: "#a9d8b5", RunStatus.HELD: "#d9b300",
    RunStatus.FAILED: "#d12f2f", RunStatus.ERROR: "#e07b00", RunStatus.INTERRUPTED: "#a0522d",
    RunStatus.SUPERSEDED: "#9a9a9a", RunStatus.SKIPPED: "#cfcfcf", RunStatus.RUNNING: "#4a90d9",
}
STRIP_REVISIONS = 25  # revisions in the strip on /runs
STRIP_RUNS = 60  # squares per revision
STYLE = ("body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}"
         ".success,.planned{color:#070}.failed,.error{color:#a00}.superseded,.interrupted{color:#a60}"
         "svg.timeline{max-width:100%;height:auto;border:1px solid #ddd}"
         "table.strip td{border:0;padding:1px .4em;vertical-align:middle}"
         ".sq,.sw{display:inline-block;width:16px;height:16px;margin:1px;border-radius:2px;vertical-align:middle}"
         ".sq.review{border-radius:50%}.legend{font-size:90%;color:#444}.legend .sw{margin-left:.8em}"
         + "".join(f".s-{status.value}{{background:{colour}}}" for status, colour in STATUS_COLOUR.items())
         + "".join(f".t-{name}{{background:{colour}}}" for name, colour in timeline.FILL.items())
         + f".t-gate{{background:{timeline.GATE_FILL['success']}}}.t-fail{{background:{timeline.FAIL_COLOUR}}}")


def esc(value: object) -> str:
    return html.escape(scrub("" if value is None else str(value)))


def when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)) if epoch else "-"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def runs_page(runs: list[RunRow], health: dict[str, Any]) -> str:
    rows = [[f'<a href="runs/{r.id}">#{r.id}</a>', esc(r.kind), f"<code>{esc((r.revision or '')[:12])}</code>",
             esc(r.trigger), f'<span class="{esc(r.status)}">{esc(r.status)}</span>', esc(when(r.started_at)),
             esc(seconds(r.duration_s)), esc(r.message.splitlines()[0] if r.message else "")] for r in runs]
    last = health.get("last_success")
    intro = (f"<p>Watching <code>{esc(health.get('branch'))}</code> · loop "
             f"{'alive' if health.get('loop_alive') else 'NOT running'} · last success {esc(when(last))}</p>")
    return page("reconciler runs", "<h1>Runs</h1>" + intro + strip(runs) + "<h2>All runs</h2>"
                + table(["run", "kind", "commit", "trigger", "status", "started", "took", "message"], rows))


def strip(runs: list[RunRow]) -> str:
    """Outcomes per revision, newest revision first: a square per run (a circle for a review), oldest
    to newest, coloured by status and linking to the run; its tooltip says which run and how it ended."""
    by_revision: dict[str, list[RunRow]] = {}
    for r in runs:  # newest first: the first run seen of a revision places it
        key = r.revision or ""
        if key in by_revision or len(by_revision) < STRIP_REVISIONS:
            by_revision.setdefault(key, []).append(r)
    if not by_revision:
        return "<p>No runs yet.</p>"
    rows = []
    for revision, revision_runs in by_revision.items():
        squares = "".join(_square(r) for r in reversed(revision_runs[:STRIP_RUNS]))
        rows.append(f"<tr><td><code>{esc(revision[:12]) or '(none)'}</code></td><td>{squares}</td></tr>")
    seen = sorted({r.status for rs in by_revision.values() for r in rs}, key=list(STATUS_COLOUR).index)
    legend = "".join(f'<span class="sw s-{s.value}"></span>{esc(s.value)}' for s in seen)
    return (f'<h2>Outcomes by revision</h2><table class="strip">{"".join(rows)}</table>'
            f'<p class="legend">{legend} · oldest to newest; a circle is a pull request review</p>')


def _square(r: RunRow) -> str:
    first_line = r.message.splitlines()[0] if r.message else ""
    what = f"run #{r.id}: {r.kind.value}" + (f" of pull request #{r.pr}" if r.pr else "") + f" ({r.trigger})"
    tip = f"{what}: {r.status.value}, {when(r.started_at)}" + (f" — {first_line}" if first_line else "")
    review = " review" if r.kind is RunKind.REVIEW else ""
    return (f'<a class="sq s-{esc(r.status.value)}{review}" href="runs/{r.id}" title="{esc(tip)}" '
            f'aria-label="{esc(f"run #{r.id}: {r.status.value}")}"></a>')


def run_page(run: RunRow, actions: list[dict[str, Any]]) -> str:
    parts = [f'<p><a href="../runs">all runs</a></p><h1>Run #{run.id}: '
             f'<span class="{esc(run.status)}">{esc(run.status)}</span></h1>',
             table(["", ""], [
                 ["kind", esc(run.kind + (f" (pull request #{run.pr})" if run.pr else ""))],
                 ["commit", f"<code>{esc(run.revision)}</code>"], ["trigger", esc(run.trigger)],
                 ["started", esc(when(run.started_at))], ["finished", esc(when(run.finished_at))],
                 ["took", esc(seconds(run.duration_s))],
                 ["superseded by", f"<code>{esc(run.superseded_by)}</code>" if run.superseded_by else "-"],
                 ["message", f"<pre>{esc(run.message)}</pre>" if run.message else "-"],
             ])]
    parts.append("<h2>Timeline</h2>" + _timeline(run.result, actions))
    parts.append("<h2>Plan</h2>" + _plan(run.plan))
    parts.append("<h2>Tiers and health gates</h2>" + _tiers(run.result))
    parts.append("<h2>Actions</h2>" + _actions(run.result, actions))
    status_rows = [[esc(s.get("context")), esc(s.get("state")), esc(s.get("description"))] for s in run.statuses]
    parts.append("<h2>Statuses posted</h2>" + (table(["context", "state", "description"], status_rows)
                                               if status_rows else "<p>none</p>"))
    return page(f"run #{run.id}", "".join(parts))


def _plan(plan: dict[str, Any] | None) -> str:
    if not plan:
        return "<p>No plan (the run ended before planning).</p>"
    summary = ", ".join(f"{v} {esc(k)}" for k, v in (plan.get("summary") or {}).items())
    refused = f"<p class=failed>Refused: {esc(plan['refused'])}</p>" if plan.get("refused") else ""
    rows = [[esc(a["kind"]), esc(a["tier"]), f"<code>{esc(a.get('workspace_id') or a.get('workspace'))}</code>",
             esc(a["reason"])] for a in plan.get("actions", [])]
    return (f"<p>{esc(plan.get('mode'))} mode: {summary}</p>{refused}"
            + table(["action", "tier", "workspace", "reason"], rows))


def _tiers(result: dict[str, Any] | None) -> str:
    if not result:
        return "<p>Nothing applied.</p>"
    rows = []
    for t in result.get("tiers", []):
        gate = t.get("gate") or {}
        gate_text = (f"{gate.get('outcome')}: {gate.get('healthy')}/{gate.get('total')} healthy in "
                     f"{seconds(gate.get('duration_s'))}; {gate.get('message', '')}" if gate else "-")
        rows.append([esc(t["tier"]), f'<span class="{esc(t["outcome"])}">{esc(t["outcome"])}</span>',
                     esc(gate_text), esc(", ".join(t.get("rolled_back") or []) or "-"),
                     esc(seconds(t.get("duration_s"))), esc(t.get("blocked_by") or t.get("message") or "")])
    return table(["tier", "outcome", "health gate", "rolled back", "took", "note"], rows)


def _actions(result: dict[str, Any] | None, journalled: list[dict[str, Any]]) -> str:
    actions = [a for t in (result or {}).get("tiers", []) for a in t.get("actions", [])]
    if not actions:
        actions = [{"workspace_id": a["workspace"], **a} for a in journalled]
    if not actions:
        return "<p>No actions.</p>"
    rows = [[esc(a["tier"]), f"<code>{esc(a['workspace_id'])}</code>", esc(a["kind"]),
             f'<span class="{esc(a["outcome"])}">{esc(a["outcome"])}</span>', esc(a.get("attempts")),
             esc(seconds(a.get("duration_s"))), esc(a.get("message"))] for a in actions]
    return table(["tier", "workspace", "action", "outcome", "attempts", "took", "message"], rows)


def _timeline(result: dict[str, Any] | None, journalled: list[dict[str, Any]]) -> str:
    drawn = timeline.layout(result, journalled)
    if drawn is None:
        return "<p>Nothing applied: no timeline.</p>"
    legend = ("".join(f'<span class="sw t-{o}"></span>{o}' for o in timeline.OUTCOMES)
              + '<span class="sw t-gate"></span>health-gate wait'
              + '<span class="sw t-fail"></span>where it failed (hover for why)')
    notes = [f'<p class="failed">Failed at {esc(seconds(f.at))}: {esc(f.message)}</p>' for f in drawn.failures]
    if drawn.estimated:
        notes.append("<p>Start times are estimated: the run has not recorded its result (still running, or cut "
                     "short), so its journalled actions are laid end to end.</p>")
    return timeline.svg(drawn) + f'<p class="legend">{legend}</p>' + "".join(notes)
