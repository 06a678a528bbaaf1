"""The one plan comment on a pull request, as Markdown. Pure.

Found again by its marker and edited in place (the forge client does that). The plan table comes
from `plan.present.render_markdown`; without a plan, the errors are listed (first one first), each
an inert code span of at most `MAX_ERROR_CHARS` (`model.text.md_code`), at most `MAX_ERRORS` of
them: an error line quotes the config repository, which anyone opening a pull request writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.model.plan import Plan
from reconciler.model.text import md_code
from reconciler.plan import render_markdown

MARKER = "<!-- reconciler:plan -->"
MAX_ERRORS = 50
MAX_ERROR_CHARS = 300


def plan_comment(plan: Plan, sha: str, url: str) -> str:
    return f"{MARKER}\n{render_markdown(plan, sha)}{_footer(url)}"


def error_comment(errors: Sequence[str], sha: str, url: str, *, invalid: bool) -> str:
    title = "Invalid config" if invalid else "Could not plan"
    lines = [f"- {md_code(line, MAX_ERROR_CHARS)}" for line in list(errors)[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        lines.append(f"- … {len(errors) - MAX_ERRORS} more")
    listed = "\n".join(lines)
    return f"{MARKER}\n### Reconciler plan for {md_code(sha[:12])}\n\n**{title}:**\n\n{listed}\n{_footer(url)}"


def _footer(url: str) -> str:
    return f"\n[Run page]({url}) · nothing is applied from a pull request.\n" if url else ""
