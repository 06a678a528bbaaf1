"""An in-memory Backend for orchestration tests: same contract as Docker, no engine.

It keeps one `ObservedWorkspace` per id, records every call in `calls` (in order, thread-safe),
keeps the replaced spec until `commit`/`rollback` like a real backend, and has switches to make
things go wrong on purpose:

- `unreachable = True`: list/apply/commit/rollback raise TransientBackendError, health is UNKNOWN;
- `transient_failures[id] = n`: the next n applies of that workspace raise TransientBackendError;
- `permanent_failures.add(id)`: applies of that workspace raise BackendError;
- `unhealthy.add(id)` / `health_script[id] = [states...]`: what `health` reports (a script is
  consumed one state per call, its last state repeats);
- `before_apply`: a hook called with each action before it is carried out (e.g. to set a stop
  event mid-run).

Secret values handed to `apply` are kept in `secret_env` (the workload's env) and nowhere else.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping

from reconciler.backends.base import Lease, NoLease
from reconciler.errors import BackendError, TransientBackendError
from reconciler.model.desired import DesiredWorkspace
from reconciler.model.enums import ActionKind, HealthState
from reconciler.model.observed import ObservedWorkspace
from reconciler.model.plan import Action

_ABSENT = None  # a rollback record meaning "did not exist before"


class MemoryBackend:
    def __init__(self, instance_id: str = "memory") -> None:
        self.instance_id = instance_id
        self.workspaces: dict[str, ObservedWorkspace] = {}
        self.secret_env: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, str]] = []  # (call, workspace id), call like "apply:create"
        self.unreachable = False
        self.transient_failures: dict[str, int] = {}
        self.permanent_failures: set[str] = set()
        self.unhealthy: set[str] = set()
        self.health_script: dict[str, list[HealthState]] = {}
        self.before_apply: Callable[[Action], None] | None = None
        self._previous: dict[str, ObservedWorkspace | None] = {}
        self._refs = itertools.count(1)
        self._lock = threading.RLock()

    # -- setup helpers for tests --------------------------------------------------------------

    def seed(
        self, ws: DesiredWorkspace, *, running: bool = True, revision: str | None = "seed"
    ) -> ObservedWorkspace:
        """Pretend `ws` already runs (as if applied and committed earlier)."""
        with self._lock:
            observed = self._observe(ws, self._new_ref(), revision).model_copy(update={"running": running})
            self.workspaces[ws.id] = observed
            return observed

    def applied(self) -> list[tuple[str, str]]:
        """Only the apply calls, in order: [("create", "acme/a"), ...]."""
        return [(call.split(":", 1)[1], ws) for call, ws in self.calls if call.startswith("apply:")]

    # -- Backend protocol ---------------------------------------------------------------------

    def list_owned(self) -> list[ObservedWorkspace]:
        with self._lock:
            self._record("list", "*")
            self._reachable()
            return [w.model_copy(update={"health": self._peek_health(w.id)})
                    for w in self.workspaces.values()]

    def apply(self, action: Action, secret_env: Mapping[str, str], revision: str | None) -> None:
        if self.before_apply is not None:
            self.before_apply(action)
        with self._lock:
            ws_id = action.workspace_id
            self._record(f"apply:{action.kind.value}", ws_id)
            self._reachable()
            if self.transient_failures.get(ws_id, 0) > 0:
                self.transient_failures[ws_id] -= 1
                raise TransientBackendError(f"memory backend: transient failure applying {ws_id}")
            if ws_id in self.permanent_failures:
                raise BackendError(f"memory backend: cannot apply {action.kind.value} to {ws_id}")
            current = self.workspaces.get(ws_id)
            self._previous.setdefault(ws_id, current)
            if action.kind is ActionKind.DELETE:
                self.workspaces.pop(ws_id, None)
                self.secret_env.pop(ws_id, None)
                return
            if action.desired is None:
                raise BackendError(f"memory backend: {action.kind.value} of {ws_id} without a desired spec")
            keep_ref = action.kind is ActionKind.UPDATE and current is not None
            ref = current.backend_ref if keep_ref and current else self._new_ref()
            self.workspaces[ws_id] = self._observe(action.desired, ref, revision)
            self.secret_env[ws_id] = dict(secret_env)

    def health(self, workspace_id: str) -> HealthState:
        with self._lock:
            self._record("health", workspace_id)
            if self.unreachable:
                return HealthState.UNKNOWN
            script = self.health_script.get(workspace_id)
            if script:
                return script.pop(0) if len(script) > 1 else script[0]
            return self._peek_health(workspace_id)

    def commit(self, workspace_id: str) -> None:
        with self._lock:
            self._record("commit", workspace_id)
            self._reachable()
            self._previous.pop(workspace_id, None)

    def lease(self, owner: str, holder: str) -> Lease:
        return NoLease()

    def recover(self) -> list[str]:
        """Undo what a run left unverified (the memory outlives no process: only an interrupted run)."""
        with self._lock:
            pending = sorted(self._previous)
        for ws in pending:
            self.rollback(ws)
        return pending

    def rollback(self, workspace_id: str) -> None:
        with self._lock:
            self._record("rollback", workspace_id)
            self._reachable()
            if workspace_id not in self._previous:
                return
            previous = self._previous.pop(workspace_id)
            if previous is _ABSENT:
                self.workspaces.pop(workspace_id, None)
                self.secret_env.pop(workspace_id, None)
            else:
                self.workspaces[workspace_id] = previous

    # -- internals ----------------------------------------------------------------------------

    def _peek_health(self, workspace_id: str) -> HealthState:
        ws = self.workspaces.get(workspace_id)
        if ws is None:
            return HealthState.MISSING
        if workspace_id in self.unhealthy or not ws.running:
            return HealthState.UNHEALTHY
        return HealthState.HEALTHY

    def _observe(self, ws: DesiredWorkspace, ref: str, revision: str | None) -> ObservedWorkspace:
        return ObservedWorkspace(
            id=ws.id, tier=ws.tier, spec_hash=ws.spec_hash, spec_parts=dict(ws.spec_parts),
            revision=revision, backend_ref=ref, name=f"ws-{ws.org}-{ws.key}", running=True,
            health=HealthState.HEALTHY, image=ws.image_digest or ws.image,
            plugins={p.name: p.resolved_sha for p in ws.plugins if p.resolved_sha},
        )

    def _new_ref(self) -> str:
        return f"mem-{next(self._refs):06d}"

    def _reachable(self) -> None:
        if self.unreachable:
            raise TransientBackendError("memory backend unreachable")

    def _record(self, call: str, workspace_id: str) -> None:
        self.calls.append((call, workspace_id))
