"""What waits for an operator in a run: suspensions and production approval. Pure values, no I/O (the
journal keeps what is suspended and what is approved).

- everything suspended: a run of the branch plans nothing and applies nothing. The first time a
  head meets the suspension it is journalled as `skipped` and both tier contexts say
  `pending` "suspended by an operator; not applied" (a head already converged, or failed, keeps
  its statuses; a resync or a heal while suspended does nothing and records nothing);
- one org suspended: the run plans as usual, then the changes of that org become NOOP "kept:
  suspended by an operator" (`hold_back`), so its workspaces are left exactly as they are (heals
  included) while the other orgs converge; a tier with changes waiting says so on its status
  (`pending` where it would have been `success`, since the commit is not fully applied yet);
- production manual (the operator policy's `production: manual`, or an org's: `approval.py`) and
  the commit not approved: production's changes (of those orgs) become NOOP "waiting for approval"
  (`hold_back_tier`), canary goes on as
  usual, and once canary passed production's status is `pending` "waiting for approval ...:
  reconciler promote <sha>" (a canary that failed leaves production `failure` as always).
A tier with changes waiting does not get the run's revision as its last good one (it does not run
it). A resume or a promotion asks for a resync of the head: what waited is then planned and
applied like any drift.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from reconciler.model.enums import TIER_ORDER, ActionKind, StatusState, Tier
from reconciler.model.plan import Action, Plan
from reconciler.model.text import one_line
from reconciler.report.statuses import CONTEXTS, StatusLine

SUSPENDED = "suspended by an operator"
SUSPENDED_RUN = f"{SUSPENDED}; not applied"  # the message of a run skipped because everything is suspended
KEPT = f"kept: {SUSPENDED}"
APPROVAL = "waiting for approval"
WAITING_MARKS = (SUSPENDED, APPROVAL)  # a run whose message says one of these left its commit `pending`
KEEPS = frozenset({ActionKind.NOOP, ActionKind.HOLD})  # what is not a change


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
    return _keep(plan, lambda a: org_of(a.workspace_id) in orgs, KEPT)


def hold_back_tier(plan: Plan, tier: Tier, orgs: Collection[str] | None = None) -> tuple[Plan, int]:
    """`plan` with every change of `tier` (of a workspace of `orgs`; None: of every org) made a NOOP
    "waiting for approval"; how many."""
    kept, waiting = _keep(plan, lambda a: a.tier is tier and (orgs is None or org_of(a.workspace_id) in orgs),
                          f"kept: {APPROVAL}")
    return kept, waiting[tier]


def _keep(plan: Plan, which: Callable[[Action], bool], why: str) -> tuple[Plan, Counter[Tier]]:
    waiting: Counter[Tier] = Counter()
    actions: list[Action] = []
    for action in plan.actions:
        if action.kind not in KEEPS and which(action):
            waiting[action.tier] += 1
            action = action.model_copy(update={"kind": ActionKind.NOOP,
                                               "reason": f"{why} (would {action.kind.value}: {action.reason})"})
        actions.append(action)
    if not waiting:
        return plan, waiting
    return plan.model_copy(update={"actions": tuple(actions)}), waiting


def changes_text(count: int) -> str:
    return f"{count} change{'' if count == 1 else 's'}"


def waiting_text(orgs: Iterable[str], changes: int) -> str:
    return f"org {', '.join(sorted(orgs))} {SUSPENDED}, {changes_text(changes)} waiting"


def approval_text(sha: str, changes: int) -> str:
    return f"{APPROVAL} ({changes_text(changes)}): reconciler promote {sha[:12]}"


@dataclass
class Waiting:
    """What one run kept back for an operator: the changes of suspended orgs (per tier) and, with
    production manual, production's changes until the commit is approved."""

    sha: str = ""
    orgs: frozenset[str] = frozenset()
    by_org: Counter[Tier] = field(default_factory=Counter)
    approval: int = 0  # production changes waiting for `reconciler promote`

    def __bool__(self) -> bool:
        return bool(self.by_org) or self.approval > 0

    def tiers(self) -> set[Tier]:
        """The tiers that do not run the run's revision in full."""
        return {t for t, n in self.by_org.items() if n} | ({Tier.PRODUCTION} if self.approval else set())

    def message(self, applied: bool) -> str:
        """What the run's message adds; `applied`: canary passed (else production's wait is moot)."""
        parts = [waiting_text(self.orgs, sum(self.by_org.values()))] if self.by_org else []
        if self.approval and applied:
            parts.append(f"production {approval_text(self.sha, self.approval)}")
        return "; ".join(parts)

    def lines(self, lines: Iterable[StatusLine]) -> list[StatusLine]:
        """The final lines of the run: a tier with changes waiting says so, and is `pending` where it
        would have said `success` (the commit is not fully applied yet)."""
        out: list[StatusLine] = []
        for line in lines:
            tier = tier_of(line)
            notes = []
            if tier is Tier.PRODUCTION and self.approval and line.state is StatusState.SUCCESS:
                notes.append(approval_text(self.sha, self.approval))
            if tier is not None and self.by_org[tier]:
                notes.append(waiting_text(self.orgs, self.by_org[tier]))
            note = "; ".join(notes)
            if not notes or line.state is StatusState.PENDING:
                out.append(line)
            elif line.state is StatusState.SUCCESS:
                rest = line.description.removeprefix(f"{tier}: ")
                out.append(StatusLine(line.context, StatusState.PENDING, one_line(f"{tier}: {note}; {rest}")))
            else:
                out.append(StatusLine(line.context, line.state, one_line(f"{line.description}; {note}")))
        return out


def with_suspended(lines: Iterable[StatusLine], waiting: Counter[Tier], orgs: Iterable[str]) -> list[StatusLine]:
    """The final lines of a run that kept suspended orgs' changes back (see `Waiting.lines`)."""
    return Waiting(orgs=frozenset(orgs), by_org=waiting).lines(lines)
