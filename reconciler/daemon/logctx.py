"""Run tags on every log line of the daemon: `run_id`, `revision`, `workspace` (null when none).

A `logging.Filter` fills the fields a call site did not pass in `extra`. Tags come from the
current thread (`tagged`), else from the apply run in progress: there is one at a time, and its
actions log from pool threads that never saw the worker's thread-local.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()
_apply_run: dict[str, object] = {}
TAGS = ("run_id", "revision", "workspace")


@contextmanager
def tagged(run_id: int | None, revision: str | None, *, apply_run: bool = False) -> Iterator[None]:
    previous = getattr(_local, "tags", None)
    _local.tags = {"run_id": run_id, "revision": revision}
    if apply_run:
        _apply_run.update(_local.tags)
    try:
        yield
    finally:
        _local.tags = previous
        if apply_run:
            _apply_run.clear()


class RunTagFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        tags = getattr(_local, "tags", None) or _apply_run
        for name in TAGS:
            if getattr(record, name, None) is None:
                setattr(record, name, tags.get(name))
        return True


def install() -> None:
    """Add the filter to every handler of the root logger (call after `setup_logging`)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RunTagFilter) for f in handler.filters):
            handler.addFilter(RunTagFilter())
