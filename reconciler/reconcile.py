"""One reconcile pass as a numbered story; it always reports on the commit it belongs to.

    1. render the tree at the revision        ConfigError   -> both tiers `failure` (file:line)
    2. observe what runs (backend labels)     BackendError  -> both tiers `error`
    3. resolve pins (plugin SHAs, digests)    SourceError   -> both tiers `error` (`track: none`
                                                               stays on the SHA observed in 2)
    4. plan + guards (pure), quarantine hold  refused       -> both tiers `failure`
    5. apply: canary, gate, production        statuses posted as each tier starts and ends; a
                                                               failed health gate is quarantined
    6. report: the final statuses, in `finally`

The CLI (`apply`, `plan`) and the daemon share this; it owns no domain logic of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.apply.quarantine import QuarantineStore, blame, held_actions, hold
from reconciler.apply.runner import apply_plan
from reconciler.backends.base import Backend
from reconciler.errors import BackendError, ConfigError, ConfigErrors, ForgeError, ReconcilerError, SourceError
from reconciler.forge.base import Forge, StatusState, StatusUpdate
from reconciler.model.config import ReconcilerFile
from reconciler.model.desired import DesiredState, DesiredWorkspace
from reconciler.model.enums import Tier
from reconciler.model.plan import Plan
from reconciler.model.results import RunResult
from reconciler.plan import PlanPolicy, guard, plan
from reconciler.render.orgs import ExternalFetcher
from reconciler.render.pins import PinResolver, resolve_pins
from reconciler.render.repo import load_settings, render_repo
from reconciler.report.held import mark_held
from reconciler.report.statuses import (
    StatusLine,
    config_error_statuses,
    error_statuses,
    run_statuses,
    tier_pending,
)
from reconciler.secrets import SecretStore
from reconciler.source.checkout import Checkout

log = logging.getLogger(__name__)

EXIT_OK, EXIT_WRONG, EXIT_ERROR = 0, 1, 2


@dataclass
class PassInputs:
    make_backend: Callable[[ReconcilerFile], Backend]
    resolver: PinResolver
    secrets: SecretStore
    policy: Callable[[ReconcilerFile], PlanPolicy]
    fetcher: ExternalFetcher | None = None
    forge: Forge | None = None
    target_url: str = ""
    health_timeout_s: float | None = None  # None: reconciler.yaml's health.timeout_seconds
    concurrency: int = 4
    stop: threading.Event | None = None
    on_event: Callable[[str, dict[str, Any]], None] | None = None
    apply: bool = True  # False: plan only (no statuses on tiers, nothing touched)
    quarantine: QuarantineStore | None = None  # what failed a health gate (None: nothing is held)
    wall: Callable[[], float] = time.time


@dataclass
class PassResult:
    revision: str | None
    exit_code: int
    message: str
    desired: DesiredState | None = None
    plan: Plan | None = None
    run: RunResult | None = None
    statuses: list[StatusLine] = field(default_factory=list)
    unposted: list[StatusLine] = field(default_factory=list)  # the forge was down: post these later


def run_pass(checkout: Checkout, inputs: PassInputs) -> PassResult:
    revision = checkout.revision
    result = PassResult(revision, EXIT_ERROR, "not started")
    final: list[StatusLine] = []
    try:
        # 1. render
        try:
            settings = load_settings(checkout.root)
            desired = render_repo(checkout.root, fetcher=inputs.fetcher, secrets=inputs.secrets, revision=revision)
        except ConfigError as exc:
            first = exc.errors[0] if isinstance(exc, ConfigErrors) and exc.errors else exc
            final = config_error_statuses(str(first))
            result.exit_code, result.message = EXIT_WRONG, str(exc)
            return result
        # 2. observe
        backend = inputs.make_backend(settings)
        try:
            actual = backend.list_owned()
        except BackendError as exc:
            final = error_statuses(str(exc))
            result.message = str(exc)
            return result
        # 3. pins
        try:
            installed = {o.id: o.plugins for o in sorted(actual, key=lambda o: o.running)}
            desired = resolve_pins(desired, inputs.resolver, installed)
        except SourceError as exc:
            final = error_statuses(f"could not resolve pins: {exc}")
            result.message = f"could not resolve pins: {exc}"
            return result
        result.desired = desired
        # 4. plan and guard; hold what failed a health gate before
        policy = inputs.policy(settings)
        the_plan = guard(desired, actual, plan(desired, actual, policy), policy)
        if inputs.quarantine is not None:
            the_plan = hold(the_plan, inputs.quarantine.entries(inputs.wall()))
        result.plan = the_plan
        if inputs.on_event is not None:  # the daemon journals the plan before anything is applied
            inputs.on_event("planned", {"plan": the_plan})
        if not inputs.apply:
            result.exit_code = EXIT_WRONG if the_plan.refused else EXIT_OK
            result.message = the_plan.refused or "planned"
            return result
        # 5. apply
        run = apply_plan(
            the_plan,
            backend,
            secrets=lambda ws: _secret_env(inputs.secrets, ws),
            health_timeout_s=inputs.health_timeout_s or settings.health.timeout_seconds,
            concurrency=inputs.concurrency,
            stop=inputs.stop,
            on_event=_listener(inputs, revision, result),
        )
        result.run = run
        if inputs.quarantine is not None:
            inputs.quarantine.add(blame(the_plan, run, inputs.wall()), inputs.wall())
        final = mark_held(run_statuses(run), the_plan)
        result.exit_code = run.exit_code
        result.message = run.refused or run.error or run.outcome.value
        held = held_actions(the_plan)
        if held and result.exit_code == EXIT_OK:  # nothing failed now, but the desired state is not applied
            result.exit_code, result.message = EXIT_WRONG, f"{len(held)} held: {held[0].reason}"
        return result
    except ReconcilerError as exc:
        final = error_statuses(str(exc))
        result.exit_code, result.message = EXIT_ERROR, str(exc)
        return result
    finally:
        # 6. report
        if inputs.apply and final:
            _post(inputs, revision, final, result)


def _secret_env(store: SecretStore, ws: DesiredWorkspace) -> dict[str, str]:
    return store.env_for(ws.org, ws.key, ws.secrets)


def _listener(inputs: PassInputs, revision: str | None, result: PassResult) -> Callable[[str, dict[str, Any]], None]:
    def listen(event: str, payload: dict[str, Any]) -> None:
        if event == "tier_started" and payload["changes"]:  # nothing to do: no flicker through pending
            _post(inputs, revision, [tier_pending(Tier(payload["tier"]), payload["changes"])], result)
        if inputs.on_event is not None:
            inputs.on_event(event, payload)

    return listen


def _post(inputs: PassInputs, revision: str | None, lines: list[StatusLine], result: PassResult) -> None:
    """Post statuses; a forge that is down never fails the pass (the lines are kept to retry)."""
    result.statuses.extend(lines)
    if inputs.forge is None or revision is None:
        return
    for line in lines:
        update = StatusUpdate(
            context=line.context,
            state=StatusState(line.state),
            description=line.description,
            target_url=inputs.target_url,
        )
        try:
            inputs.forge.post_status(revision, update)
        except ForgeError as exc:
            log.warning(
                "could not post status", extra={"revision": revision, "context": line.context, "error": str(exc)}
            )
            result.unposted.append(line)
