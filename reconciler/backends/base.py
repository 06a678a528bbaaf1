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


class Lease(Protocol):
    """The backend's claim that this process is the one writer of its instance (see `lease`)."""

    def acquire(self) -> None:
        """Hold it, or raise AnotherWriter naming the holder."""
        ...

    def release(self) -> None: ...


class NoLease:
    """For a backend nothing else can reach (in memory)."""

    def acquire(self) -> None:
        return None

    def release(self) -> None:
        return None


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

    def lease(self, owner: str, holder: str) -> Lease:
        """The lease on this instance id in the backend itself (`owner`: one id per state dir;
        `holder`: a line naming host, process and state dir, shown to whoever is refused)."""
        ...

    def recover(self) -> list[str]:
        """Before planning, after a crash or an unfinished run: finish or undo every change that was
        started and neither committed nor rolled back, and sweep what a dead process left behind.
        Returns the workspaces it acted on. Raises TransientBackendError when unreachable."""
        ...
