"""The health gate of one tier: poll the backend until every gated workspace is HEALTHY.

Which workspaces: the ones this run created, updated or recreated in the tier (the gate judges
this change; an untouched workspace that was already unwell neither blocks a rollout it has no
part in nor can be fixed by rolling it back). A tier that touched nothing passes at once.

How it ends, checked after every poll round:
- SUCCESS: all HEALTHY in the same round;
- FAILED: a workspace reported UNHEALTHY or MISSING on `confirm_polls` rounds in a row (fails fast,
  but one bad sample is not enough), or the timeout passed with some STARTING/UNHEALTHY;
- ERROR: the timeout passed and every workspace not healthy was UNKNOWN: the backend could not
  tell, which is never treated as dead (no rollback on a guess);
- SKIPPED: `stop` was set (interrupt): the wait ends, nothing is decided.
Each poll round is reported to `on_event` as a `GateProgress` (the CLI's live healthy count).
Clock and sleep are injected: tests advance a fake clock and never wait.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from reconciler.backends.base import Backend
from reconciler.model.enums import HealthState, Outcome, Tier
from reconciler.model.events import EventSink, GateProgress
from reconciler.model.results import GateResult

log = logging.getLogger(__name__)
BAD = frozenset({HealthState.UNHEALTHY, HealthState.MISSING})


@dataclass(frozen=True)
class GateSettings:
    timeout_s: float
    poll_s: float = 1.0
    confirm_polls: int = 2


def wait_healthy(
    backend: Backend,
    tier: Tier,
    workspace_ids: list[str],
    settings: GateSettings,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    stop: threading.Event,
    on_event: EventSink | None = None,
) -> GateResult:
    ids = sorted(set(workspace_ids))
    started = clock()
    if not ids:
        return GateResult(tier=tier, healthy=0, total=0, outcome=Outcome.SUCCESS, message="nothing to check")
    streak = dict.fromkeys(ids, 0)
    while True:
        states = {ws: _health(backend, ws) for ws in ids}
        healthy = sum(1 for s in states.values() if s is HealthState.HEALTHY)
        for ws, state in states.items():
            streak[ws] = streak[ws] + 1 if state in BAD else 0
        elapsed = clock() - started
        if on_event is not None:
            on_event(GateProgress(tier, healthy, len(ids), elapsed))

        def result(outcome: Outcome, message: str, states: dict[str, HealthState] = states,
                   healthy: int = healthy, elapsed: float = elapsed) -> GateResult:
            bad = tuple(ws for ws, s in states.items() if s is not HealthState.HEALTHY)
            return GateResult(tier=tier, healthy=healthy, total=len(ids), outcome=outcome,
                              duration_s=elapsed, unhealthy=bad, message=message)

        if healthy == len(ids):
            return result(Outcome.SUCCESS, f"{healthy}/{len(ids)} healthy")
        confirmed = [ws for ws in ids if streak[ws] >= max(1, settings.confirm_polls)]
        if confirmed:
            return result(Outcome.FAILED, _describe({ws: states[ws] for ws in confirmed}))
        if stop.is_set():
            return result(Outcome.SKIPPED, "interrupted before the health gate decided")
        if elapsed >= settings.timeout_s:
            waiting = {ws: s for ws, s in states.items() if s is not HealthState.HEALTHY}
            if all(s is HealthState.UNKNOWN for s in waiting.values()):
                return result(Outcome.ERROR, f"health unknown after {elapsed:.0f}s: {_describe(waiting)}")
            return result(Outcome.FAILED, f"not healthy after {elapsed:.0f}s: {_describe(waiting)}")
        try:
            sleep(max(0.0, min(settings.poll_s, settings.timeout_s - elapsed)))
        except KeyboardInterrupt:
            stop.set()


def _health(backend: Backend, workspace_id: str) -> HealthState:
    try:
        return backend.health(workspace_id)
    except Exception as exc:  # a failed probe is "can't tell", never "dead"
        log.warning("health probe failed", extra={"workspace": workspace_id, "error": type(exc).__name__})
        return HealthState.UNKNOWN


def _describe(states: Mapping[str, HealthState]) -> str:
    return ", ".join(f"{ws} {state.value}" for ws, state in sorted(states.items()))
