"""Two renderings of one Plan: a human table (CLI, PR comment) and a machine dict (`--json`). Pure.

Both show ids, tiers, kinds, reasons, spec hashes and image references only: desired/observed are
reduced to those fields, so no env value or secret digest can leak through a rendering. An org that
failed to render is named with every error of it (`file:line:col: message`) and how many of its
workspaces are kept as they run. In the
Markdown, whatever the config repository controls (ids, reasons, the refusal) is inert text
(`model.text.md_code` / `md_text`): a pull request cannot put markup into the bot's comment.
"""

from __future__ import annotations

from typing import Any

from reconciler.model.desired import OrgFailure
from reconciler.model.enums import ActionKind
from reconciler.model.plan import Action, Plan
from reconciler.model.text import md_code, md_text
from reconciler.plan.diff import org_of

MARKERS: dict[ActionKind, str] = {
    ActionKind.CREATE: "+",
    ActionKind.UPDATE: "~",
    ActionKind.RECREATE: "-/+",
    ActionKind.DELETE: "-",
    ActionKind.NOOP: "=",
    ActionKind.HOLD: "!",
}
HEADERS = ("", "tier", "workspace", "action", "reason")
MAX_ORG_ERRORS = 20  # per failed org in the Markdown comment (the run page and the CLI list all)


def summary_line(plan: Plan) -> str:
    c = plan.counts()
    return (
        f"Plan: {c[ActionKind.CREATE]} to create, {c[ActionKind.UPDATE]} to update, "
        f"{c[ActionKind.RECREATE]} to recreate, {c[ActionKind.DELETE]} to delete, "
        f"{c[ActionKind.NOOP]} unchanged{f', {c[ActionKind.HOLD]} held' if c[ActionKind.HOLD] else ''}."
    )


def shown(plan: Plan, verbose: bool = False) -> tuple[Action, ...]:
    """What a rendering lists: every action when verbose or refused, else the changes and holds."""
    if verbose or plan.refused:
        return plan.actions
    return tuple(a for a in plan.actions if a.kind is not ActionKind.NOOP)


def action_label(action: Action) -> str:
    if action.kind is ActionKind.UPDATE and not action.restart:
        return "update (no restart)"
    return action.kind.value


def _rows(plan: Plan, verbose: bool) -> list[tuple[str, str, str, str, str]]:
    return [(MARKERS[a.kind], a.tier.value, a.workspace_id, action_label(a), a.reason) for a in shown(plan, verbose)]


def render_table(plan: Plan, verbose: bool = False) -> str:
    """Aligned columns (marker, tier, workspace, action, reason), then the summary and any refusal.

    Unchanged workspaces are counted in the summary and listed only when `verbose` (or refused).
    """
    rows = _rows(plan, verbose)
    lines: list[str] = []
    if rows:
        table = [HEADERS, *rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(HEADERS) - 1)]
        for row in table:
            cells = [row[i].ljust(widths[i]) for i in range(len(widths))] + [row[-1]]
            lines.append("  ".join(cells).rstrip())
    else:
        lines.append("No changes." if not plan.refused else "Nothing to apply.")
    hidden = len(plan.actions) - len(rows)
    if hidden:
        lines.append(f"({hidden} unchanged workspace{'' if hidden == 1 else 's'} not shown; use --verbose)")
    lines.append(summary_line(plan))
    for failure in plan.failed_orgs:
        lines.append(f"FAILED: {failed_org_line(plan, failure)}:")
        lines.extend(f"  {error}" for error in failure.errors or (failure.first(),))
    if plan.refused:
        lines.append(f"REFUSED: {plan.refused}")
    return "\n".join(lines)


def kept_count(plan: Plan, org: str) -> int:
    return sum(1 for a in plan.actions if a.kind is ActionKind.NOOP and org_of(a.workspace_id) == org)


def failed_org_line(plan: Plan, failure: OrgFailure) -> str:
    """`org beta did not render; its 3 running workspaces are kept as they are`."""
    kept = kept_count(plan, failure.org)
    if not kept:
        return f"org {failure.org} did not render; none of its workspaces runs, none is created"
    return (f"org {failure.org} did not render; its {kept} running workspace{'' if kept == 1 else 's'} "
            f"{'is' if kept == 1 else 'are'} kept as {'it is' if kept == 1 else 'they are'}")


def render_markdown(plan: Plan, revision: str | None) -> str:
    """The PR comment: heading, a table of changes, unchanged ones folded, summary, refusal."""
    rev = md_code((revision or plan.revision or "")[:12])
    out = [f"### Reconciler plan{f' for {rev}' if rev else ''} ({plan.mode.value} mode)", ""]
    if plan.refused:
        out += [f"> **Refused:** {md_text(plan.refused)}", ""]
    for failure in plan.failed_orgs:
        out += [f"> **Failed:** {md_text(failed_org_line(plan, failure))}", ">"]
        out += [f"> - {md_code(error)}" for error in (failure.errors or (failure.first(),))[:MAX_ORG_ERRORS]]
        out.append("")
    changes = shown(plan)
    if changes:
        out += _md_table(changes)
    else:
        out.append("No changes.")
    noops = [a for a in plan.actions if a.kind is ActionKind.NOOP] if not plan.refused else []
    if noops:
        out += ["", f"<details><summary>{len(noops)} unchanged</summary>", ""]
        out += _md_table(noops)
        out += ["", "</details>"]
    out += ["", f"**{summary_line(plan)}**"]
    return "\n".join(out) + "\n"


def _md_table(actions: tuple[Action, ...] | list[Action]) -> list[str]:
    lines = ["| | tier | workspace | action | reason |", "|---|---|---|---|---|"]
    for a in actions:
        marker, ws = f"`{MARKERS[a.kind]}`", md_code(a.workspace_id, table=True)
        cells = (marker, a.tier.value, ws, action_label(a), md_text(a.reason))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """Machine-readable plan: ids, tiers, kinds, reasons, spec hashes, images. Never env values."""
    c = plan.counts()
    return {
        "revision": plan.revision,
        "mode": plan.mode.value,
        "refused": plan.refused,
        "failed_orgs": [_failure_json(plan, f) for f in plan.failed_orgs],
        "summary": {kind.value: c[kind] for kind in ActionKind},
        "actions": [_action_json(a) for a in plan.actions],
    }


def _failure_json(plan: Plan, f: OrgFailure) -> dict[str, Any]:
    return {"org": f.org, "file": f.file, "line": f.line, "column": f.column, "message": f.message,
            "errors": list(f.errors), "kept": kept_count(plan, f.org)}


def _action_json(a: Action) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": a.kind.value,
        "workspace_id": a.workspace_id,
        "tier": a.tier.value,
        "reason": a.reason,
        "restart": a.restart,
        "held_by": a.held_by.model_dump(mode="json") if a.held_by else None,
        "desired": None,
        "observed": None,
    }
    if a.desired is not None:
        d = a.desired
        out["desired"] = {
            "id": d.id, "tier": d.tier.value, "runtime": d.runtime, "provisioned": d.provisioned,
            "parent": d.parent, "image": d.image_digest or d.image, "spec_hash": d.spec_hash,
        }
    if a.observed is not None:
        o = a.observed
        out["observed"] = {
            "id": o.id, "tier": o.tier.value, "spec_hash": o.spec_hash, "image": o.image,
            "backend_ref": o.backend_ref, "running": o.running, "health": o.health.value,
            "revision": o.revision,
        }
    return out
