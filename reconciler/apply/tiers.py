"""One tier of an apply: its changes, its health gate, then commit or rollback, then its deletes.

Steps for a tier:
1. apply creates/updates/recreates with bounded concurrency (ThreadPoolExecutor); each action is
   retried on TransientBackendError; the first failure stops new actions of the tier starting;
2. on an action failure: roll back every workspace the tier touched (failed ones too: a backend
   keeps what it replaced until commit/rollback) -> tier FAILED (config error) or ERROR (backend);
3. health gate over the touched workspaces (`gate.py`);
4. gate passed -> commit them (a commit that fails is a tier ERROR: what it kept stays for the
   next recovery to drop), then run the tier's deletes (deletes come last and only once the
   tier proved healthy, so a failed canary deletes nothing); gate FAILED -> roll them back;
   gate ERROR (health unknown) -> neither: nothing is decided on a guess.
Interrupt (`stop`): no new action starts, in-flight ones finish, the gate wait ends; finished
actions are neither committed nor rolled back. Commit and rollback ignore `stop`: cleanup is
never cancelled half-way.
"""

from __future__ import annotations

import functools
import logging
from concurrent.futures import Future, ThreadPoolExecutor

from reconciler.apply.context import RunContext
from reconciler.apply.gate import wait_healthy
from reconciler.apply.retry import Attempts, call_with_retry
from reconciler.errors import BackendError, ConfigError, ReconcilerError
from reconciler.model.enums import ActionKind, Outcome, Tier
from reconciler.model.events import ActionDone, GateDone, GateStarted, TierStarted
from reconciler.model.plan import Action, Plan
from reconciler.model.results import ActionResult, GateResult, TierResult

log = logging.getLogger(__name__)
DONE = {ActionKind.CREATE: "created", ActionKind.UPDATE: "updated", ActionKind.RECREATE: "recreated",
        ActionKind.DELETE: "deleted"}


def run_tier(ctx: RunContext, plan: Plan, tier: Tier) -> TierResult:
    started = ctx.clock()
    actions = [a for a in plan.changes() if a.tier is tier]
    unchanged = len(plan.for_tier(tier)) - len(actions)
    ctx.emit(TierStarted(tier, len(actions), unchanged))
    changes = [a for a in actions if a.kind is not ActionKind.DELETE]
    deletes = [a for a in actions if a.kind is ActionKind.DELETE]

    def finish(outcome: Outcome, results: list[ActionResult], gate: GateResult | None = None,
               rolled_back: tuple[str, ...] = (), message: str = "", deletes_ran: bool = False) -> TierResult:
        why = "not attempted: the tier did not pass" if outcome is not Outcome.SKIPPED else "interrupted"
        skipped = [] if deletes_ran else [_skipped(ctx, a, why) for a in deletes]
        return TierResult(tier=tier, outcome=outcome, actions=tuple(results + skipped), gate=gate,
                          unchanged=unchanged, rolled_back=rolled_back, message=message,
                          duration_s=ctx.clock() - started)

    results = run_actions(ctx, plan, changes)
    touched = [r.workspace_id for r in results if r.outcome is Outcome.SUCCESS]
    failed = [r for r in results if r.outcome in (Outcome.FAILED, Outcome.ERROR)]
    if failed:
        rolled = cleanup(ctx, "rollback", touched + [r.workspace_id for r in failed])
        outcome = Outcome.ERROR if any(r.outcome is Outcome.ERROR for r in failed) else Outcome.FAILED
        first = failed[0]
        return finish(outcome, results, rolled_back=rolled, message=f"{first.workspace_id}: {first.message}")
    if ctx.stop.is_set():
        ctx.interrupted = True
        return finish(Outcome.SKIPPED, results, message="interrupted")

    ctx.emit(GateStarted(tier, len(touched)))
    gate = wait_healthy(ctx.backend, tier, touched, ctx.gate, clock=ctx.clock, sleep=ctx.sleep, stop=ctx.stop,
                        on_event=ctx.emit)
    ctx.emit(GateDone(gate))
    if gate.outcome is Outcome.FAILED:
        rolled = cleanup(ctx, "rollback", touched)
        return finish(Outcome.FAILED, results, gate, rolled, f"health gate failed: {gate.message}")
    if gate.outcome is Outcome.ERROR:
        return finish(Outcome.ERROR, results, gate, message=f"health gate: {gate.message}")
    if gate.outcome is Outcome.SKIPPED:
        ctx.interrupted = True
        return finish(Outcome.SKIPPED, results, gate, message="interrupted")

    uncommitted = sorted(set(touched) - set(cleanup(ctx, "commit", touched)))
    if uncommitted:  # what it kept stays until recovery finishes the commit: the tier did not end cleanly
        return finish(Outcome.ERROR, results, gate,
                      message=f"{uncommitted[0]}: commit failed (finished by the next recovery)")
    deleted = run_actions(ctx, plan, deletes)
    failed = [r for r in deleted if r.outcome in (Outcome.FAILED, Outcome.ERROR)]
    if failed:
        outcome = Outcome.ERROR if any(r.outcome is Outcome.ERROR for r in failed) else Outcome.FAILED
        first = failed[0]
        return finish(outcome, results + deleted, gate, message=f"{first.workspace_id}: {first.message}",
                      deletes_ran=True)
    if any(r.outcome is Outcome.SKIPPED for r in deleted):
        ctx.interrupted = True
        return finish(Outcome.SKIPPED, results + deleted, gate, message="interrupted", deletes_ran=True)
    return finish(Outcome.SUCCESS, results + deleted, gate, deletes_ran=True)


