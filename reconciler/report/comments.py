"""The one plan comment on a pull request, as Markdown. Pure.

Found again by its marker and edited in place (the forge client does that). The plan table comes
from `plan.present.render_markdown`; without a plan, the errors are listed (first one first).
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.model.plan import Plan
from reconciler.plan import render_markdown

MARKER = "<!-- reconciler:plan -->"
MAX_ERRORS = 50


def plan_comment(plan: Plan, sha: str, url: str) -> str:
    return f"{MARKER}\n{render_markdown(plan, sha)}{_footer(url)}"


def error_comment(errors: Sequence[str], sha: str, url: str, *, invalid: bool) -> str:
    title = "Invalid config" if invalid else "Could not plan"
    listed = "\n".join(f"- `{line}`" for line in list(errors)[:MAX_ERRORS])
    return f"{MARKER}\n### Reconciler plan for `{sha[:12]}`\n\n**{title}:**\n\n{listed}\n{_footer(url)}"


def _footer(url: str) -> str:
    return f"\n[Run page]({url}) · nothing is applied from a pull request.\n" if url else ""
