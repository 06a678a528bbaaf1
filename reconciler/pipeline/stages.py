"""The stages of a pass, each callable on its own, each a value in and a value out.

    prepare(checkout, parts)          -> Prepared    render, observe, resolve pins (I/O at the edges)
                                                     (`per_org`: an org that does not render fails alone)
    plan_prepared(prepared, parts)    -> Plan        diff, holds, guards (pure, holds read once)
    apply_planned(planned, parts,...) -> RunResult   canary, gate, production; holds stored once

`pins` and pull request reviews stop after `plan_prepared`; a resync that found drift applies the
plan it already has. Errors are raised as the `ReconcilerError` subclass that says what they are:
`ConfigError` (the change is wrong), `SourceError` / `BackendError` (the reconciler could not work).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from reconciler.apply import apply_plan
from reconciler.backends.base import Backend
from reconciler.errors import SourceError
from reconciler.model.config import ReconcilerFile
from reconciler.model.desired import DesiredState, DesiredWorkspace
from reconciler.model.events import EventSink
from reconciler.model.observed import ObservedWorkspace, current_of
from reconciler.model.plan import Plan
from reconciler.model.results import RunResult
from reconciler.pipeline.compose import Parts
from reconciler.pipeline.settings import health_timeout, plan_policy
from reconciler.plan import blame, plan
from reconciler.render.pins import apply_resolution, resolve_upstream
from reconciler.render.repo import load_settings, render_repo
from reconciler.source.checkout import Checkout


@dataclass(frozen=True)
class Prepared:
    """One revision's desired state (pins resolved) beside what runs, and the backend that told."""

    checkout: Checkout
    repo: ReconcilerFile  # the tree's reconciler.yaml
    desired: DesiredState
    actual: tuple[ObservedWorkspace, ...]
    backend: Backend

    @property
    def revision(self) -> str | None:
        return self.checkout.revision


@dataclass(frozen=True)
class Planned:
    prepared: Prepared
    plan: Plan


def prepare(checkout: Checkout, parts: Parts, *, per_org: bool = False) -> Prepared:
    """1. render the tree, 2. observe what runs, 3. resolve pins (`track: none` stays on what runs).

    `per_org`: an org whose template does not render is listed in `desired.failed_orgs` and the
    others go on (a pass); without it any error raises (`pins`). Render and pinning go through
    `parts.cache` (see `cache.py`): a pass over a revision already seen, with the same secrets and
    nothing moved upstream, costs one list call and the lookups. A render with a failed org is not
    kept (a secret made readable again does not change the secrets fingerprint).
    """
    repo = load_settings(checkout.root)
    tree_key = (checkout.revision, parts.secrets_fingerprint()) if checkout.revision else None
    desired = parts.cache.get(tree_key) if tree_key else None
    if desired is None:
        fetcher = parts.fetcher(repo)
        desired = render_repo(checkout.root, fetcher=fetcher, secrets=parts.secrets, revision=checkout.revision,
                              policy=parts.settings.policy, per_org=per_org)
        if tree_key and not fetcher.used and not desired.failed_orgs:
            parts.cache.put(tree_key, desired)
        else:
            tree_key = None
    backend = parts.backend(repo)
    actual = tuple(backend.list_owned())
    installed = {ws_id: o.plugins for ws_id, o in current_of(actual).items() if o.plugins}
    try:
        found = resolve_upstream(desired, parts.resolver(), installed)
    except SourceError as exc:
        raise SourceError(f"could not resolve pins: {exc}") from None
    rendered = desired
    pinned_key = (tree_key, found.key(), _frozen(installed)) if tree_key else None
    desired = parts.cache.through(pinned_key, lambda: apply_resolution(rendered, found, installed))
    return Prepared(checkout, repo, desired, actual, backend)


def _frozen(installed: dict[str, dict[str, str]]) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    return tuple(sorted((ws, tuple(sorted(plugins.items()))) for ws, plugins in installed.items()))


def plan_prepared(prepared: Prepared, parts: Parts) -> Planned:
    """4. the guarded plan, with what failed a health gate before held back."""
    policy = plan_policy(parts.settings, prepared.repo)
    the_plan = plan(prepared.desired, prepared.actual, policy, parts.holds.current(parts.wall()))
    return Planned(prepared, the_plan)


def apply_planned(planned: Planned, parts: Parts, *, stop: threading.Event | None = None,
                  on_event: EventSink | None = None, hold_failures: bool = True) -> RunResult:
    """5. canary, health gate, production; what failed a gate is held from now on (unless
    `hold_failures` is False: a heal brings back a spec verified before, and is simply tried again)."""
    prepared, the_plan = planned.prepared, planned.plan
    run = apply_plan(
        the_plan,
        prepared.backend,
        secrets=lambda ws: _secret_env(parts, ws),
        health_timeout_s=health_timeout(parts.settings, prepared.repo),
        concurrency=parts.settings.concurrency,
        stop=stop,
        on_event=on_event,
        wall=parts.wall,
    )
    if not hold_failures:
        return run
    now = parts.wall()
    new_holds = blame(the_plan, run, now)
    parts.holds.add(new_holds, now)
    return run.model_copy(update={"new_holds": new_holds})


def _secret_env(parts: Parts, ws: DesiredWorkspace) -> dict[str, str]:
    if not ws.secrets:
        return {}
    if parts.secrets is None:
        raise SourceError(f"{ws.id} needs secrets but no secrets directory is configured")
    return parts.secrets.env_for(ws.org, ws.key, ws.secrets)
