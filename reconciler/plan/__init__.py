"""Planning: a pure function from (desired state, observed workspaces, policy) to a guarded Plan.

`diff` pairs and classifies, `guards` refuses unsafe plans, `present` renders a plan for people
(table, markdown) and machines (JSON).
"""

from reconciler.plan.diff import plan
from reconciler.plan.guards import PlanPolicy, guard
from reconciler.plan.present import plan_to_json, render_markdown, render_table, summary_line

__all__ = ["PlanPolicy", "guard", "plan", "plan_to_json", "render_markdown", "render_table", "summary_line"]
