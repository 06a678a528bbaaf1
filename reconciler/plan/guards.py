"""Safety guards on a plan, and the policy they read. Pure.

A guard never raises: it returns the plan with `refused` set to a message a person can act on;
the actions stay as they are (the table shows what would have happened) and apply applies
nothing from a refused plan. Guards:

- empty desired state: in `reconcile` mode, no provisioned workspace desired while managed ones
  exist is refused unless `allow_empty` (a broken render or a wrong ref must not wipe a fleet);
- delete cap: more deletions than `max_delete` is refused. When `max_delete` is None the cap is
  the larger of 1 and 25% of the managed workspaces, rounded down (4 managed -> 1, 10 -> 2,
  100 -> 25). `max_delete=0` forbids every delete.

A render error of the whole commit never reaches the planner at all: the caller plans nothing.
An org that failed to render alone (`desired.failed_orgs`) is left out of both guards: its
workspaces are kept (NOOP, never a deletion) and are not counted as managed, so they neither
trip the empty-state guard nor widen the delete cap of the orgs that do converge.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from reconciler.model.desired import DesiredState
from reconciler.model.enums import ActionKind, Mode
from reconciler.model.observed import ObservedWorkspace
from reconciler.model.plan import Plan

DEFAULT_DELETE_FRACTION = 0.25


class PlanPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Mode = Mode.RECONCILE
    allow_empty: bool = False
    max_delete: int | None = Field(default=None, ge=0)

    def delete_cap(self, managed: int) -> int:
        """How many deletions one run may make (see the module docstring for the default)."""
        if self.max_delete is not None:
            return self.max_delete
        return max(1, int(managed * DEFAULT_DELETE_FRACTION))


def refusal(
    desired: DesiredState, actual: Sequence[ObservedWorkspace], plan: Plan, policy: PlanPolicy
) -> str | None:
    """The message of the first guard that refuses `plan`, or None when it may be applied."""
    failed = desired.failed()
    managed = sum(1 for o in actual if o.id.partition("/")[0] not in failed)
    provisioned = sum(1 for w in desired.workspaces if w.provisioned)
    if policy.mode is Mode.RECONCILE and provisioned == 0 and managed > 0 and not policy.allow_empty:
        return (
            f"desired state is empty but {managed} managed workspace{_s(managed)} exist; "
            "pass --allow-empty to delete them all"
        )
    deletes = sum(1 for a in plan.actions if a.kind is ActionKind.DELETE)
    cap = policy.delete_cap(managed)
    if deletes > cap:
        return (
            f"would delete {deletes} workspace{_s(deletes)}, more than --max-delete {cap}; "
            f"check the repo, then raise --max-delete to at least {deletes} (or use --mode merge)"
        )
    return None


def guard(desired: DesiredState, actual: Sequence[ObservedWorkspace], plan: Plan, policy: PlanPolicy) -> Plan:
    """`plan` unchanged when every guard passes; otherwise refused (and so applied by nobody)."""
    message = refusal(desired, actual, plan, policy)
    return plan if message is None else plan.model_copy(update={"refused": message})


def _s(n: int) -> str:
    return "" if n == 1 else "s"
