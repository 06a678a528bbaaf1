"""A run drawn as a timeline: inline SVG for the run page, no JavaScript. Pure, no I/O.

`layout` reads a `RunResult` as JSON (what the journal keeps) and places every tier on one time
axis, seconds since the run started: a row per tier (its whole span), a row per action (from its
`started_at`, `duration_s` long) and a row for the tier's health-gate wait. The gate has no start
of its own: it begins when the tier's last change ended (its deletes come after it). Tiers run one
after the other, so a tier whose actions are timed from its own start (a heal applies each tier
apart) is moved to after the tier before it. Where the run failed gets a `Failure`: a failed
action, a failed gate, or else the tier's own message; `svg` draws it as a red marker whose
`<title>` (the browser's tooltip) is the message.

Without a `RunResult` (a run killed half-way) the journalled actions are laid end to end per tier
(`estimated`) unless they carry a `started_at`.

Everything drawn is text from the config repository or a backend: each string is scrubbed of
registered secrets, loses control characters, is cut, and is XML-escaped, in element content and
attribute values alike; an outcome only becomes a class or a colour when it is a known one.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from reconciler.logs import scrub
from reconciler.model.text import cut, printable

WIDTH = 960  # viewBox units; the page scales it down to fit
LABEL_W = 250  # the left column of row labels
PAD_R = 16
TOP = 24  # the axis labels
ROW_H = 22
BAR_H = 14
MAX_ROWS = 150  # more actions than this: the rest is summed up in one line
LABEL_CHARS = 34
TITLE_CHARS = 600

OUTCOMES = ("success", "failed", "error", "skipped")
FILL = {"success": "#2e9d5b", "failed": "#d12f2f", "error": "#e07b00", "skipped": "#b5b5b5", "unknown": "#8a8a8a"}
GATE_FILL = {**FILL, "success": "#4a90d9"}  # a gate that passed: the wait, in blue
FAIL_COLOUR = "#c00000"


@dataclass(frozen=True)
class Bar:
    """One row of the timeline: a tier's span, an action, or a tier's health-gate wait."""

    kind: str  # "tier" | "action" | "gate"
    tier: str
    label: str
    start: float  # seconds since the run started
    end: float
    outcome: str  # one of OUTCOMES, else "unknown"
    title: str  # the tooltip
    workspace: str = ""
    note: str = ""  # shown beside the bar: why a tier was not applied, why an action was not attempted


class Failure(NamedTuple):
    """Where the run failed: drawn as a red marker at `at` on row `row` (a plain triple, like a point)."""

    at: float
    row: int
    message: str


@dataclass(frozen=True)
class Timeline:
    rows: tuple[Bar, ...]
    failures: tuple[Failure, ...] = ()
    total_s: float = 0.0
    estimated: bool = False  # start times not known: actions laid end to end
    hidden: int = 0  # actions left out beyond MAX_ROWS


def num(value: object) -> float:
    """A non-negative finite float from JSON (anything else: 0)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) and number > 0 else 0.0


def text(value: object, limit: int = TITLE_CHARS) -> str:
    """Printable, scrubbed, cut: not yet escaped."""
    return cut(printable(scrub("" if value is None else str(value))), limit)


def outcome_of(value: object) -> str:
    return str(value) if str(value) in OUTCOMES else "unknown"


def secs(value: float) -> str:
    return f"{value:.1f}s" if value >= 0.1 or value == 0 else f"{value:.3f}s"


def layout(result: Mapping[str, Any] | None, journalled: Sequence[Mapping[str, Any]] = ()) -> Timeline | None:
    """The timeline of a run from its RunResult JSON, else from its journalled actions; None when
    there is nothing to draw (nothing was applied)."""
    tiers = [t for t in (result or {}).get("tiers") or [] if isinstance(t, Mapping)]
    if tiers:
        return _from_result(result or {}, tiers)
    if journalled:
        return _from_journal(journalled)
    return None


