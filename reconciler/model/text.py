"""Text rules shared by every layer that shows a line to a person. Pure, no I/O.

Text from the config repository (error lines, ids, reasons) is written by anyone who can open a
pull request. Before it reaches a commit status or a Markdown comment it loses control characters,
bidirectional overrides and lone surrogates (`printable`), is cut to a bounded length, and in
Markdown stays inert: inside a code span (`md_code`) or with every active character escaped
(`md_text`), with `@mention` and `#123` references broken by a zero-width space so the forge
neither links nor notifies anyone.
"""

from __future__ import annotations

import re
import unicodedata

DESCRIPTION_LIMIT = 140  # a commit status description: safe on Gitea, Forgejo and GitHub (GitHub 422s longer)
MD_LIMIT = 300  # one line of repo-controlled text in a comment
ZWSP = "\u200b"
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_MD_ACTIVE = re.compile(r"([\\`*_\[\]()!#<>&|~$])")  # what CommonMark, GFM or Gitea could read as markup
_REFERENCE = re.compile(r"([@#])(?=[\w.-])")  # @user mentions, #123 and owner/repo#123 references
_AUTOLINK = re.compile(r"(?i)(://|www\.)")


def printable(text: str) -> str:
    """`text` with every control character (newlines and tabs too), bidi override and lone surrogate
    turned into a space."""
    return "".join(
        " " if c in _BIDI or unicodedata.category(c) in ("Cc", "Cs") else c for c in text
    )


def cut(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis marking a cut. Slicing is by code point, so a cut can
    drop a combining mark but never split a character's encoding."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def one_line(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """First line of `text`, control characters dropped, whitespace squeezed, cut to `limit` characters."""
    line = " ".join(printable((text.strip().splitlines() or [""])[0]).split())
    return cut(line, limit)


def _inert(text: str, limit: int) -> str:
    return _REFERENCE.sub(rf"\1{ZWSP}", cut(" ".join(printable(text).split()), limit))


def md_code(text: str, limit: int = MD_LIMIT, *, table: bool = False) -> str:
    """`text` as one inline code span nothing can break out of: the fence is longer than any run of
    backticks inside, and in a table cell `|` is escaped (GFM splits cells before code spans; a
    zero-width space keeps a backslash of the text from escaping that escape)."""
    body = _inert(text, limit)
    if table:
        body = body.replace("\\|", f"\\{ZWSP}|").replace("|", "\\|")
    if not body:
        return ""
    fence = "`" * (max((len(run) for run in re.findall("`+", body)), default=0) + 1)
    pad = " " if body[0] in "` " or body[-1] in "` " else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def md_text(text: str, limit: int = MD_LIMIT) -> str:
    """`text` as plain Markdown prose: every character that could start markup (emphasis, links,
    images, HTML, entities, headings, tables, strikethrough, math) backslash-escaped, autolinks
    broken."""
    escaped = _MD_ACTIVE.sub(r"\\\1", _inert(text, limit))
    return _AUTOLINK.sub(lambda m: m.group(1)[0] + ZWSP + m.group(1)[1:], escaped)
