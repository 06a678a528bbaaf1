"""The pull request comment quotes the config repository, which anyone opening a pull request writes:
whatever it quotes stays inert Markdown (no links, images, HTML, emphasis, mentions), bounded in size.

The comment is rendered with markdown-it (CommonMark + GFM tables and strikethrough), close to what
Gitea's goldmark and GitHub's cmark-gfm do with it.
"""

from __future__ import annotations

import html
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.model.enums import ActionKind, Tier
from reconciler.model.plan import Action, Plan
from reconciler.model.text import ZWSP, md_code, md_text, one_line
from reconciler.plan import render_markdown
from reconciler.report.comments import MAX_ERROR_CHARS, MAX_ERRORS, error_comment, plan_comment

markdown_it = pytest.importorskip("markdown_it")
MD = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])

SHA = "0123456789abcdef0123456789abcdef01234567"
HOSTILE = [
    "orgs/a/org.yaml:3:5: unknown key '**bold** _it_ ~~gone~~'",
    "images.yaml:2:3: image reference '![x](http://evil.example/p.png)' is bad",
    "orgs/a/org.yaml:4:1: <img src=x onerror=alert(1)> <script>alert(1)</script> &lt;b&gt;",
    "orgs/a/org.yaml:5:1: ping @admin and @org/team, see #12 and owner/repo#3",
    "orgs/a/org.yaml:6:1: [click](javascript:alert(1)) <http://evil.example> [ref]: http://evil",
    "orgs/a/org.yaml:7:1: ` breaks out `` of ``` spans ` **x**",
    "orgs/a/org.yaml:8:1: a | pipe \\| and a \\\\ backslash\nnext line\r# heading\x00\x1b[31m\u202eevil",
    "`",
]
BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # direction overrides
# what markdown-it makes of any markup: none of it may come from a quoted line
ACTIVE = re.compile(r"<(?!/?(?:code|ul|li|p|h3|strong|table|thead|tbody|tr|th|td|blockquote|details|summary)\b)"
                    r"|<strong>(?!Invalid config:|Could not plan:|Refused:|Plan: )|<em>|<del>|<a ")


def active(rendered: str) -> list[str]:
    """Markup in the HTML besides the comment's own (marker, run page link, headings and labels)."""
    own = re.sub(r'<!-- reconciler:plan -->|<a href="http://reconciler\.example/runs/7">Run page</a>', "", rendered)
    return ACTIVE.findall(own)


def shown(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """What a reader sees of a quoted `text`: control characters as spaces, whitespace squeezed, cut."""
    line = " ".join("".join(" " if unicodedata.category(c) in ("Cc", "Cs") or c in BIDI else c for c in text).split())
    line = line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return line.replace(ZWSP, "")  # compared with rendered text that drops the ones the rendering adds


def codes(rendered: str) -> list[str]:
    return [html.unescape(c).replace(ZWSP, "") for c in re.findall(r"<code>(.*?)</code>", rendered, re.S)]


def test_error_lines_stay_inside_their_code_spans() -> None:
    comment = error_comment(HOSTILE, SHA, "http://reconciler.example/runs/7", invalid=True)
    rendered = MD.render(comment)
    assert not active(rendered), rendered
    assert codes(rendered) == [SHA[:12], *(shown(line) for line in HOSTILE)]
    assert not re.search(r"[@#](?=\w)", comment)  # no mention, no issue reference for the forge to act on
    assert "<strong>Invalid config:</strong>" in rendered


def test_error_list_is_bounded() -> None:
    errors = [f"orgs/a/org.yaml:{i}:1: " + "x" * 1000 for i in range(MAX_ERRORS + 7)]
    comment = error_comment(errors, SHA, "", invalid=False)
    items = [line for line in comment.splitlines() if line.startswith("- ")]
    assert len(items) == MAX_ERRORS + 1 and items[-1] == "- … 7 more"
    assert all(len(code) == MAX_ERROR_CHARS and code.endswith("…") for code in codes(MD.render(comment))[1:])
    assert "Could not plan" in comment and "Run page" not in comment


def test_plan_table_quotes_ids_reasons_and_refusal_inertly() -> None:
    actions = tuple(Action(kind=ActionKind.UPDATE, workspace_id=f"acme/{i}|x`y", tier=Tier.CANARY, reason=reason)
                    for i, reason in enumerate(HOSTILE))
    plan = Plan(revision=SHA, actions=actions, refused="refused by **guard** @admin <img src=x> | ![i](http://e)")
    rendered = MD.render(plan_comment(plan, SHA, ""))
    assert not active(rendered), rendered
    rows = re.findall(r"<tr>\n<td><code>~</code></td>\n<td>canary</td>\n<td>(.*?)</td>\n<td>update</td>\n"
                      r"<td>(.*?)</td>\n</tr>", rendered, re.S)
    assert len(rows) == len(HOSTILE)  # one row each: no pipe of the text split a cell
    for (ws_cell, reason_cell), (i, reason) in zip(rows, enumerate(HOSTILE), strict=True):
        assert codes(ws_cell) == [f"acme/{i}|x`y"]
        assert html.unescape(reason_cell).replace(ZWSP, "") == shown(reason)
    assert "<strong>Refused:</strong> refused by **guard** @" in html.unescape(rendered)


def test_plain_names_render_as_before() -> None:
    plan = Plan(actions=(Action(kind=ActionKind.CREATE, workspace_id="acme/new", tier=Tier.CANARY,
                                reason="not running"),))
    assert "| `+` | canary | `acme/new` | create | not running |" in render_markdown(plan, SHA)


MARKUP = st.sampled_from(list("`|\\*_[]()!<>&#@~$:/. \n-") + ["http://", "www.", "&amp;", "```"])
TEXT = st.lists(st.characters(codec="utf-8") | MARKUP, max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_any_text_is_one_code_span(text: str) -> None:
    span = md_code(text)
    rendered = MD.renderInline(span)
    assert codes(rendered) == ([shown(text)] if span else []), rendered
    assert not span or (rendered.startswith("<code>") and rendered.endswith("</code>"))


@settings(max_examples=300, deadline=None)
@given(cell=TEXT, code=TEXT)
def test_any_text_stays_in_its_table_cell(cell: str, code: str) -> None:
    table = f"| a | b | c |\n|---|---|---|\n| {md_code(code, table=True)} | {md_text(cell)} | end |\n"
    rendered = MD.render(table)
    cells = re.findall(r"<td>(.*?)</td>", rendered, re.S)
    assert len(cells) == 3 and cells[2] == "end", rendered
    assert codes(cells[0]) == ([shown(code)] if md_code(code) else [])
    assert html.unescape(cells[1]).replace(ZWSP, "") == shown(cell)
    assert not active(rendered)


@pytest.mark.parametrize(("text", "line"), [
    ("ok\x00then\x1b[2Jgone\x7f", "ok then [2Jgone"),
    ("first\u202eevil\nsecond", "first evil"),
    ("lone \ud800 surrogate", "lone surrogate"),
    ("é" * 200, "é" * 139 + "…"),
])
def test_status_line_has_no_control_characters(text: str, line: str) -> None:
    assert one_line(text) == line
    one_line(text).encode("utf-8")  # a forge receives it as UTF-8: no lone surrogate survives