def _from_result(result: Mapping[str, Any], tiers: list[Mapping[str, Any]]) -> Timeline:
    rows: list[Bar] = []
    failures: list[Failure] = []
    hidden = 0
    previous_end = 0.0
    for tier_json in tiers:
        tier = text(tier_json.get("tier"), 40)
        actions = [a for a in tier_json.get("actions") or [] if isinstance(a, Mapping)]
        starts = [num(a.get("started_at")) for a in actions]
        shift = max(0.0, previous_end - min(starts)) if starts else 0.0  # timed from the tier's own start
        tier_start = min(starts) + shift if starts else previous_end
        timed = [(a, num(a.get("started_at")) + shift) for a in actions]
        changes_end = max((s + num(a.get("duration_s")) for a, s in timed
                           if a.get("kind") != "delete" and a.get("outcome") != "skipped"), default=tier_start)
        gate = tier_json.get("gate") if isinstance(tier_json.get("gate"), Mapping) else None
        entries: list[tuple[float, Bar]] = []
        for a, start in timed:
            entries.append((start, _action_bar(tier, a, start)))
        if gate is not None:
            gate_bar = _gate_bar(tier, gate, changes_end)
            entries.append((gate_bar.start, gate_bar))
        entries.sort(key=lambda e: e[0])  # stable: changes, the gate, then deletes
        ends = [b.end for _, b in entries]
        tier_end = max([tier_start + num(tier_json.get("duration_s")), *ends])
        outcome = outcome_of(tier_json.get("outcome"))
        note = tier_json.get("blocked_by") or tier_json.get("message") or ""
        rolled = ", ".join(text(w, 80) for w in tier_json.get("rolled_back") or [])
        if tier_json.get("blocked_by"):
            title = f"{tier}: not applied ({text(tier_json.get('blocked_by'))})"
        else:
            title = (f"{tier}: {outcome} in {secs(tier_end - tier_start)}" + (f"; {text(note)}" if note else "")
                     + (f"; rolled back: {rolled}" if rolled else ""))
        header = len(rows)
        blocked = f"not applied: {text(tier_json.get('blocked_by'), 200)}" if tier_json.get("blocked_by") else ""
        rows.append(Bar("tier", tier, f"{tier} · {outcome}", tier_start, tier_end, outcome, title, note=blocked))
        left_out, marked = _add_bars(rows, failures, [bar for _, bar in entries])
        hidden += left_out
        if outcome in ("failed", "error") and not marked and not tier_json.get("blocked_by"):
            failures.append(Failure(tier_end, header, f"{tier}: {text(note) or outcome}"))
        previous_end = tier_end
    total = max([num(result.get("duration_s")), *(b.end for b in rows)])
    error = result.get("error") or result.get("refused")
    if error and not failures and rows:
        failures.append(Failure(total, 0, text(error)))
    return Timeline(tuple(rows), tuple(failures), total, hidden=hidden)


def _add_bars(rows: list[Bar], failures: list[Failure], bars: Iterable[Bar]) -> tuple[int, bool]:
    """Add a tier's bars under its row while fewer than MAX_ROWS are drawn, each failed one with its
    marker; returns (how many were left out, whether a marker was placed)."""
    hidden, marked = 0, False
    for bar in bars:
        if len(rows) >= MAX_ROWS:
            hidden += 1
            continue
        rows.append(bar)
        if bar.outcome in ("failed", "error"):
            failures.append(Failure(bar.end, len(rows) - 1, bar.title))
            marked = True
    return hidden, marked


def _action_bar(tier: str, a: Mapping[str, Any], start: float) -> Bar:
    workspace = text(a.get("workspace_id") or a.get("workspace"), 200)
    kind = text(a.get("kind"), 20)
    outcome = outcome_of(a.get("outcome"))
    duration = num(a.get("duration_s"))
    attempts = int(num(a.get("attempts")))
    message = text(a.get("message"))
    title = (f"{tier} {kind} {workspace}: {outcome}, started at {secs(start)}, took {secs(duration)}"
             + (f", {attempts} attempts" if attempts > 1 else "") + (f" — {message}" if message else ""))
    note = message if outcome == "skipped" else ""
    return Bar("action", tier, f"{workspace} {kind}", start, start + duration, outcome, title, workspace, note)


def _gate_bar(tier: str, gate: Mapping[str, Any], start: float) -> Bar:
    healthy, total = int(num(gate.get("healthy"))), int(num(gate.get("total")))
    outcome = outcome_of(gate.get("outcome"))
    duration = num(gate.get("duration_s"))
    unhealthy = ", ".join(text(w, 80) for w in gate.get("unhealthy") or [])
    message = text(gate.get("message"))
    title = (f"{tier} health gate: {outcome}, {healthy}/{total} healthy after {secs(duration)}"
             + (f"; unhealthy: {unhealthy}" if unhealthy else "") + (f" — {message}" if message else ""))
    return Bar("gate", tier, f"health gate {healthy}/{total}", start, start + duration, outcome, title)


def _from_journal(journalled: Iterable[Mapping[str, Any]]) -> Timeline:
    by_tier: dict[str, list[Mapping[str, Any]]] = {}
    for a in journalled:
        by_tier.setdefault(text(a.get("tier"), 40), []).append(a)
    rows: list[Bar] = []
    failures: list[Failure] = []
    hidden = 0
    cursor = 0.0
    estimated = False
    for tier, actions in by_tier.items():
        tier_start = cursor
        bars = []
        for a in actions:
            if a.get("started_at") is not None:
                start = num(a.get("started_at"))
            else:
                start, estimated = cursor, True
            bar = _action_bar(tier, a, start)
            cursor = max(cursor, bar.end)
            bars.append(bar)
        worst = next((o for o in ("error", "failed") if any(b.outcome == o for b in bars)), "success")
        rows.append(Bar("tier", tier, f"{tier} · {worst}", tier_start, cursor, worst,
                        f"{tier}: {len(bars)} action(s) journalled; the run has not recorded its result"))
        hidden += _add_bars(rows, failures, bars)[0]
    return Timeline(tuple(rows), tuple(failures), cursor, estimated=estimated, hidden=hidden)


# ---- drawing ---------------------------------------------------------------------------------------
def esc(value: str) -> str:
    return html.escape(value, quote=True)


