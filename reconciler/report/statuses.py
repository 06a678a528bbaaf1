"""Commit statuses as pure values: one `StatusLine` per context from a pass's outcome. No I/O.

Contexts: `reconciler/canary` and `reconciler/production` on the watched branch, `reconciler/plan`
on pull request heads; with the instance in them (`--status-context-instance`)
`reconciler/<instance>/canary` and so on, so that two reconcilers can report on one repository
(`Contexts`, the one place a context is named). `pending` when a tier starts, then `success`, `failure` (the change is
wrong: bad config, health gate failed, plan refused, a change held) or `error` (the reconciler
could not do its job: backend down, interrupted). Descriptions are one line of at most 140
characters, e.g. `canary: 2 created, 1 updated · 3/3 healthy in 14s`.

An org that failed to render makes each tier `failure` even where the other orgs converged, and
says both: `canary: org beta failed: orgs/beta/org.yaml:7:5: ...; 2 other org(s) converged` (the
error is cut, never the org or what converged).
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.forge.base import StatusUpdate
from reconciler.model.enums import TIER_ORDER, ActionKind, Outcome, StatusState, Tier
from reconciler.model.plan import Plan
from reconciler.model.results import RunResult, TierResult
from reconciler.model.text import DESCRIPTION_LIMIT, cut, one_line

PREFIX = "reconciler"
PLAN_KIND = "plan"


@dataclass(frozen=True)
class Contexts:
    """The status contexts of one reconciler: `reconciler/<kind>`, or `reconciler/<instance>/<kind>`
    when the operator puts the instance in them (`instance` not None)."""

    instance: str | None = None

    def name(self, kind: str) -> str:
        return f"{PREFIX}/{self.instance}/{kind}" if self.instance else f"{PREFIX}/{kind}"

    def tier(self, tier: Tier) -> str:
        return self.name(tier.value)

    @property
    def plan(self) -> str:
        return self.name(PLAN_KIND)

    def all(self) -> tuple[str, ...]:
        """Every context this reconciler posts: the tiers in order, then the plan."""
        return (*(self.tier(t) for t in TIER_ORDER), self.plan)


DEFAULT_CONTEXTS = Contexts()
CONTEXTS: dict[Tier, str] = {t: DEFAULT_CONTEXTS.tier(t) for t in TIER_ORDER}  # reconciler/canary, .../production
PLAN_CONTEXT = DEFAULT_CONTEXTS.plan  # reconciler/plan
STATE_OF: dict[Outcome, StatusState] = {
    Outcome.SUCCESS: StatusState.SUCCESS,
    Outcome.FAILED: StatusState.FAILURE,
    Outcome.ERROR: StatusState.ERROR,
    Outcome.SKIPPED: StatusState.ERROR,  # not applied: refined by what blocked it (see run_statuses)
}
PAST_TENSE = {ActionKind.CREATE: "created", ActionKind.UPDATE: "updated",
              ActionKind.RECREATE: "recreated", ActionKind.DELETE: "deleted"}


@dataclass(frozen=True)
class StatusLine:
    context: str
    state: StatusState
    description: str

    def update(self, target_url: str) -> StatusUpdate:
        """The forge's value for this line, linking to the run page."""
        return StatusUpdate(context=self.context, state=self.state, description=self.description,
                            target_url=target_url)

    def as_json(self) -> dict[str, str]:
        return {"context": self.context, "state": self.state.value, "description": self.description}


def format_duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s"


def _line(tier: Tier, state: StatusState, text: str, contexts: Contexts = DEFAULT_CONTEXTS) -> StatusLine:
    return StatusLine(contexts.tier(tier), state, one_line(f"{tier.value}: {text}"))


def each_tier(state: StatusState, text: str, contexts: Contexts = DEFAULT_CONTEXTS) -> list[StatusLine]:
    """The same line on both tier contexts (`<tier>: <text>`)."""
    return [_line(t, state, text, contexts) for t in TIER_ORDER]


