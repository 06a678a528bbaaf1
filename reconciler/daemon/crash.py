"""What a run has done so far, so that whatever it raises still ends it (`BranchRuns._crashed`).

A run that raises is never left `running` with `pending` statuses: it ends as `error` with a
one-line reason (`crash_reason`: the exception's type and message, known secrets masked, cut to
fit a commit status), journalled and posted like any other end, and the worker retries it as it
retries any `error`. What the handler does depends on how far the run got (`RunTrace`):
- nothing journalled yet: the run is journalled now, then finished;
- journalled, not finished: finished as `error`, its unverified changes rolled back;
- finished (the journal has its verdict): the verdict stands (a failed head stays `failed`, and
  is not retried), the final statuses not posted yet are kept for the status flush.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from reconciler.errors import ReconcilerError
from reconciler.logs import scrub
from reconciler.model.enums import RunStatus
from reconciler.model.text import one_line
from reconciler.report.statuses import StatusLine

REASON_LIMIT = 110  # leaves room for "production: not applied: " in a 140-character status


def crash_reason(exc: BaseException) -> str:
    """`unexpected KeyError: 'x'`: one line, no known secret, short enough for a commit status."""
    if isinstance(exc, ReconcilerError):
        text = str(exc)
    else:
        detail = str(exc)
        text = f"unexpected {type(exc).__name__}" + (f": {detail}" if detail else "")
    return one_line(scrub(text), REASON_LIMIT) or f"unexpected {type(exc).__name__}"


@dataclass
class RunTrace:
    heal: bool = False  # a heal run: journalled, never posted
    run_id: int | None = None
    url: str = ""
    started: float = field(default_factory=time.monotonic)
    recorded: RunStatus | None = None  # the journal has the run's verdict
    final: list[StatusLine] = field(default_factory=list)  # the final lines, once recorded
    posted: bool = False  # the final lines went to the poster

    def begun(self, run_id: int, url: str) -> None:
        self.run_id, self.url, self.started = run_id, url, time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started
