"""What "suspended by an operator" does to a run: pure values, no I/O (the journal keeps what is suspended).

- everything suspended: a run of the branch plans nothing and applies nothing. The first time a
  head meets the suspension it is journalled as `skipped` and both tier contexts say
  `pending` "suspended by an operator; not applied" (a head already converged, or failed, keeps
  its statuses; a resync or a heal while suspended does nothing and records nothing);
- one org suspended: the run plans as usual, then the changes of that org become NOOP "kept:
  suspended by an operator" (`hold_back`), so its workspaces are left exactly as they are (heals
  included) while the other orgs converge; a tier with changes waiting says so on its status
  (`pending` where it would have been `success`, since the commit is not fully applied yet).
A resume asks for a resync of the head: what waited is then planned and applied like any drift.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable

from reconciler.model.enums import TIER_ORDER, ActionKind, StatusState, Tier
from reconciler.model.plan import Action, Plan
from reconciler.model.text import one_line
from reconciler.report.statuses import CONTEXTS, StatusLine

SUSPENDED = "suspended by an operator"
SUSPENDED_RUN = f"{SUSPENDED}; not applied"  # the message of a run skipped because everything is suspended
KEPT = f"kept: {SUSPENDED}"


def org_of(workspace_id: str) -> str:
    return workspace_id.partition("/")[0]


def suspended_statuses(context: Callable[[Tier], str] = CONTEXTS.__getitem__) -> list[StatusLine]:
    """Both tier contexts while everything is suspended: not applied, waiting for a resume."""
    return [StatusLine(context(tier), StatusState.PENDING, f"{tier.value}: {SUSPENDED_RUN}") for tier in TIER_ORDER]


def tier_of(line: StatusLine) -> Tier | None:
    """The tier a line of a branch run is about (its context ends with the tier's name)."""
    return next((tier for tier in TIER_ORDER if line.context.endswith(f"/{tier.value}")), None)


def hold_back(plan: Plan, orgs: Collection[str]) -> tuple[Plan, Counter[Tier]]:
    """`plan` with every change of a workspace of `orgs` made a NOOP that says why, and the count of
    those changes per tier (what waits for the resume)."""
    if not orgs:
        return plan, Counter()
    waiting: Counter[Tier] = Counter()
    actions: list[Action] = []
    for action in plan.actions:
        if org_of(action.workspace_id) in orgs and action.kind not in (ActionKind.NOOP, ActionKind.HOLD):
            waiting[action.tier] += 1
            action = action.model_copy(update={"kind": ActionKind.NOOP,
                                               "reason": f"{KEPT} (would {action.kind.value}: {action.reason})"})
        actions.append(action)
    if not waiting:
        return plan, waiting
    return plan.model_copy(update={"actions": tuple(actions)}), waiting


def waiting_text(orgs: Iterable[str], changes: int) -> str:
    names = ", ".join(sorted(orgs))
    return f"org {names} {SUSPENDED}, {changes} change{'' if changes == 1 else 's'} waiting"


def with_suspended(lines: Iterable[StatusLine], waiting: Counter[Tier], orgs: Iterable[str]) -> list[StatusLine]:
    """The final lines of a run that kept suspended orgs' changes back: a tier with changes waiting
    says so, and is `pending` where it would have said `success` (the commit is not fully applied)."""
    names = sorted(orgs)
    out: list[StatusLine] = []
    for line in lines:
        tier = tier_of(line)
        count = waiting[tier] if tier is not None else 0
        if not count or line.state is StatusState.PENDING:
            out.append(line)
            continue
        note = waiting_text(names, count)
        if line.state is StatusState.SUCCESS:
            rest = line.description.removeprefix(f"{tier}: ")
            out.append(StatusLine(line.context, StatusState.PENDING, one_line(f"{tier}: {note}; {rest}")))
        else:
            out.append(StatusLine(line.context, line.state, one_line(f"{line.description}; {note}")))
    return out