def tier_pending(tier: Tier, changes: int, contexts: Contexts = DEFAULT_CONTEXTS) -> StatusLine:
    """Posted when a tier starts (apply's `TierStarted` event)."""
    what = f"applying {changes} change{'' if changes == 1 else 's'}" if changes else "checking, no changes"
    return _line(tier, StatusState.PENDING, what, contexts)


def counts_text(result: TierResult) -> str:
    counts = result.counts()
    parts = [f"{counts[k]} {word}" for k, word in PAST_TENSE.items() if counts[k]]
    return ", ".join(parts)


def tier_status(tier: Tier, result: TierResult | None, *,
                blocked_state: StatusState = StatusState.FAILURE, contexts: Contexts = DEFAULT_CONTEXTS) -> StatusLine:
    """The final line for one tier. `result` None: the tier has not started (pending).

    `blocked_state` is the state of a tier that was not applied because an earlier one did not
    pass (`failure` after a failed canary, `error` after a reconciler error or an interrupt).
    """
    if result is None:
        return _line(tier, StatusState.PENDING, "waiting for the earlier tier", contexts)
    if result.blocked_by:
        return _line(tier, blocked_state, f"not applied: {result.blocked_by}", contexts)
    done = counts_text(result)
    if result.outcome is Outcome.SUCCESS:
        if not done:
            return _line(tier, StatusState.SUCCESS, f"up to date ({result.unchanged} unchanged)", contexts)
        gate = result.gate
        health = f" · {gate.healthy}/{gate.total} healthy" if gate and gate.total else ""
        return _line(tier, StatusState.SUCCESS, f"{done}{health} in {format_duration(result.duration_s)}", contexts)
    rolled = "; rolled back" if result.rolled_back else ""
    if result.gate is not None and result.gate.outcome is Outcome.FAILED:
        return _line(tier, StatusState.FAILURE, f"health gate failed: {result.gate.message}{rolled}", contexts)
    if result.outcome is Outcome.SKIPPED:
        return _line(tier, StatusState.ERROR, f"interrupted{f' after {done}' if done else ''}; not verified", contexts)
    state = STATE_OF[result.outcome]
    prefix = "could not apply" if state is StatusState.ERROR else "failed"
    return _line(tier, state, f"{prefix}: {result.message}{rolled}", contexts)


def run_statuses(run: RunResult, plan: Plan | None = None, contexts: Contexts = DEFAULT_CONTEXTS) -> list[StatusLine]:
    """Final lines for both tier contexts of one applied plan, in tier order, its holds and the orgs
    that failed to render included."""
    if run.refused:
        return each_tier(StatusState.FAILURE, f"refused: {run.refused}", contexts)
    lines: list[StatusLine] = []
    blocked_state = StatusState.FAILURE
    for tier in TIER_ORDER:
        result = run.tier(tier)
        line = tier_status(tier, result, blocked_state=blocked_state, contexts=contexts)
        if plan is not None:
            line = _with_failed_orgs(_with_holds(line, tier, plan, contexts), tier, plan)
        lines.append(line)
        if result is not None and not result.blocked_by and result.outcome is not Outcome.SUCCESS:
            blocked_state = StatusState.FAILURE if result.outcome is Outcome.FAILED else StatusState.ERROR
    return lines


def _with_holds(line: StatusLine, tier: Tier, plan: Plan, contexts: Contexts) -> StatusLine:
    """A tier with held changes is not at its desired state: it says what is held and why (`failure`)."""
    held = [a for a in plan.held() if a.tier is tier]
    if not held or line.state is StatusState.PENDING:
        return line
    if line.state in (StatusState.FAILURE, StatusState.ERROR):  # something else went wrong too: that first
        return StatusLine(line.context, line.state, one_line(f"{line.description}; {len(held)} held"))
    count = f"{len(held)} held" if len(held) > 1 else "held"
    return _line(tier, StatusState.FAILURE, f"{count}: {held[0].reason}", contexts)


def fit(head: str, middle: str, tail: str = "", limit: int = DESCRIPTION_LIMIT) -> str:
    """`head + middle + tail` as one line of at most `limit` characters, cutting only `middle`."""
    middle = one_line(middle, limit)  # `head` and `tail` are the reconciler's own words, one line already
    room = max(limit - len(head) - len(tail), 1)
    return one_line(f"{head}{cut(middle, room)}{tail}", limit)


