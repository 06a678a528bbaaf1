"""What apply tells its caller while it runs: typed events, one class per moment.

The CLI prints progress from them, the daemon journals actions and posts `pending` when a tier
starts; a listener never steers the run (a failing one is logged and ignored).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reconciler.model.enums import Tier
from reconciler.model.results import ActionResult, GateResult, TierResult


@dataclass(frozen=True)
class TierStarted:
    """A tier begins; `changes` of its actions will be applied (the daemon posts `pending` then)."""

    tier: Tier
    changes: int
    unchanged: int


@dataclass(frozen=True)
class ActionDone:
    """One create/update/recreate/delete ended, well or not (journalled as it ends)."""

    result: ActionResult


@dataclass(frozen=True)
class GateStarted:
    """The tier's health gate starts waiting for `total` workspaces."""

    tier: Tier
    total: int


@dataclass(frozen=True)
class GateProgress:
    """One poll round of a tier's health gate: `healthy` of its `total` workspaces are healthy now."""

    tier: Tier
    healthy: int
    total: int
    elapsed_s: float


@dataclass(frozen=True)
class GateDone:
    result: GateResult  # how the wait ended


@dataclass(frozen=True)
class TierDone:
    """A tier is over: applied, gated and committed, rolled back, or blocked by the tier before."""

    result: TierResult


ApplyEvent = TierStarted | ActionDone | GateStarted | GateProgress | GateDone | TierDone
EventSink = Callable[[ApplyEvent], None]
