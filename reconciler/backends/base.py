"""The small interface every backend implements (Docker, and in-memory for orchestration tests).

Apply never knows how a workspace runs; it hands an Action to the backend, then asks for health.
Replacements keep what they replaced until `commit` (gate passed) or `rollback` (gate failed), so
a canary that fails its gate goes back to its last good spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from reconciler.model.enums import HealthState
from reconciler.model.observed import ObservedWorkspace
from reconciler.model.plan import Action


@runtime_checkable
class Backend(Protocol):
    instance_id: str

    def list_owned(self) -> list[ObservedWorkspace]:
        """Every workspace labelled with this reconciler instance; one cheap list call.

        Raises TransientBackendError when the backend cannot be reached.
        """
        ...

    def apply(self, action: Action, secret_env: Mapping[str, str], revision: str | None) -> None:
        """Carry out one create/update/recreate/delete. `secret_env` holds secret values for the
        workload's environment only (never labels, logs, errors). Idempotent: re-applying an
        action already done is harmless. Raises BackendError / TransientBackendError."""
        ...

    def health(self, workspace_id: str) -> HealthState:
        """Current health; UNKNOWN when it cannot tell (never guessed as dead)."""
        ...

    def commit(self, workspace_id: str) -> None:
        """The gate passed: drop what the last apply kept for rollback (old container, old files)."""
        ...

    def rollback(self, workspace_id: str) -> None:
        """The gate failed: put back what the last apply replaced (a create is removed)."""
        ...
