"""The run pages quote the config repository (ids, reasons, error messages) and the forge (commit,
trigger): every quoted text is HTML-escaped, in element content and in attribute values alike."""

from __future__ import annotations

import re

from reconciler.daemon.journal import RunRow
from reconciler.daemon.pages import run_page, runs_page
from reconciler.model.enums import RunKind, RunStatus

EVIL = "<img src=x onerror=alert(1)>\"' onmouseover=\"alert(2)\" <script>alert(3)</script>&amp;"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;&quot;&#x27; onmouseover=&quot;alert(2)&quot;"


def hostile_run() -> RunRow:
    action = {"tier": EVIL, "workspace_id": EVIL, "kind": EVIL, "outcome": EVIL, "attempts": EVIL,
              "message": EVIL, "duration_s": 1.0}
    return RunRow(
        id=7, kind=RunKind.REVIEW, revision=EVIL, trigger=EVIL, pr=3, status=RunStatus.FAILED, message=EVIL,
        started_at=1.0, finished_at=2.0, superseded_by=EVIL, recovered=False,
        plan={"mode": EVIL, "refused": EVIL, "summary": {EVIL: 1},
              "actions": [{"kind": EVIL, "tier": EVIL, "workspace_id": EVIL, "reason": EVIL}]},
        result={"tiers": [{"tier": EVIL, "outcome": EVIL, "rolled_back": [EVIL], "blocked_by": EVIL,
                           "duration_s": 1.0, "actions": [action],
                           "gate": {"outcome": EVIL, "healthy": 0, "total": 1, "message": EVIL}}]},
        statuses=[{"context": EVIL, "state": EVIL, "description": EVIL}],
    )


def test_every_quoted_text_on_the_run_pages_is_escaped() -> None:
    run = hostile_run()
    for page in (run_page(run, [{"workspace": EVIL, **run.result["tiers"][0]["actions"][0]}]),  # type: ignore[index]
                 runs_page([run], {"branch": EVIL, "loop_alive": True, "last_success": None})):
        assert "<img" not in page and "<script" not in page and 'onmouseover="' not in page
        assert ESCAPED in page and "&amp;amp;" in page
        tags = set(re.findall(r"</?([a-z0-9]+)", page))
        assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "a", "table", "tr",
                        "th", "td", "code", "span", "pre",
                        "svg", "g", "rect", "line", "text", "path"}, tags  # the timeline