def run_actions(ctx: RunContext, plan: Plan, actions: list[Action]) -> list[ActionResult]:
    """Apply `actions` with bounded concurrency; results in the order of `actions`."""
    if not actions:
        return []
    halt = _Halt()
    with ThreadPoolExecutor(max_workers=max(1, min(ctx.concurrency, len(actions)))) as pool:
        futures: list[Future[ActionResult]] = [pool.submit(_apply_one, ctx, plan, a, halt) for a in actions]
        results: list[ActionResult] = []
        for future in futures:
            while True:
                try:
                    results.append(future.result())
                    break
                except KeyboardInterrupt:  # Ctrl-C: let in-flight actions finish, start no new one
                    ctx.stop.set()
    return results


class _Halt:
    """Set by the first failed action of a batch: actions not yet started are not attempted."""

    def __init__(self) -> None:
        self.reason: str | None = None


def _apply_one(ctx: RunContext, plan: Plan, action: Action, halt: _Halt) -> ActionResult:
    if ctx.stop.is_set():
        ctx.interrupted = True
        return _skipped(ctx, action, "interrupted before it started")
    if halt.reason:
        return _skipped(ctx, action, f"not attempted: {halt.reason}")
    started = ctx.clock()
    attempts = Attempts()
    outcome, message = Outcome.SUCCESS, DONE.get(action.kind, action.kind.value)
    try:
        needs_env = action.desired is not None and action.kind is not ActionKind.DELETE
        secret_env = ctx.secrets(action.desired) if needs_env and action.desired else {}
        call_with_retry(lambda: ctx.backend.apply(action, secret_env, plan.revision), ctx.retry, ctx.sleep,
                        attempts, what=f"{action.kind.value} {action.workspace_id}")
    except ConfigError as exc:
        outcome, message = Outcome.FAILED, str(exc)
    except (BackendError, ReconcilerError) as exc:
        outcome, message = Outcome.ERROR, str(exc)
    except Exception as exc:  # a bug must still end as a reported result, never a lost thread
        log.exception("unexpected error applying an action", extra={"workspace": action.workspace_id})
        outcome, message = Outcome.ERROR, f"unexpected {type(exc).__name__}"
    if outcome is not Outcome.SUCCESS:
        halt.reason = f"{action.workspace_id} failed"
    elif attempts.count > 1:
        message = f"{message} after {attempts.count} attempts"
    result = ActionResult(workspace_id=action.workspace_id, kind=action.kind, tier=action.tier,
                          outcome=outcome, message=message, attempts=attempts.count,
                          started_at=started - ctx.started, duration_s=ctx.clock() - started)
    log.info("action done", extra={"revision": plan.revision, "workspace": action.workspace_id,
                                   "action": action.kind.value, "outcome": outcome.value,
                                   "duration_s": result.duration_s})
    ctx.emit(ActionDone(result))
    return result


def _skipped(ctx: RunContext, action: Action, why: str) -> ActionResult:
    return ActionResult(workspace_id=action.workspace_id, kind=action.kind, tier=action.tier,
                        outcome=Outcome.SKIPPED, message=why, started_at=ctx.clock() - ctx.started)


def cleanup(ctx: RunContext, step: str, workspace_ids: list[str]) -> tuple[str, ...]:
    """Commit or roll back each workspace (retried, never interrupted); ids that succeeded."""
    done: list[str] = []
    call = ctx.backend.commit if step == "commit" else ctx.backend.rollback
    for ws in sorted(set(workspace_ids)):
        try:
            call_with_retry(functools.partial(call, ws), ctx.retry, ctx.sleep, what=f"{step} {ws}")
            done.append(ws)
        except Exception as exc:
            log.error(f"{step} failed", extra={"workspace": ws, "error": str(exc)})
    return tuple(done)
