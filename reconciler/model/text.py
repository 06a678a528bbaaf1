"""Text rules shared by every layer that shows a line to a person. Pure, no I/O."""

from __future__ import annotations

DESCRIPTION_LIMIT = 140  # a commit status description: safe on Gitea, Forgejo and GitHub (GitHub 422s longer)


def one_line(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """First line of `text`, whitespace squeezed, cut to `limit` characters with an ellipsis."""
    line = " ".join((text.strip().splitlines() or [""])[0].split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
