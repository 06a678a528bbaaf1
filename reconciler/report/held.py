"""Status lines for tiers whose changes were held by the quarantine. Pure.

A held change is a NOOP in the plan (see `apply/quarantine.py`), so the run itself reads as "up
to date"; this rewrites such a tier's line so the commit says what is held and why: state
`failure` (the desired state is not applied because the upstream version it needs is bad),
description naming the quarantined digest or SHA and when it failed.
"""

from __future__ import annotations

from reconciler.apply.quarantine import HELD, held_actions
from reconciler.model.enums import Tier
from reconciler.model.plan import Plan
from reconciler.report.statuses import CONTEXTS, StatusLine, one_line


def mark_held(lines: list[StatusLine], plan: Plan) -> list[StatusLine]:
    """`lines` with each tier that has held changes saying so (other lines unchanged)."""
    held = held_actions(plan)
    if not held:
        return lines
    out: list[StatusLine] = []
    for line in lines:
        tier = next((t for t, ctx in CONTEXTS.items() if ctx == line.context), None)
        mine = [a for a in held if a.tier is tier]
        if tier is None or not mine or line.state == "pending":
            out.append(line)
            continue
        if line.state in ("failure", "error"):  # something else went wrong too: keep that first
            out.append(StatusLine(line.context, line.state, one_line(f"{line.description}; {len(mine)} held")))
            continue
        why = mine[0].reason.removeprefix(HELD)
        count = f"{len(mine)} held" if len(mine) > 1 else "held"
        out.append(StatusLine(line.context, "failure", one_line(f"{Tier(tier).value}: {count}: {why}")))
    return out