def ticks(total: float, most: int = 8) -> list[float]:
    """Round tick values from 0 to `total` (inclusive when it falls on one): at most `most` + 1."""
    if total <= 0:
        return [0.0]
    raw = total / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    count = int(total / step + 1e-9)
    return [round(i * step, 9) for i in range(count + 1)]


def tick_label(value: float) -> str:
    if value >= 60 and value == int(value):
        minutes, rest = divmod(int(value), 60)
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    return f"{value:g}s"


def svg(timeline: Timeline) -> str:
    """The timeline as one inline `<svg>` (well-formed XML too): a row label and a bar per row, the
    time axis on top, a red marker per failure; each bar's and marker's `<title>` is its tooltip."""
    total = max(timeline.total_s, 1e-3)
    plot = WIDTH - LABEL_W - PAD_R
    n = len(timeline.rows) + (1 if timeline.hidden else 0)
    height = TOP + n * ROW_H + 6

    def x(t: float) -> float:
        return LABEL_W + min(max(t, 0.0), total) / total * plot

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {height}" '
           f'width="{WIDTH}" height="{height}" role="img" font-family="sans-serif" font-size="12">',
           f"<title>{esc(f'run timeline, {secs(timeline.total_s)}')}</title>", '<g class="axis">']
    for t in ticks(total):
        out.append(f'<line x1="{x(t):.1f}" y1="{TOP - 6}" x2="{x(t):.1f}" y2="{height - 4}" stroke="#ddd"/>'
                   f'<text x="{x(t):.1f}" y="{TOP - 10}" text-anchor="middle" fill="#555">{esc(tick_label(t))}</text>')
    out.append("</g>")
    for i, bar in enumerate(timeline.rows):
        out.append(_row(bar, TOP + i * ROW_H, x))
    if timeline.hidden:
        y = TOP + len(timeline.rows) * ROW_H + ROW_H - 7
        out.append(f'<text class="more" x="4" y="{y}" fill="#555">{timeline.hidden} more action(s) not drawn</text>')
    for failure in timeline.failures:
        fx, fy = x(failure.at), TOP + failure.row * ROW_H + ROW_H / 2
        out.append(f'<g class="failure" data-at="{failure.at:.3f}"><title>{esc("failed here: " + failure.message)}'
                   f'</title><line x1="{fx:.1f}" y1="{fy - 10:.1f}" x2="{fx:.1f}" y2="{fy + 10:.1f}" '
                   f'stroke="{FAIL_COLOUR}" stroke-width="2"/><path d="M{fx:.1f} {fy - 6:.1f}l6 6l-6 6l-6 -6z" '
                   f'fill="{FAIL_COLOUR}" stroke="#fff"/></g>')
    out.append("</svg>")
    return "".join(out)


def _row(bar: Bar, top: float, x: Any) -> str:
    y_text = top + ROW_H - 7
    indent, weight = (4, ' font-weight="bold"') if bar.kind == "tier" else (16, "")
    label = f'<text x="{indent}" y="{y_text:.1f}"{weight}>{esc(cut(bar.label, LABEL_CHARS))}</text>'
    fill = (GATE_FILL if bar.kind == "gate" else FILL)[bar.outcome]
    x0, x1 = x(bar.start), x(bar.end)
    width = max(x1 - x0, 2.0)
    if bar.kind == "tier":
        rect = (f'<rect x="{x0:.1f}" y="{top + ROW_H - 8:.1f}" width="{width:.1f}" height="4" fill="{fill}" '
                f'fill-opacity="0.6"/>')
    else:
        dash = ' stroke="#666" stroke-dasharray="3 2" fill-opacity="0.4"' if bar.outcome == "skipped" else ""
        rect = (f'<rect x="{x0:.1f}" y="{top + (ROW_H - BAR_H) / 2:.1f}" width="{width:.1f}" height="{BAR_H}" '
                f'rx="2" fill="{fill}"{dash}/>')
    if bar.note:  # a tier not applied, an action not attempted: say so beside the (empty) bar
        start = LABEL_W + 4 if bar.kind == "tier" else x0 + width + 4
        anchor = ' text-anchor="end"' if start > WIDTH - 160 else ""
        start = x0 - 4 if anchor else start
        rect += f'<text x="{start:.1f}" y="{y_text:.1f}" fill="#666"{anchor}>{esc(cut(bar.note, 60))}</text>'
    data = f' data-workspace="{esc(bar.workspace)}"' if bar.workspace else ""
    return (f'<g class="{bar.kind} {bar.outcome}" data-tier="{esc(bar.tier)}"{data} data-start="{bar.start:.3f}" '
            f'data-end="{bar.end:.3f}"><title>{esc(bar.title)}</title>{label}{rect}</g>')


def timeline_svg(result: Mapping[str, Any] | None, journalled: Sequence[Mapping[str, Any]] = ()) -> str:
    """`svg(layout(...))`, or "" when there is nothing to draw."""
    timeline = layout(result, journalled)
    return svg(timeline) if timeline is not None else ""
