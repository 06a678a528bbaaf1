"""Commit statuses as pure values: one `StatusLine` per context from a run's results. No I/O.

Contexts: `reconciler/canary` and `reconciler/production` on the watched branch. States are
plain strings: `pending` when a tier starts, then `success`, `failure` (the change is wrong: bad
config, health gate failed, plan refused) or `error` (the reconciler could not do its job: backend
down, interrupted). Descriptions are one line of at most 140 characters, e.g.
`canary: 2 created, 1 updated · 3/3 healthy in 14s`. The forge client has its own StatusUpdate
model; the caller maps StatusLine to it and posts only when a line changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.enums import TIER_ORDER, ActionKind, Outcome, Tier
from reconciler.model.results import RunResult, TierResult

MAX_DESCRIPTION = 140
CONTEXTS: dict[Tier, str] = {Tier.CANARY: "reconciler/canary", Tier.PRODUCTION: "reconciler/production"}
STATE_OF: dict[Outcome, str] = {
    Outcome.SUCCESS: "success",
    Outcome.FAILED: "failure",
    Outcome.ROLLED_BACK: "failure",
    Outcome.ERROR: "error",
    Outcome.SKIPPED: "error",  # not applied: refined by what blocked it (see run_statuses)
}
PAST_TENSE = {ActionKind.CREATE: "created", ActionKind.UPDATE: "updated",
              ActionKind.RECREATE: "recreated", ActionKind.DELETE: "deleted"}


@dataclass(frozen=True)
class StatusLine:
    context: str
    state: str  # pending | success | failure | error
    description: str


def one_line(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """First line of `text`, whitespace squeezed, cut to `limit` characters with an ellipsis."""
    line = " ".join((text.strip().splitlines() or [""])[0].split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def format_duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s"


def _line(tier: Tier, state: str, text: str) -> StatusLine:
    return StatusLine(CONTEXTS[tier], state, one_line(f"{tier.value}: {text}"))


def tier_pending(tier: Tier, changes: int) -> StatusLine:
    """Posted when a tier starts (the `tier_started` event of apply)."""
    what = f"applying {changes} change{'' if changes == 1 else 's'}" if changes else "checking, no changes"
    return _line(tier, "pending", what)


def counts_text(result: TierResult) -> str:
    counts = result.counts()
    parts = [f"{counts[k]} {word}" for k, word in PAST_TENSE.items() if counts[k]]
    return ", ".join(parts)


def tier_status(tier: Tier, result: TierResult | None, *, blocked_state: str = "failure") -> StatusLine:
    """The final line for one tier. `result` None: the tier has not started (pending).

    `blocked_state` is the state of a tier that was not applied because an earlier one did not
    pass (`failure` after a failed canary, `error` after a reconciler error or an interrupt).
    """
    if result is None:
        return _line(tier, "pending", "waiting for the earlier tier")
    if result.blocked_by:
        return _line(tier, blocked_state, f"not applied: {result.blocked_by}")
    done = counts_text(result)
    if result.outcome is Outcome.SUCCESS:
        if not done:
            return _line(tier, "success", f"up to date ({result.unchanged} unchanged)")
        gate = result.gate
        health = f" · {gate.healthy}/{gate.total} healthy" if gate and gate.total else ""
        return _line(tier, "success", f"{done}{health} in {format_duration(result.duration_s)}")
    rolled = "; rolled back" if result.rolled_back else ""
    if result.gate is not None and result.gate.outcome is Outcome.FAILED:
        return _line(tier, "failure", f"health gate failed: {result.gate.message}{rolled}")
    if result.outcome is Outcome.SKIPPED:
        return _line(tier, "error", f"interrupted{f' after {done}' if done else ''}; not verified")
    state = STATE_OF[result.outcome]
    prefix = "could not apply" if state == "error" else "failed"
    return _line(tier, state, f"{prefix}: {result.message}{rolled}")


def run_statuses(run: RunResult) -> list[StatusLine]:
    """Final lines for both tier contexts of one run, in tier order."""
    if run.refused:
        return [_line(t, "failure", f"refused: {run.refused}") for t in TIER_ORDER]
    lines: list[StatusLine] = []
    blocked_state = "failure"
    for tier in TIER_ORDER:
        result = run.tier(tier)
        lines.append(tier_status(tier, result, blocked_state=blocked_state))
        if result is not None and not result.blocked_by and result.outcome is not Outcome.SUCCESS:
            blocked_state = "failure" if result.outcome is Outcome.FAILED else "error"
    return lines


def config_error_statuses(first_error_text: str) -> list[StatusLine]:
    """A render error: nothing planned, both contexts `failure` naming the first error's file:line."""
    text = one_line(f"invalid config: {first_error_text}")
    return [StatusLine(CONTEXTS[t], "failure", text) for t in TIER_ORDER]


def error_statuses(message: str) -> list[StatusLine]:
    """The reconciler could not do its job before any tier ran (e.g. backend unreachable)."""
    return [_line(t, "error", f"not applied: {message}") for t in TIER_ORDER]
