"""One pass as a numbered story; it always reports on the commit it belongs to.

    1-3. prepare: render, observe, resolve pins   ConfigError  -> both tiers `failure` (file:line)
                                                  other errors -> both tiers `error`
                                                  one org's own error -> that org is kept as it
                                                  runs, the others go on (see below)
    4.   plan: diff, holds, guards (pure)         refused      -> both tiers `failure`
    5.   apply: canary, gate, production          `pending` posted as each tier with changes starts
    6.   report: the final statuses, posted in `finally`, whatever happened above

Failures are scoped to the org: a render error, a missing (or unreadable) secret or a missing
`required_env` inside `orgs/<org>/` fails that org alone (`desired.failed_orgs`); its workspaces
are NOOP in the plan and the other orgs converge canary first as usual. The pass is still
`failed` (exit 1, each tier `failure` naming the org and its first `file:line`), so the commit is
red until the org is fixed. What is not one org's (reconciler.yaml, plugins.yaml, images.yaml,
the layout, a policy refusal) or every org failing still fails the whole commit before planning.

`plan_revision` is steps 1-4 and never posts; `apply_and_report` is 5-6; `run_pass` is both. The
outcome is a `PassOutcome`: its `status` is the one closed word every caller reads (the CLI's
exit code, the daemon's journal, the worker's retry rule all come from it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from reconciler.errors import ConfigError, ConfigErrors, ReconcilerError
from reconciler.forge.base import Forge
from reconciler.model.desired import DesiredState
from reconciler.model.enums import Outcome, RunStatus
from reconciler.model.events import ApplyEvent, EventSink, TierStarted
from reconciler.model.plan import Plan
from reconciler.model.results import RunResult
from reconciler.pipeline.compose import Parts
from reconciler.pipeline.stages import Planned, apply_planned, plan_prepared, prepare
from reconciler.report.statuses import (
    DEFAULT_CONTEXTS,
    Contexts,
    StatusLine,
    config_error_statuses,
    error_statuses,
    run_statuses,
    tier_pending,
)
from reconciler.source.checkout import Checkout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassOutcome:
    revision: str | None
    status: RunStatus
    message: str
    errors: tuple[str, ...] = ()  # every config error, one line each (the first is the cause)
    desired: DesiredState | None = None
    plan: Plan | None = None
    run: RunResult | None = None
    statuses: tuple[StatusLine, ...] = ()  # the final lines (and the pending ones posted on the way)
    unposted: tuple[StatusLine, ...] = field(default=())  # the forge did not take these: post them later

    @property
    def exit_code(self) -> int:
        return self.status.exit_code

    def final(self) -> tuple[StatusLine, ...]:
        """The last line of each context, in the order contexts first appeared."""
        last = {line.context: line for line in self.statuses}
        return tuple(last.values())


class StatusPoster(Protocol):
    def post_lines(self, sha: str, lines: Sequence[StatusLine], target_url: str) -> list[StatusLine]:
        """Post `lines` on commit `sha`; returns the ones the forge did not take (never raises)."""
        ...


class ForgePoster:
    """Posts straight to the forge (the CLI); a forge that is down never fails the pass."""

    def __init__(self, forge: Forge) -> None:
        self.forge = forge

    def post_lines(self, sha: str, lines: Sequence[StatusLine], target_url: str) -> list[StatusLine]:
        kept: list[StatusLine] = []
        for line in lines:
            try:
                self.forge.post_status(sha, line.update(target_url))
            except ReconcilerError as exc:
                log.warning("could not post status", extra={"revision": sha, "context": line.context,
                                                            "error": str(exc)})
                kept.append(line)
        return kept


def failed_outcome(revision: str | None, exc: Exception, contexts: Contexts = DEFAULT_CONTEXTS) -> PassOutcome:
    """What an error before apply means: a config error is `failed`, anything else `error`."""
    if isinstance(exc, ConfigError):
        errors = tuple(str(e) for e in exc.errors) if isinstance(exc, ConfigErrors) else (str(exc),)
        first = errors[0] if errors else str(exc)
        return PassOutcome(revision, RunStatus.FAILED, str(exc), errors=errors,
                           statuses=tuple(config_error_statuses(first, contexts)))
    message = str(exc) if isinstance(exc, ReconcilerError) else f"unexpected {type(exc).__name__}: {exc}"
    return PassOutcome(revision, RunStatus.ERROR, message, statuses=tuple(error_statuses(message, contexts)))


def plan_revision(checkout: Checkout, parts: Parts) -> Planned | PassOutcome:
    """Steps 1-4: the plan for the tree at `checkout`, or the outcome that says why there is none."""
    try:
        return plan_prepared(prepare(checkout, parts, per_org=True), parts)
    except ReconcilerError as exc:
        return failed_outcome(checkout.revision, exc, parts.settings.contexts)
    except Exception as exc:  # a bug must end as a reported `error`, never an escaped traceback
        log.exception("planning failed", extra={"revision": checkout.revision})
        return failed_outcome(checkout.revision, exc, parts.settings.contexts)


def planned_outcome(planned: Planned) -> PassOutcome:
    """A plan that is not applied (`plan`, pull request reviews): planned, or failed when refused or
    when an org failed to render."""
    p = planned.plan
    status = RunStatus.FAILED if p.refused or p.failed_orgs else RunStatus.PLANNED
    message = p.refused or (_failed_orgs_message(p, "planned") if p.failed_orgs else "planned")
    return PassOutcome(planned.prepared.revision, status, message, errors=_org_errors(p),
                       desired=planned.prepared.desired, plan=p)


def applied_outcome(planned: Planned, run: RunResult, statuses: Sequence[StatusLine]) -> PassOutcome:
    """Step 6's value: the status word of an applied plan and the final lines."""
    p = planned.plan
    status, message = _status_of(run, p)
    return PassOutcome(planned.prepared.revision, status, message, errors=_org_errors(p),
                       desired=planned.prepared.desired, plan=p, run=run, statuses=tuple(statuses))


