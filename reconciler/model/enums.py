"""Closed vocabularies. StrEnums so they go straight into JSON, statuses and metric labels."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    CANARY = "canary"
    PRODUCTION = "production"


TIER_ORDER: tuple[Tier, ...] = (Tier.CANARY, Tier.PRODUCTION)


class Mode(StrEnum):
    RECONCILE = "reconcile"  # also deletes managed workspaces the repo no longer declares
    MERGE = "merge"  # only creates and updates


class ActionKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"  # files/plugins in place
    RECREATE = "recreate"  # container spec changed, volume kept
    DELETE = "delete"
    NOOP = "noop"


class Outcome(StrEnum):
    """How one action, one tier or one run ended."""

    SUCCESS = "success"
    FAILED = "failed"  # the change is wrong (health gate, bad config): status `failure`
    ERROR = "error"  # the reconciler could not do its job (backend down): status `error`
    SKIPPED = "skipped"  # not attempted (blocked by an earlier tier, interrupted)
    ROLLED_BACK = "rolled_back"


class HealthState(StrEnum):
    """Ordered from best to worst; `worst()` folds many into one."""

    HEALTHY = "healthy"
    STARTING = "starting"
    UNKNOWN = "unknown"  # can't tell (engine hiccup): never treated as dead
    UNHEALTHY = "unhealthy"
    MISSING = "missing"

    @staticmethod
    def worst(states: list[HealthState]) -> HealthState:
        order = list(HealthState)
        return max(states, key=order.index) if states else HealthState.HEALTHY
