"""Engine objects of one reconciler instance: the container spec, and every call that finds,
checks or removes a container or volume. Destructive calls check this instance's labels first.

Kept apart from `docker_actions.py` and `docker_recovery.py` (which sequence these into
create/recreate/update/delete, commit and rollback) so each reads on its own. "No such
container" and "removal already in progress" count as done for stop and remove; a volume still in
use is transient (retried).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

import docker
import docker.errors

from reconciler.backends import labels as lb
from reconciler.backends.docker_engine import is_not_found, is_removal_in_progress
from reconciler.backends.docker_health import SettleTracker
from reconciler.backends.docker_probe import PROBE_LABEL, HttpProbes
from reconciler.errors import BackendError, TransientBackendError
from reconciler.model.desired import DesiredWorkspace

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
CREATE_TOKEN = "reconciler.create-token"  # on volumes: random per create call (see `ensure_volume`)


def memory_bytes(value: str) -> int:
    unit = value[-1].lower() if value[-1].isalpha() else ""
    return int(value[: len(value) - len(unit)]) * _UNITS[unit]


def nanos(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class InstanceObjects:
    """Containers and volumes of one instance id on one engine."""

    def __init__(
        self,
        instance_id: str,
        api: Callable[[], docker.APIClient],
        *,
        network: str,
        restart_policy: str,
        stop_timeout: int,
        settle: SettleTracker,
    ) -> None:
        self.instance_id = instance_id
        self._api = api
        self.network = network
        self.restart_policy = restart_policy
        self.stop_timeout = stop_timeout
        self.settle = settle
        self.probes = HttpProbes(api, clock=settle.clock, wall=settle.wall)  # `health:` checks (docker_probe.py)

    def inspect(self, name: str) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = self._api().inspect_container(name)
            return info
        except docker.errors.NotFound:
            return None

    def owned_or_fail(self, info: Mapping[str, Any], workspace_id: str, what: str) -> None:
        labels = (info.get("Config") or {}).get("Labels") or {}
        if not lb.is_owned(labels, self.instance_id, workspace_id) or labels.get(lb.MANAGED) != "true":
            name = str(info.get("Name", "")).lstrip("/")
            raise BackendError(
                f"docker: refusing to {what} container {name} for workspace {workspace_id}: "
                f"it does not carry this reconciler's labels (instance {self.instance_id}); "
                "rename or remove it by hand"
            )

    def ensure_volume(self, workspace_id: str, name: str, role: str | None = None, session: str | None = None) -> bool:
        """True when the volume was created now (fresh and empty). One round trip: the engine's
        volume create returns the volume already there, labels and all, so a random token in the
        create's labels tells "created by this call" from "was there before" exactly."""
        api = self._api()
        token = uuid.uuid4().hex
        labels = {**lb.auxiliary_labels(self.instance_id, workspace_id, role, session), CREATE_TOKEN: token}
        try:
            existing = api.create_volume(name, labels=labels)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            existing = api.inspect_volume(name)  # an engine that refuses a create over an existing name
        if (existing.get("Labels") or {}).get(CREATE_TOKEN) == token:
            return True
        if not lb.is_owned(existing.get("Labels"), self.instance_id, workspace_id):
            raise BackendError(
                f"docker: volume {name} for workspace {workspace_id} exists without this reconciler's "
                "labels; remove or rename it by hand"
            )
        return False

    def stop(self, container_id: str) -> None:
        """Stop; 'no such container' and 'removal already in progress' count as stopped."""
        try:
            self._api().stop(container_id, timeout=self.stop_timeout)
        except docker.errors.APIError as exc:
            if not (is_not_found(exc) or is_removal_in_progress(exc)):
                raise
        self.settle.forget(container_id)
        self.probes.forget(container_id)

    def remove_container(self, container_id: str) -> None:
        try:
            self._api().remove_container(container_id, force=True, v=False)
        except docker.errors.APIError as exc:
            if not (is_not_found(exc) or is_removal_in_progress(exc)):
                raise
        self.probes.forget(container_id)

    def remove_volume(self, name: str, workspace_id: str) -> None:
        api = self._api()
        try:
            info = api.inspect_volume(name)
        except docker.errors.NotFound:
            return
        if not lb.is_owned(info.get("Labels"), self.instance_id, workspace_id):
            raise BackendError(f"docker: refusing to remove volume {name}: not labelled for workspace {workspace_id}")
        try:
            api.remove_volume(name)
        except docker.errors.APIError as exc:
            if is_not_found(exc):
                return
            if exc.status_code == 409:
                raise TransientBackendError(f"docker: volume {name} of {workspace_id} is still in use") from None
            raise

    def prev_containers(self, workspace_id: str) -> list[dict[str, Any]]:
        """`.prev-*` containers of a workspace, newest first."""
        return self.copies(workspace_id, lb.is_prev_name)

    def new_containers(self, workspace_id: str) -> list[dict[str, Any]]:
        """`.new-*` containers of a workspace: set up by a create that never finished."""
        return self.copies(workspace_id, lb.is_new_name)

    def copies(self, workspace_id: str, kind: Callable[[str, str, str], bool]) -> list[dict[str, Any]]:
        """Owned containers of a workspace whose name `kind` accepts, newest first."""
        filters = {"label": [*lb.owner_filters(self.instance_id), f"{lb.WORKSPACE}={workspace_id}"]}
        rows = self._api().containers(all=True, filters=filters)
        found = [
            r
            for r in rows
            if any(kind(n.lstrip("/"), self.instance_id, workspace_id) for n in r.get("Names") or [])
            and lb.is_owned(r.get("Labels"), self.instance_id, workspace_id)
        ]
        return sorted(found, key=lambda r: int(r.get("Created") or 0), reverse=True)

    def everything(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(containers, volumes) carrying this instance's label: workloads, copies, helpers, snapshots."""
        api = self._api()
        label = f"{lb.INSTANCE}={self.instance_id}"
        containers = api.containers(all=True, filters={"label": label})
        volumes = (api.volumes(filters={"label": label}) or {}).get("Volumes") or []
        return list(containers), list(volumes)

    def has_volume(self, name: str) -> bool:
        try:
            self._api().inspect_volume(name)
            return True
        except docker.errors.NotFound:
            return False

    def container_spec(
        self, desired: DesiredWorkspace, secret_env: Mapping[str, str], revision: str | None, image: str,
        name: str | None = None,
    ) -> dict[str, Any]:
        """The create call's arguments; `name` is where it is set up (renamed to its own name once it runs)."""
        name = name or lb.container_name(self.instance_id, desired.id)
        volume = lb.volume_name(self.instance_id, desired.id)
        limits: dict[str, Any] = {}
        if desired.resources:
            r = desired.resources
            limits = {
                "nano_cpus": nanos(r.cpus) if r.cpus else None,
                "mem_limit": memory_bytes(r.memory) if r.memory else None,
                "pids_limit": r.pids,
            }
        host_config = self._api().create_host_config(
            binds={volume: {"bind": "/configs", "mode": "rw"}},
            restart_policy={"Name": self.restart_policy},
            network_mode=self.network,
            **{k: v for k, v in limits.items() if v is not None},
        )
        labels = lb.workload_labels(
            self.instance_id,
            desired,
            revision=revision,
            image=image,
            configs_hash=lb.configs_fingerprint(desired),
        )
        healthcheck: dict[str, Any] | None = None
        if desired.health and self.probes.enabled:  # the reconciler probes it: no exec in the container
            labels[PROBE_LABEL] = self.probes.label(desired.health)
            healthcheck = {"test": ["NONE"]}
        elif desired.health:  # no reconciler probes here: the runtime image's wget does it
            h = desired.health
            healthcheck = {
                "test": ["CMD-SHELL", f"wget -q -O /dev/null http://127.0.0.1:{h.port}{h.path} || exit 1"],
                "interval": nanos(h.interval_seconds),
                "timeout": nanos(h.timeout_seconds),
                "retries": h.retries,
                "start_period": nanos(h.start_period_seconds),
            }
        return {
            "image": image,
            "name": name,
            "environment": {**desired.env, **secret_env},
            "labels": labels,
            "host_config": host_config,
            "healthcheck": healthcheck,
        }