def _status_of(run: RunResult, plan: Plan) -> tuple[RunStatus, str]:
    if run.refused:
        return RunStatus.FAILED, run.refused
    if run.interrupted:
        return RunStatus.INTERRUPTED, "interrupted"
    if run.outcome is Outcome.SUCCESS and plan.failed_orgs:  # the others converged; the commit is still wrong
        also = f"; {len(plan.held())} held" if plan.held() else ""
        return RunStatus.FAILED, _failed_orgs_message(plan, "converged") + also
    if run.outcome is Outcome.SUCCESS and plan.held():
        held = plan.held()
        return RunStatus.HELD, f"{len(held)} held: {held[0].reason}"
    words = {Outcome.SUCCESS: RunStatus.SUCCESS, Outcome.FAILED: RunStatus.FAILED}
    also = f"; {plan.failure_text()}" if plan.failed_orgs else ""
    return words.get(run.outcome, RunStatus.ERROR), (run.error or run.outcome.value) + also


def _failed_orgs_message(plan: Plan, done: str) -> str:
    """`org beta failed: <file:line:col: error>; 2 other org(s) converged` (every error in `errors`)."""
    return f"{plan.failure_text()}; {len(plan.orgs)} other org(s) {done}"


def _org_errors(plan: Plan) -> tuple[str, ...]:
    """Every error of every org that failed to render, one line each (the first is the cause)."""
    return tuple(e for f in plan.failed_orgs for e in (f.errors or (f.first(),)))


def apply_and_report(
    planned: Planned,
    parts: Parts,
    *,
    poster: StatusPoster | None = None,
    target_url: str = "",
    stop: threading.Event | None = None,
    on_event: EventSink | None = None,
    post_final: bool = True,
) -> PassOutcome:
    """Steps 5-6 for a plan in hand; the final statuses are posted whatever happens.

    `post_final=False`: the caller posts `outcome.final()` itself, after journalling the run (so a
    status never links to a run page that still says `running`); `pending` lines are posted here.
    """
    revision = planned.prepared.revision
    contexts = parts.settings.contexts
    posted: list[StatusLine] = []
    unposted: list[StatusLine] = []

    def post(lines: Sequence[StatusLine]) -> None:
        posted.extend(lines)
        if poster is not None and revision is not None:
            unposted.extend(poster.post_lines(revision, lines, target_url))

    def listen(event: ApplyEvent) -> None:
        if isinstance(event, TierStarted) and event.changes:  # nothing to do: no flicker through pending
            post([tier_pending(event.tier, event.changes, contexts)])
        if on_event is not None:
            on_event(event)

    outcome: PassOutcome | None = None
    try:
        run = apply_planned(planned, parts, stop=stop, on_event=listen)  # 5.
        outcome = applied_outcome(planned, run, run_statuses(run, planned.plan, contexts))
    except Exception as exc:  # a bug or a lost backend must still end with a final status
        log.exception("apply failed", extra={"revision": revision})
        outcome = failed_outcome(revision, exc, contexts)
    finally:  # 6. (a KeyboardInterrupt or SystemExit still leaves a final word on the commit)
        lines = outcome.statuses if outcome is not None else error_statuses("the reconciler stopped during this run",
                                                                            contexts)
        if post_final or outcome is None:
            post(lines)
        else:
            posted.extend(lines)
    assert outcome is not None
    return replace(outcome, statuses=tuple(posted), unposted=tuple(unposted))


# what a caller keeps back of a plan (e.g. production waiting for approval), and how that changes the
# outcome (its final statuses and message), or None when nothing is kept
KeepBack = Callable[[Planned], tuple[Planned, Callable[[PassOutcome], PassOutcome] | None]]


def run_pass(
    checkout: Checkout,
    parts: Parts,
    *,
    apply: bool = True,
    poster: StatusPoster | None = None,
    target_url: str = "",
    stop: threading.Event | None = None,
    on_event: EventSink | None = None,
    keep_back: KeepBack | None = None,
) -> PassOutcome:
    """Steps 1-6: plan the tree at `checkout`, then (with `apply`) converge it and report. `keep_back`
    may keep changes of the plan back; its edit of the outcome is what the final statuses say."""
    planned = plan_revision(checkout, parts)
    if isinstance(planned, PassOutcome):
        if not apply or poster is None or checkout.revision is None:
            return planned
        unposted = poster.post_lines(checkout.revision, planned.statuses, target_url)
        return replace(planned, unposted=tuple(unposted))
    if not apply:
        return planned_outcome(planned)
    planned, edit = keep_back(planned) if keep_back is not None else (planned, None)
    outcome = apply_and_report(planned, parts, poster=poster, target_url=target_url, stop=stop, on_event=on_event,
                               post_final=edit is None)
    if edit is None:
        return outcome
    outcome = edit(outcome)
    if poster is not None and checkout.revision is not None:
        unposted = poster.post_lines(checkout.revision, outcome.final(), target_url)
        outcome = replace(outcome, unposted=(*outcome.unposted, *unposted))
    return outcome
