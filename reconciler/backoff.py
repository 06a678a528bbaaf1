"""Capped exponential backoff, the one rule every retry loop of the reconciler waits by."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(
    attempt: int,
    base_s: float,
    cap_s: float,
    jitter: float = 0.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after the `attempt`-th failure (1-based): base, 2*base, 4*base, ... capped at `cap_s`.

    With `jitter` j (0..1) the wait is drawn uniformly from [(1 - j) * d, d] instead of exactly d.
    """
    ceiling = float(min(cap_s, base_s * 2.0 ** min(attempt - 1, 64)))
    if not jitter:
        return ceiling
    return ceiling * (1 - jitter) + ceiling * jitter * rand()
