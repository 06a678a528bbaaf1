"""What every part of the Docker backend shares: one instance's engine client, objects and stores.

`DockerInstance` holds the state of one backend (the engine client, `InstanceObjects`, the
override and intent stores, the session id its helpers are labelled with) and the few steps both
directions use: the names of a workspace's container and volumes, the spec a container really
runs (labels, or the override of an in-place update), what counts as a `.new-*`/`.prev-*` copy,
and the helper runs that write or restore /configs through the engine (`docker_configs.py` says
what they write). Carrying out actions (`docker_actions.py`) and ending or undoing them
(`docker_recovery.py`) build on it; `docker.py` assembles the `Backend`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import docker

from reconciler.backends import docker_configs as cfg
from reconciler.backends import labels as lb
from reconciler.backends.docker_engine import mapped, run_helper
from reconciler.backends.docker_health import SettleTracker
from reconciler.backends.docker_intents import IntentStore
from reconciler.backends.docker_listing import ListingMemo
from reconciler.backends.docker_objects import InstanceObjects
from reconciler.backends.docker_state import OverrideStore
from reconciler.model.desired import DesiredWorkspace

SESSION = uuid.uuid4().hex[:12]  # labels the helpers and snapshots this process makes (see `recover`)


class DockerInstance:
    """The shared state of one Docker backend (see the module docstring); not a `Backend` alone."""

    def __init__(
        self,
        instance_id: str,
        *,
        state_dir: Path,
        client: docker.DockerClient | None = None,
        network: str = "none",
        restart_policy: str = "unless-stopped",
        settle_seconds: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        pull_timeout: float = 600.0,
        stop_timeout: int = 10,
        helper_timeout: float = 120.0,
    ) -> None:
        if not instance_id or any(ch.isspace() or ch in ",=/\\" for ch in instance_id):
            raise ValueError(f"instance id must be non-empty, without spaces, ',', '=', '/': {instance_id!r}")
        self.instance_id = instance_id
        self._client = client
        self._clock = clock
        self._pull_timeout = pull_timeout
        self._helper_timeout = helper_timeout
        self._settle = SettleTracker(settle_seconds, clock)
        self.objects = InstanceObjects(
            instance_id,
            self._api,
            network=network,
            restart_policy=restart_policy,
            stop_timeout=stop_timeout,
            settle=self._settle,
        )
        self.overrides = OverrideStore.open(Path(state_dir) / f"docker-{instance_id}-overrides.json")
        self.intents = IntentStore.open(Path(state_dir) / f"docker-{instance_id}-intents.sqlite")
        self.session = SESSION
        self._images: set[str] = set()  # refs this backend saw present: not inspected again
        self._memo = ListingMemo(None)  # what the last `list_owned` decoded, for the next one
        self._lock = threading.Lock()

    # -- engine access ---------------------------------------------------------------------
    def _api(self) -> docker.APIClient:
        if self._client is None:
            with mapped("while connecting"):
                self._client = docker.from_env()
        return self._client.api

    def _effective(self, info: Mapping[str, Any]) -> tuple[str, str]:
        """(spec hash, configs hash) of a container: its labels, or the override after an in-place update."""
        labels = (info.get("Config") or {}).get("Labels") or {}
        override = self.overrides.get(labels.get(lb.WORKSPACE, ""), str(info.get("Id")))
        if override:
            return override.spec_hash, override.configs_hash
        return labels.get(lb.SPEC_HASH, ""), labels.get(lb.CONFIGS_HASH, "")

    def _names(self, workspace_id: str) -> tuple[str, str, str]:
        i = self.instance_id
        return (
            lb.container_name(i, workspace_id),
            lb.volume_name(i, workspace_id),
            lb.snapshot_volume_name(i, workspace_id),
        )

    def _drop_strays(self, workspace_id: str) -> None:
        """No intent (a state dir lost, or a change the engine finished before the row was written):
        copies and snapshots nothing explains are dropped; a missing workspace is planned again."""
        for copy in self.objects.prev_containers(workspace_id):
            self.objects.remove_container(copy["Id"])
        self.objects.remove_volume(lb.snapshot_volume_name(self.instance_id, workspace_id), workspace_id)

    def _is_copy(self, row: Mapping[str, Any]) -> bool:
        ws = str((row.get("Labels") or {}).get(lb.WORKSPACE) or "")
        names = [n.lstrip("/") for n in row.get("Names") or []]
        return bool(ws) and any(lb.is_prev_name(n, self.instance_id, ws) or lb.is_new_name(n, self.instance_id, ws)
                                for n in names)

    # -- /configs through the engine ---------------------------------------------------------
    def _sync_configs(self, desired: DesiredWorkspace, image: str, *, snapshot: bool) -> None:
        _, volume, snap = self._names(desired.id)
        binds = {volume: "/configs"}
        if snapshot:
            self.objects.ensure_volume(desired.id, snap, lb.ROLE_SNAPSHOT, session=self.session)
            binds[snap] = "/snapshot"
        run_helper(
            self._api(),
            image=image,
            script=cfg.SYNC_SCRIPT,
            binds=binds,
            env=cfg.sync_env(desired.plugins, snapshot=snapshot),
            labels=lb.auxiliary_labels(self.instance_id, desired.id, lb.ROLE_HELPER, self.session),
            archive=cfg.configs_archive(desired.files.root if desired.files else None, desired.plugins, staged=True),
            timeout=self._helper_timeout,
            what=f"writing /configs of workspace {desired.id}",
        )

    def _restore_configs(self, workspace_id: str, image: str) -> None:
        """Put the snapshot's complete /configs back into the workspace's volume (a rollback)."""
        _, volume, snap = self._names(workspace_id)
        run_helper(
            self._api(),
            image=image,
            script=cfg.RESTORE_SCRIPT,
            binds={volume: "/configs", snap: "/snapshot"},
            env={},
            labels=lb.auxiliary_labels(self.instance_id, workspace_id, lb.ROLE_HELPER, self.session),
            archive=None,
            timeout=self._helper_timeout,
            what=f"restoring /configs of workspace {workspace_id}",
        )