def failed_orgs_text(plan: Plan, prefix: str = "", tail: str | None = None) -> str:
    """`<prefix>org beta failed: <file:line:col: first error>; 2 other org(s) converged` within the limit."""
    first = plan.failed_orgs[0]
    names = ", ".join(f.org for f in plan.failed_orgs)
    head = f"{prefix}org{'s' if len(plan.failed_orgs) > 1 else ''} {names} failed: "
    if tail is None:
        tail = f"; {len(plan.orgs)} other org(s) converged"
    return fit(head, first.first(), tail)


def _with_failed_orgs(line: StatusLine, tier: Tier, plan: Plan) -> StatusLine:
    """A tier that converged every org that rendered is still `failure` while one org did not render."""
    if not plan.failed_orgs or line.state is StatusState.PENDING:
        return line
    if line.state in (StatusState.FAILURE, StatusState.ERROR):  # the tier's own trouble first, then the org
        names = ", ".join(f.org for f in plan.failed_orgs)
        return StatusLine(line.context, line.state, one_line(f"{line.description}; org {names} failed to render"))
    return StatusLine(line.context, StatusState.FAILURE, failed_orgs_text(plan, f"{tier.value}: "))


def config_error_statuses(first_error_text: str, contexts: Contexts = DEFAULT_CONTEXTS) -> list[StatusLine]:
    """A render error: nothing planned, both contexts `failure` naming the first error's file:line."""
    text = one_line(f"invalid config: {first_error_text}")
    return [StatusLine(contexts.tier(t), StatusState.FAILURE, text) for t in TIER_ORDER]


def error_statuses(message: str, contexts: Contexts = DEFAULT_CONTEXTS) -> list[StatusLine]:
    """The reconciler could not do its job before any tier ran (e.g. backend unreachable)."""
    return each_tier(StatusState.ERROR, f"not applied: {message}", contexts)


def planning_statuses(revision: str, contexts: Contexts = DEFAULT_CONTEXTS) -> list[StatusLine]:
    """`pending` on both tiers the moment a run starts (before anything is fetched)."""
    return each_tier(StatusState.PENDING, f"planning {revision[:12]}", contexts)


def superseded_statuses(by: str, *, verified: bool, contexts: Contexts = DEFAULT_CONTEXTS) -> list[StatusLine]:
    """`warning`, not `error`: nothing went wrong, a newer commit took its place (Gitea >= 1.10.5)."""
    when = "before it was verified" if verified else "before it was applied"
    return each_tier(StatusState.WARNING, f"superseded by {by[:12]} {when}", contexts)


def plan_pending(contexts: Contexts = DEFAULT_CONTEXTS) -> StatusLine:
    """`reconciler/plan` the moment a pull request head is picked up."""
    return StatusLine(contexts.plan, StatusState.PENDING, "planning")


def plan_status(plan: Plan, contexts: Contexts = DEFAULT_CONTEXTS) -> StatusLine:
    """`reconciler/plan` on a pull request head that planned: its compact counts, or the refusal."""
    if plan.refused:
        return StatusLine(contexts.plan, StatusState.FAILURE, one_line(f"refused: {plan.refused}"))
    if plan.failed_orgs:
        return StatusLine(contexts.plan, StatusState.FAILURE,
                          failed_orgs_text(plan, tail=f"; others: {plan.summary()}"))
    return StatusLine(contexts.plan, StatusState.SUCCESS, one_line(plan.summary()))


def plan_error_status(message: str, *, invalid: bool, contexts: Contexts = DEFAULT_CONTEXTS) -> StatusLine:
    """`reconciler/plan` when there is no plan: the config is invalid (`failure`) or the reconciler failed."""
    if invalid:
        first = (message.strip().splitlines() or ["invalid config"])[0]
        return StatusLine(contexts.plan, StatusState.FAILURE, one_line(f"invalid config: {first}"))
    return StatusLine(contexts.plan, StatusState.ERROR, one_line(f"could not plan: {message}"))
