"""The Docker backend: workspaces as labelled containers with a /configs volume (one engine).

Implements the `Backend` protocol. What it keeps where:
- the engine's labels are the truth (see `labels.py`); `list_owned` is ONE list call, no inspect
  (the label JSON it decoded is reused by the next listing: `docker_listing.py`);
- `<state_dir>/docker-<instance>-overrides.json` holds label overrides after in-place updates
  (Docker labels are immutable; see `docker_state.py`: losing it is harmless);
- in memory, per workspace, what the last apply did (`_Pending`) until `commit` or `rollback`;
  without it (a new process), rollback infers from the engine: a `.prev-*` container or a
  snapshot volume.

Per action (only containers/volumes labelled with this instance id are ever touched; labels are
checked before any destructive call):
  CREATE    pull if missing (a ref seen present is not inspected again), volume (one call: create,
            which returns the volume already there), container, /configs content, start
  UPDATE    restart=False: rewrite /configs in place (snapshot kept), same container keeps running,
            override recorded; restart=True: as RECREATE
  RECREATE  stop old, rename it `<name>.prev-<id>`, rewrite /configs if its content changed
            (snapshot kept), create and start the new one on the same volume
  DELETE    stop, remove container, then the volume only if the stop really succeeded
`commit` drops the `.prev` container and the snapshot (no engine call after a create on a volume
it made: nothing was kept, see `_Pending.kept_nothing`); `rollback` removes a create, or puts the
`.prev` container, the snapshot and the previous override back. Runtime images need /bin/sh
(helper containers run the /configs swap; see `docker_configs.py`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from reconciler.backends import docker_configs as cfg
from reconciler.backends import labels as lb
from reconciler.backends.docker_engine import (
    FOREIGN_ERRORS,
    Scrubber,
    ensure_image,
    mapped,
    run_helper,
)
from reconciler.backends.docker_health import SettleTracker, health_from_inspect
from reconciler.backends.docker_listing import ListingMemo, observe
from reconciler.backends.docker_objects import InstanceObjects
from reconciler.backends.docker_state import Override, OverrideStore
from reconciler.errors import BackendError, TransientBackendError
from reconciler.model.desired import DesiredWorkspace
from reconciler.model.enums import ActionKind, HealthState
from reconciler.model.observed import ObservedWorkspace
from reconciler.model.plan import Action

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    """What the last apply of one workspace did, until commit or rollback."""

    kind: ActionKind
    volume_created: bool = False
    prev_name: str | None = None
    prev_override: Override | None = None
    kept: bool = False  # a replacement or in-place update kept something for rollback since

    @property
    def kept_nothing(self) -> bool:
        """A create on a volume it made itself, nothing replaced since: commit has nothing to drop.
        Every `.prev` container mounts the workspace's volume and the engine never removes a volume
        in use, so a fresh volume means there is none; a snapshot only comes with a replacement or
        an in-place update (`kept`), and a create that became a replacement is recorded as one."""
        return self.kind is ActionKind.CREATE and self.volume_created and not self.kept


class DockerBackend:
    """`Backend` on one Docker engine. Thread-safe for different workspaces at once."""

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
        self.overrides = OverrideStore(Path(state_dir) / f"docker-{instance_id}-overrides.json")
        self._pending: dict[str, _Pending] = {}
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

    # -- observe -----------------------------------------------------------------------------
    def list_owned(self) -> list[ObservedWorkspace]:
        with mapped("listing containers"):
            rows = self._api().containers(all=True, filters={"label": lb.owner_filters(self.instance_id)})
        overrides = self.overrides.snapshot()
        with self._lock:
            memo = ListingMemo(self._memo)
        observed = observe(rows, self.instance_id, overrides, memo)
        with self._lock:
            self._memo = memo
        return observed

    def health(self, workspace_id: str) -> HealthState:
        name = lb.container_name(self.instance_id, workspace_id)
        try:
            info = self.objects.inspect(name)
        except BackendError:
            return HealthState.UNKNOWN
        except FOREIGN_ERRORS as exc:
            log.warning("health unknown: engine error", extra={"workspace": workspace_id, "error": str(exc)})
            return HealthState.UNKNOWN
        if info is None:
            return HealthState.MISSING
        labels = (info.get("Config") or {}).get("Labels") or {}
        if not lb.is_owned(labels, self.instance_id, workspace_id):
            return HealthState.MISSING
        return health_from_inspect(info, self._settle)

    # -- apply -------------------------------------------------------------------------------
    def apply(self, action: Action, secret_env: Mapping[str, str], revision: str | None) -> None:
        ws = action.workspace_id
        extra = {"workspace": ws, "revision": revision, "action": str(action.kind)}
        if action.kind is ActionKind.NOOP:
            return
        if action.kind is ActionKind.DELETE:
            log.info("deleting workspace", extra=extra)
            with mapped("deleting", ws):
                self._delete(ws)
            return
        desired = action.desired
        if desired is None:
            raise BackendError(f"docker: {action.kind} of workspace {ws} carries no desired spec (plan bug)")
        if not desired.provisioned:
            log.info("not provisioned (runtime external): nothing to do", extra=extra)
            return
        log.info("applying", extra=extra)
        with mapped(str(action.kind), ws, Scrubber(secret_env.values())):
            try:
                self._converge(action, desired, secret_env, revision)
            except docker.errors.ImageNotFound:
                if not self._forget_image(desired):
                    raise
                # removed since this backend last saw it (an image prune): the action is idempotent,
                # so do it again from the top, pulling the image this time
                log.info("image gone since it was last seen; applying again", extra=extra)
                self._converge(action, desired, secret_env, revision)

    def _converge(
        self, action: Action, desired: DesiredWorkspace, secret_env: Mapping[str, str], revision: str | None
    ) -> None:
        if action.kind is ActionKind.CREATE:
            self._create(desired, secret_env, revision)
        elif action.kind is ActionKind.UPDATE and not action.restart:
            self._update_in_place(desired, secret_env, revision)
        else:
            self._recreate(desired, secret_env, revision, ActionKind(action.kind))

    def _image(self, desired: DesiredWorkspace) -> str:
        """The image ref, pulled if missing. A ref seen present once is not inspected again (a digest
        never changes; a present tag is trusted anyway); if it vanished, `apply` retries without it."""
        ref = desired.image_digest or desired.image
        if not ref:
            raise BackendError(f"docker: workspace {desired.id} has no image; add its runtime to images.yaml")
        with self._lock:
            if ref in self._images:
                return ref
        ensure_image(self._api(), ref, timeout=self._pull_timeout, clock=self._clock)
        with self._lock:
            self._images.add(ref)
        return ref

    def _forget_image(self, desired: DesiredWorkspace) -> bool:
        """Drop the image of `desired` from the seen-present set; False if it was not in it."""
        ref = desired.image_digest or desired.image
        with self._lock:
            if ref not in self._images:
                return False
            self._images.discard(ref)
            return True

    def _remember(self, workspace_id: str, pending: _Pending) -> _Pending:
        """Record the first change since the last commit/rollback; a retry keeps the original."""
        with self._lock:
            existing = self._pending.get(workspace_id)
            if existing is not None:
                return existing
            self._pending[workspace_id] = pending
        if pending.kind is not ActionKind.CREATE:
            self.objects.remove_volume(lb.snapshot_volume_name(self.instance_id, workspace_id), workspace_id)
        return pending

    def _sync_configs(self, desired: DesiredWorkspace, image: str, *, snapshot: bool) -> None:
        _, volume, snap = self._names(desired.id)
        binds = {volume: "/configs"}
        if snapshot:
            self.objects.ensure_volume(desired.id, snap, lb.ROLE_SNAPSHOT)
            binds[snap] = "/snapshot"
        run_helper(
            self._api(),
            image=image,
            script=cfg.SYNC_SCRIPT,
            binds=binds,
            env=cfg.sync_env(desired.plugins, snapshot=snapshot),
            labels=lb.auxiliary_labels(self.instance_id, desired.id, lb.ROLE_HELPER),
            archive=cfg.configs_archive(desired.files.root if desired.files else None, desired.plugins, staged=True),
            timeout=self._helper_timeout,
            what=f"writing /configs of workspace {desired.id}",
        )

    def _create(self, desired: DesiredWorkspace, secret_env: Mapping[str, str], revision: str | None) -> None:
        api = self._api()
        name, volume, _ = self._names(desired.id)
        image = self._image(desired)
        volume_created = self.objects.ensure_volume(desired.id, volume)
        pending = self._remember(desired.id, _Pending(ActionKind.CREATE, volume_created))
        spec = self.objects.container_spec(desired, secret_env, revision, image)
        try:
            cid = api.create_container(**spec)["Id"]
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            self._create_over_existing(desired, secret_env, revision, image, pending)
            return
        if volume_created:
            if desired.files or cfg.installable(desired.plugins):  # nothing to write: the fresh volume is right
                archive = cfg.configs_archive(desired.files.root if desired.files else None, desired.plugins,
                                              staged=False)
                api.put_archive(cid, "/configs", archive)
        else:
            self._sync_configs(desired, image, snapshot=False)
        api.start(cid)
        self.overrides.put(desired.id, None)

    def _create_over_existing(
        self,
        desired: DesiredWorkspace,
        secret_env: Mapping[str, str],
        revision: str | None,
        image: str,
        pending: _Pending,
    ) -> None:
        """The name is taken: a retry of this create (finish it) or a stale plan (replace it)."""
        name = lb.container_name(self.instance_id, desired.id)
        existing = self.objects.inspect(name)
        if existing is None:
            raise TransientBackendError(f"docker: container {name} of {desired.id} vanished while creating")
        self.objects.owned_or_fail(existing, desired.id, "replace")
        if self._effective(existing)[0] == desired.spec_hash:
            state = existing.get("State") or {}
            if not state.get("Running"):
                if not state.get("StartedAt") or state["StartedAt"].startswith("0001-"):
                    self._sync_configs(desired, image, snapshot=False)  # an earlier attempt may have stopped short
                self._api().start(existing["Id"])
            return
        with self._lock:
            if self._pending.get(desired.id) is pending and pending.kind is ActionKind.CREATE:
                del self._pending[desired.id]  # not a create after all
        self._recreate(desired, secret_env, revision, ActionKind.RECREATE)

    def _recreate(
        self, desired: DesiredWorkspace, secret_env: Mapping[str, str], revision: str | None, kind: ActionKind
    ) -> None:
        api = self._api()
        name, volume, _ = self._names(desired.id)
        old = self.objects.inspect(name)
        if old is not None:
            self.objects.owned_or_fail(old, desired.id, "replace")
            if self._effective(old)[0] == desired.spec_hash:
                if not (old.get("State") or {}).get("Running"):
                    api.start(old["Id"])
                return  # already done (a retry)
        image = self._image(desired)
        pending = self._remember(desired.id, _Pending(kind, prev_override=self.overrides.get(desired.id)))
        pending.kept = True
        old_configs = self._effective(old)[1] if old is not None else ""
        if old is not None:
            self.objects.stop(old["Id"])
            prev = lb.prev_container_name(self.instance_id, desired.id, old["Id"])
            api.rename(old["Id"], prev)
            pending.prev_name = pending.prev_name or prev
        self.objects.ensure_volume(desired.id, volume)
        if old_configs != lb.configs_fingerprint(desired):
            self._sync_configs(desired, image, snapshot=True)
        cid = api.create_container(**self.objects.container_spec(desired, secret_env, revision, image))["Id"]
        api.start(cid)
        self.overrides.put(desired.id, None)

    def _update_in_place(self, desired: DesiredWorkspace, secret_env: Mapping[str, str], revision: str | None) -> None:
        name, _, _ = self._names(desired.id)
        current = self.objects.inspect(name)
        if current is None:
            self._recreate(desired, secret_env, revision, ActionKind.RECREATE)
            return
        self.objects.owned_or_fail(current, desired.id, "update")
        pending = self._remember(desired.id, _Pending(ActionKind.UPDATE, prev_override=self.overrides.get(desired.id)))
        pending.kept = True
        self._sync_configs(desired, str(current["Image"]), snapshot=True)
        self.overrides.put(
            desired.id,
            Override(
                container_id=str(current["Id"]),
                spec_hash=desired.spec_hash,
                spec_parts=dict(desired.spec_parts),
                revision=revision,
                configs_hash=lb.configs_fingerprint(desired),
                plugins=lb.plugin_shas(desired),
            ),
        )

    # -- delete, commit, rollback ------------------------------------------------------------

    def _delete(self, workspace_id: str) -> None:
        name, volume, snap = self._names(workspace_id)
        current = self.objects.inspect(name)
        if current is not None:
            self.objects.owned_or_fail(current, workspace_id, "delete")
            self.objects.stop(current["Id"])  # a failed stop raises here: the volume is kept
            self.objects.remove_container(current["Id"])
        for prev in self.objects.prev_containers(workspace_id):
            self.objects.stop(prev["Id"])
            self.objects.remove_container(prev["Id"])
        self.objects.remove_volume(snap, workspace_id)
        self.objects.remove_volume(volume, workspace_id)
        self.overrides.put(workspace_id, None)
        with self._lock:
            self._pending.pop(workspace_id, None)

    def commit(self, workspace_id: str) -> None:
        with self._lock:
            pending = self._pending.get(workspace_id)
            if pending is not None and pending.kept_nothing:
                del self._pending[workspace_id]
                return
        with mapped("committing", workspace_id):
            for prev in self.objects.prev_containers(workspace_id):
                self.objects.remove_container(prev["Id"])
            self.objects.remove_volume(lb.snapshot_volume_name(self.instance_id, workspace_id), workspace_id)
        with self._lock:
            self._pending.pop(workspace_id, None)

    def rollback(self, workspace_id: str) -> None:
        with mapped("rolling back", workspace_id):
            self._rollback(workspace_id)
        with self._lock:
            self._pending.pop(workspace_id, None)

    def _rollback(self, workspace_id: str) -> None:
        api = self._api()
        name, volume, snap = self._names(workspace_id)
        with self._lock:
            pending = self._pending.get(workspace_id)
        prevs = self.objects.prev_containers(workspace_id)
        if pending is None and not prevs and not self.objects.has_volume(snap):
            return  # nothing recorded, nothing kept: nothing to undo
        current = self.objects.inspect(name)
        if pending is not None and pending.kind is ActionKind.CREATE:
            log.info("rollback: removing created workspace", extra={"workspace": workspace_id})
            # a container at the name without our labels was not created by us (the name was taken): left alone
            labels = (current.get("Config") or {}).get("Labels") if current is not None else None
            if current is not None and lb.is_owned(labels, self.instance_id, workspace_id):
                self.objects.remove_container(current["Id"])
            if pending.volume_created:
                self.objects.remove_volume(volume, workspace_id)
            self.overrides.put(workspace_id, None)
            return
        if current is not None:
            self.objects.owned_or_fail(current, workspace_id, "roll back")
        restored = None
        if prevs:
            restored = prevs[0]
            if pending and pending.prev_name:
                restored = next((p for p in prevs if pending.prev_name in p.get("Names", [""])[0]), restored)
            if current is not None:
                self.objects.remove_container(current["Id"])
        image_holder = restored or current
        if image_holder is not None and self.objects.has_volume(snap):
            run_helper(
                api,
                image=str(image_holder.get("ImageID") or image_holder.get("Image")),
                script=cfg.RESTORE_SCRIPT,
                binds={volume: "/configs", snap: "/snapshot"},
                env={},
                labels=lb.auxiliary_labels(self.instance_id, workspace_id, lb.ROLE_HELPER),
                archive=None,
                timeout=self._helper_timeout,
                what=f"restoring /configs of workspace {workspace_id}",
            )
        if restored is not None:
            api.rename(restored["Id"], name)
            api.start(restored["Id"])
        self.overrides.put(workspace_id, pending.prev_override if pending else None)
        self.objects.remove_volume(snap, workspace_id)
        log.info("rolled back", extra={"workspace": workspace_id, "restored_container": bool(restored)})
