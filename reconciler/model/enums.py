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
    NOOP = "noop"  # already as desired
    HOLD = "hold"  # a change held back: what it needs failed a health gate before (see plan/holds.py)


CHANGE_KINDS: frozenset[ActionKind] = frozenset({ActionKind.CREATE, ActionKind.UPDATE, ActionKind.RECREATE})


class Outcome(StrEnum):
    """How one action, one tier or one run ended."""

    SUCCESS = "success"
    FAILED = "failed"  # the change is wrong (health gate, bad config): status `failure`
    ERROR = "error"  # the reconciler could not do its job (backend down): status `error`
    SKIPPED = "skipped"  # not attempted (blocked by an earlier tier, interrupted)


class HealthState(StrEnum):
    """What a backend says of one workspace's health."""

    HEALTHY = "healthy"
    STARTING = "starting"
    UNKNOWN = "unknown"  # can't tell (engine hiccup): never treated as dead
    UNHEALTHY = "unhealthy"
    MISSING = "missing"


class StatusState(StrEnum):
    """Commit status states every supported forge accepts (`skipped` is Gitea >=1.25 only)."""

    PENDING = "pending"
    SUCCESS = "success"
    ERROR = "error"
    FAILURE = "failure"
    WARNING = "warning"


class RunStatus(StrEnum):
    """How one journalled run (or a pass of the CLI) ended; `RUNNING` until it does."""

    RUNNING = "running"
    SUCCESS = "success"  # converged (or planned, for a review)
    NOOP = "noop"  # resync found nothing to change: nothing recorded
    PLANNED = "planned"  # a pull request review: planned, nothing applied
    HELD = "held"  # converged, except changes held back after a failed health gate (exit 1: not all applied)
    FAILED = "failed"  # the change is wrong (config, guard, health gate): never retried as is
    ERROR = "error"  # the reconciler could not do its job: retried with backoff
    INTERRUPTED = "interrupted"  # stopped (SIGTERM, Ctrl-C, a dead process) before it was verified
    SUPERSEDED = "superseded"  # a newer head replaced it before or while it ran
    SKIPPED = "skipped"  # not run: already converged, or its last run failed

    @property
    def exit_code(self) -> int:
        """CLI exit code: 0 ok, 1 the change is wrong, 2 the reconciler could not work, 130 interrupted."""
        return EXIT_CODES.get(self, 2)


EXIT_CODES: dict[RunStatus, int] = {
    RunStatus.SUCCESS: 0, RunStatus.NOOP: 0, RunStatus.PLANNED: 0, RunStatus.SKIPPED: 0,
    RunStatus.HELD: 1, RunStatus.FAILED: 1, RunStatus.ERROR: 2, RunStatus.INTERRUPTED: 130, RunStatus.SUPERSEDED: 130,
}


class Trigger(StrEnum):
    """Why a run was asked for."""

    PUSH = "push"  # a verified webhook
    POLL = "poll"  # the poll saw the branch move
    STARTUP = "startup"  # the first poll after start: converge whatever changed while down
    RESYNC = "resync"  # the periodic re-plan against what runs
    RETRY = "retry"  # an `error` run, tried again with backoff
    HEAL = "heal"  # a resync of a failed head: each tier kept at its last verified revision, no status posted
    PULL_REQUEST = "pull_request"  # a review of a pull request head
    CLI = "cli"  # `reconciler apply`


class RunKind(StrEnum):
    APPLY = "apply"
    REVIEW = "review"
