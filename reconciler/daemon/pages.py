"""The run pages as plain server-rendered HTML: readable without JavaScript, no secrets. Pure.

`/runs` lists runs newest first; `/runs/<id>` shows one: the commit, trigger, status, timings,
the plan (ids, tiers, kinds, reasons: `plan_to_json` never holds an env value), each action's
result, each tier's health gate, and the statuses posted. Every text is HTML-escaped and passed
through the log scrubber, so a registered secret could not appear even inside an error message.
"""

from __future__ import annotations

import html
import time
from typing import Any

from reconciler.daemon.journal import RunRow
from reconciler.logs import scrub

STYLE = ("body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}"
         ".success,.planned{color:#070}.failed,.error{color:#a00}.superseded,.interrupted{color:#a60}")


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
    return page("reconciler runs", "<h1>Runs</h1>" + intro
                + table(["run", "kind", "commit", "trigger", "status", "started", "took", "message"], rows))


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
