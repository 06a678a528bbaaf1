"""Pure renderings of outcomes for people: commit statuses (and later PR comments, the run page)."""

from reconciler.report.statuses import (
    CONTEXTS,
    StatusLine,
    config_error_statuses,
    error_statuses,
    run_statuses,
    tier_pending,
    tier_status,
)

__all__ = [
    "CONTEXTS",
    "StatusLine",
    "config_error_statuses",
    "error_statuses",
    "run_statuses",
    "tier_pending",
    "tier_status",
]
