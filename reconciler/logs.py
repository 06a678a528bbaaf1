"""Structured logs: one JSON object per event on stderr, with revision / run / workspace fields.

Call sites use `log.info("event", extra={"revision": sha, "workspace": ws_id})`. Known secret
values registered with `mask_secret` are replaced before anything is written.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_FIELDS = ("revision", "run_id", "workspace", "tier", "action", "outcome", "duration_s", "error", "context")
_MASKED: set[str] = set()


def mask_secret(value: str) -> None:
    """Never let `value` reach a log line (tokens, secret values)."""
    if value and len(value) >= 4:
        _MASKED.add(value)


def scrub(text: str) -> str:
    for value in _MASKED:
        text = text.replace(value, "***")
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for name in _FIELDS:
            if hasattr(record, name):
                event[name] = getattr(record, name)
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return scrub(json.dumps(event, default=str))


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
