"""Planning: a pure function from (desired state, observed workspaces, policy, holds) to a Plan.

`diff` pairs and classifies, `holds` keeps back what failed a health gate, `guards` refuses
unsafe plans, `present` renders a plan for people (table, markdown) and machines (JSON).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from reconciler.model.desired import DesiredState
from reconciler.model.holds import Hold
from reconciler.model.observed import ObservedWorkspace
from reconciler.model.plan import Plan
from reconciler.plan.diff import diff
from reconciler.plan.guards import PlanPolicy, guard
from reconciler.plan.holds import blame, hold
from reconciler.plan.present import plan_to_json, render_markdown, render_table, summary_line

__all__ = ["PlanPolicy", "blame", "plan", "plan_to_json", "render_markdown", "render_table", "summary_line"]


def plan(
    desired: DesiredState,
    actual: Sequence[ObservedWorkspace],
    policy: PlanPolicy | None = None,
    holds: Iterable[Hold] = (),
) -> Plan:
    """diff -> hold -> guard: the plan that turns `actual` into `desired`, as far as it may."""
    policy = policy or PlanPolicy()
    return guard(desired, actual, hold(diff(desired, actual, policy.mode), holds), policy)
