"""Apply: carry out a Plan through a Backend, canary tier first, health-gated, with retries.

`runner.apply_plan` is the entry point; `tiers` runs one tier, `gate` waits for health, `retry`
decides by exception type, `context` holds what one run shares (clock, sleep, stop, settings).
"""

from reconciler.apply.runner import apply_plan, blocked_reason

__all__ = ["apply_plan", "blocked_reason"]
