"""The Docker backend: workspaces as labelled containers with a /configs volume (one engine).

Implements the `Backend` protocol. What it keeps where:
- the engine's labels are the truth (see `labels.py`); `list_owned` is ONE list call, no inspect
  (the label JSON it decoded is reused by the next listing: `docker_listing.py`);
- `<state_dir>/docker-<instance>-overrides.json` holds label overrides after in-place updates
  (Docker labels are immutable; see `docker_state.py`: losing it is harmless);
- `<state_dir>/docker-<instance>-intents.sqlite` holds, per workspace, the change under way
  (written before its first effect, cleared by commit or rollback) and the spec last verified
  (`docker_intents.py`): `recover` reads it after a crash.

Per action (only containers/volumes labelled with this instance id are ever touched; labels are
checked before any destructive call):
  CREATE    pull if missing, volume, container set up as `<name>.new-<random>`, /configs
            content, start, and only then renamed to `<name>`: a workspace under its own name
            always has its files (a kill before the rename leaves a `.new-*` that `recover` removes)
  UPDATE    restart=False: rewrite /configs in place (snapshot kept), same container keeps running,
            override recorded; restart=True: as RECREATE
  RECREATE  stop old, rename it `<name>.prev-<id>`, rewrite /configs if its content changed
            (snapshot kept), set up the new one as for CREATE on the same volume
  DELETE    stop, remove container, its copies, then the volumes only if the stop really succeeded
`commit` drops the `.prev` container and the snapshot and records the spec as verified;
`rollback` removes a create (and its volume), or puts back the one `.prev` container this change
replaced, the snapshot and the previous override. `recover` (every start) finishes or undoes
exactly the changes that have an intent, and sweeps helpers, `.new-*`/`.prev-*` copies and
snapshots no intent explains. Runtime images need /bin/sh (helper containers run the /configs
swap; see `docker_configs.py`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
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
from reconciler.backends.docker_intents import Intent, IntentStore, Phase, Verified
from reconciler.backends.docker_lease import EngineLease
from reconciler.backends.docker_listing import ListingMemo, observe
from reconciler.backends.docker_objects import InstanceObjects
from reconciler.backends.docker_state import Override, OverrideStore
from reconciler.errors import BackendError, TransientBackendError
from reconciler.model.desired import DesiredWorkspace
from reconciler.model.enums import ActionKind, HealthState
from reconciler.model.observed import ObservedWorkspace
from reconciler.model.plan import Action

log = logging.getLogger(__name__)
SESSION = uuid.uuid4().hex[:12]  # labels the helpers and snapshots this process makes (see `recover`)


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

    # -- observe -----------------------------------------------------------------------------
    def list_owned(self) -> list[ObservedWorkspace]:
        with mapped("listing containers"):
            rows = self._api().containers(all=True, filters={"label": lb.owner_filters(self.instance_id)})
        overrides = self.overrides.snapshot()
        with self._lock:
            memo = ListingMemo(self._memo)
        observed = self.objects.probes.overlay(rows, observe(rows, self.instance_id, overrides, memo))
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
        return health_from_inspect(info, self._settle, self.objects.probes)

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
            seen = action.observed
            replace = seen.backend_ref if seen is not None and seen.running and action.kind is ActionKind.RECREATE \
                else None
            self._recreate(desired, secret_env, revision, ActionKind(action.kind), replace)

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

    def _begin(self, desired: DesiredWorkspace, kind: ActionKind, revision: str | None,
               prev_id: str | None = None) -> Intent:
        """Write the intent down before the first effect. A new change drops a stale snapshot (the
        sync script snapshots only when none is complete); a retry keeps the first one's record."""
        fresh = self.intents.get(desired.id) is None
        intent = self.intents.begin(Intent(workspace=desired.id, kind=kind, phase=Phase.APPLYING,
                                           spec_hash=desired.spec_hash, revision=revision, prev_id=prev_id,
                                           prev_override=self.overrides.get(desired.id)))
        if fresh and kind is not ActionKind.CREATE:
            self.objects.remove_volume(lb.snapshot_volume_name(self.instance_id, desired.id), desired.id)
        return intent

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

    def _create(self, desired: DesiredWorkspace, secret_env: Mapping[str, str], revision: str | None) -> None:
        name, volume, _ = self._names(desired.id)
        image = self._image(desired)
        self._begin(desired, ActionKind.CREATE, revision)
        fresh = self.objects.ensure_volume(desired.id, volume)
        if not fresh:  # a volume in place: maybe a container too (a retry, or a stale plan)
            current = self.objects.inspect(name)
            if current is not None:
                self.objects.owned_or_fail(current, desired.id, "replace")
                if self._effective(current)[0] == desired.spec_hash and (current.get("State") or {}).get("Running"):
                    self.intents.update(desired.id, phase=Phase.APPLIED)
                    return
                self._recreate(desired, secret_env, revision, ActionKind.RECREATE)
                return
        self._set_up(desired, secret_env, revision, image, lambda cid: self._write_new(cid, desired, image, fresh))

    def _write_new(self, cid: str, desired: DesiredWorkspace, image: str, fresh_volume: bool) -> None:
        """/configs of a container not started yet: one archive into a fresh volume, else the helper."""
        if not fresh_volume:
            self._sync_configs(desired, image, snapshot=False)
        elif desired.files or cfg.installable(desired.plugins):  # nothing to write: the fresh volume is right
            archive = cfg.configs_archive(desired.files.root if desired.files else None, desired.plugins, staged=False)
            self._api().put_archive(cid, "/configs", archive)

    def _set_up(self, desired: DesiredWorkspace, secret_env: Mapping[str, str], revision: str | None, image: str,
                write: Callable[[str], None]) -> None:
        """Create the container under a temporary name, write its files, start it, and only then give
        it the workspace's name: the listing never sees a workspace whose files are not in place."""
        api = self._api()
        name = lb.container_name(self.instance_id, desired.id)
        temp = lb.new_container_name(self.instance_id, desired.id, uuid.uuid4().hex[:8])
        cid = api.create_container(**self.objects.container_spec(desired, secret_env, revision, image, temp))["Id"]
        write(cid)
        api.start(cid)
        try:
            api.rename(cid, name)
        except docker.errors.APIError as exc:
            self.objects.remove_container(cid)
            taken = self.objects.inspect(name) if exc.status_code == 409 else None
            if taken is None:
                raise
            self.objects.owned_or_fail(taken, desired.id, "replace")
            raise TransientBackendError(f"docker: the name {name} of {desired.id} was taken meanwhile") from None
        self.overrides.put(desired.id, None)
        self.intents.update(desired.id, phase=Phase.APPLIED)

    def _recreate(
        self, desired: DesiredWorkspace, secret_env: Mapping[str, str], revision: str | None, kind: ActionKind,
        replace: str | None = None,
    ) -> None:
        """`replace`: the running container the plan means to replace even at the same spec (a heal of
        one that stays unhealthy); without it, one at the name with the desired spec is a retry: done."""
        name, volume, _ = self._names(desired.id)
        old = self.objects.inspect(name)
        if old is not None:
            self.objects.owned_or_fail(old, desired.id, "replace")
            if self._effective(old)[0] == desired.spec_hash and old["Id"] != replace:
                if not (old.get("State") or {}).get("Running"):
                    self._api().start(old["Id"])
                self.intents.update(desired.id, phase=Phase.APPLIED)
                return  # already done (a retry)
        image = self._image(desired)
        intent = self._begin(desired, kind, revision, prev_id=str(old["Id"]) if old is not None else None)
        if old is not None and old["Id"] != intent.prev_id:  # the row is older than what runs: re-aim it
            stale = self.objects.inspect(intent.prev_id) if intent.prev_id else None
            if stale is not None and self._is_copy({"Labels": (stale.get("Config") or {}).get("Labels"),
                                                    "Names": [stale.get("Name", "")]}):
                self.objects.remove_container(stale["Id"])
            intent = self.intents.update(desired.id, prev_id=str(old["Id"]),
                                         prev_override=self.overrides.get(desired.id)) or intent
        replaced = self.objects.inspect(intent.prev_id) if intent.prev_id else None
        if replaced is not None:
            self.objects.stop(replaced["Id"])
            if not str(replaced.get("Name", "")).lstrip("/").startswith(f"{name}.prev-"):
                self._api().rename(replaced["Id"], lb.prev_container_name(self.instance_id, desired.id, replaced["Id"]))
        fresh = self.objects.ensure_volume(desired.id, volume)
        old_configs = self._effective(replaced)[1] if replaced is not None else ""
        if fresh:
            write: Callable[[str], None] = lambda cid: self._write_new(cid, desired, image, True)  # noqa: E731
        else:
            if old_configs != lb.configs_fingerprint(desired):
                self._sync_configs(desired, image, snapshot=True)
            write = lambda cid: None  # noqa: E731
        self._set_up(desired, secret_env, revision, image, write)

    def _update_in_place(self, desired: DesiredWorkspace, secret_env: Mapping[str, str], revision: str | None) -> None:
        name, _, _ = self._names(desired.id)
        current = self.objects.inspect(name)
        if current is None:
            self._recreate(desired, secret_env, revision, ActionKind.RECREATE)
            return
        self.objects.owned_or_fail(current, desired.id, "update")
        self._begin(desired, ActionKind.UPDATE, revision)
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
        self.intents.update(desired.id, phase=Phase.APPLIED)

    # -- delete, commit, rollback, recover ---------------------------------------------------

    def _delete(self, workspace_id: str) -> None:
        self.intents.begin(Intent(workspace=workspace_id, kind=ActionKind.DELETE, phase=Phase.DELETING))
        name, volume, snap = self._names(workspace_id)
        current = self.objects.inspect(name)
        if current is not None:
            self.objects.owned_or_fail(current, workspace_id, "delete")
            self.objects.stop(current["Id"])  # a failed stop raises here: the volume is kept
            self.objects.remove_container(current["Id"])
        for copy in self.objects.prev_containers(workspace_id) + self.objects.new_containers(workspace_id):
            self.objects.stop(copy["Id"])
            self.objects.remove_container(copy["Id"])
        self.objects.remove_volume(snap, workspace_id)
        self.objects.remove_volume(volume, workspace_id)
        self.overrides.put(workspace_id, None)
        self.intents.finish(workspace_id, forget=True)

    def commit(self, workspace_id: str) -> None:
        intent = self.intents.get(workspace_id)
        if intent is not None:
            self.intents.update(workspace_id, phase=Phase.COMMITTING)
        kept_nothing = intent is not None and intent.kind is ActionKind.CREATE and intent.prev_id is None
        if not kept_nothing:  # a create made no copy and no snapshot: nothing to drop, no engine call
            with mapped("committing", workspace_id):
                for copy in self.objects.prev_containers(workspace_id) + self.objects.new_containers(workspace_id):
                    self.objects.remove_container(copy["Id"])
                self.objects.remove_volume(lb.snapshot_volume_name(self.instance_id, workspace_id), workspace_id)
        verified = Verified(workspace=workspace_id, spec_hash=intent.spec_hash, revision=intent.revision) \
            if intent is not None and intent.spec_hash else None
        self.intents.finish(workspace_id, verified)

    def rollback(self, workspace_id: str) -> None:
        with mapped("rolling back", workspace_id):
            self._rollback(workspace_id)
        self.intents.finish(workspace_id)

    def _rollback(self, workspace_id: str) -> None:
        intent = self.intents.update(workspace_id, phase=Phase.ROLLING_BACK)
        name, volume, snap = self._names(workspace_id)
        for copy in self.objects.new_containers(workspace_id):
            self.objects.remove_container(copy["Id"])
        if intent is None:
            self._drop_strays(workspace_id)
            return
        current = self.objects.inspect(name)
        if intent.kind is ActionKind.CREATE and intent.prev_id is None:
            if current is not None and not lb.is_owned((current.get("Config") or {}).get("Labels"),
                                                       self.instance_id, workspace_id):
                current = None  # a container this reconciler does not own took the name: left alone
            elif current is not None and self._effective(current)[0] != intent.spec_hash:
                return  # was there before this create began (a stale plan): not this change's to undo
            log.info("rollback: removing created workspace", extra={"workspace": workspace_id})
            if current is not None:
                self.objects.remove_container(current["Id"])
            self.objects.remove_volume(snap, workspace_id)
            self.objects.remove_volume(volume, workspace_id)  # configs are derived: the next create writes them
            self.overrides.put(workspace_id, None)
            return
        if current is not None:
            self.objects.owned_or_fail(current, workspace_id, "roll back")
        replaced = self.objects.inspect(intent.prev_id) if intent.prev_id else None
        if replaced is not None and current is not None and current["Id"] != replaced["Id"]:
            if self._newer_than_replaced(workspace_id, current, replaced):
                log.warning("rollback: the running container is the verified spec; the copy is dropped instead",
                            extra={"workspace": workspace_id})
                self.objects.remove_container(replaced["Id"])
                replaced = None
            else:
                self.objects.remove_container(current["Id"])
        holder = replaced or current
        if holder is not None and self.objects.has_volume(snap):
            run_helper(
                self._api(),
                image=str(holder.get("Image")),
                script=cfg.RESTORE_SCRIPT,
                binds={volume: "/configs", snap: "/snapshot"},
                env={},
                labels=lb.auxiliary_labels(self.instance_id, workspace_id, lb.ROLE_HELPER, self.session),
                archive=None,
                timeout=self._helper_timeout,
                what=f"restoring /configs of workspace {workspace_id}",
            )
        if replaced is not None:
            if str(replaced.get("Name", "")).lstrip("/") != name:
                self._api().rename(replaced["Id"], name)
            self._api().start(replaced["Id"])
            self.overrides.put(workspace_id, intent.prev_override)
        elif current is not None:
            if not (current.get("State") or {}).get("Running"):
                self._api().start(current["Id"])  # stopped for a replacement that never happened
            override = intent.prev_override
            self.overrides.put(workspace_id, override if override and override.container_id == current["Id"] else None)
        self.objects.remove_volume(snap, workspace_id)
        log.info("rolled back", extra={"workspace": workspace_id, "restored_container": replaced is not None})

    def _newer_than_replaced(self, workspace_id: str, current: Mapping[str, Any], replaced: Mapping[str, Any]) -> bool:
        """True when the running container holds the workspace's verified spec and the copy does not:
        putting the copy back would downgrade what passed a health gate."""
        verified = self.intents.verified(workspace_id)
        if verified is None:
            return False
        return self._effective(current)[0] == verified.spec_hash != self._effective(replaced)[0]

    def _drop_strays(self, workspace_id: str) -> None:
        """No intent (a state dir lost, or a change the engine finished before the row was written):
        copies and snapshots nothing explains are dropped; a missing workspace is planned again."""
        for copy in self.objects.prev_containers(workspace_id):
            self.objects.remove_container(copy["Id"])
        self.objects.remove_volume(lb.snapshot_volume_name(self.instance_id, workspace_id), workspace_id)

    def lease(self, owner: str, holder: str) -> EngineLease:
        return EngineLease(self._api, self.instance_id, owner, holder)

    def recover(self) -> list[str]:
        """After a crash: finish or undo each change with an intent, then sweep helpers, copies and
        snapshots left by a dead process. Returns the workspaces it acted on. Call it holding the
        instance's lock and lease, before planning."""
        acted: list[str] = []
        with mapped("recovering"):
            containers, volumes = self.objects.everything()
            for row in containers:  # helpers: every one belongs to a process that is gone
                labels = row.get("Labels") or {}
                if labels.get(lb.ROLE) == lb.ROLE_HELPER and labels.get(lb.SESSION) != self.session:
                    self.objects.remove_container(row["Id"])
        pending = self.intents.pending()
        for intent in pending:
            ws = intent.workspace
            try:
                if intent.kind is ActionKind.DELETE:
                    with mapped("deleting", ws):
                        self._delete(ws)
                elif intent.undo:
                    self.rollback(ws)
                else:
                    self.commit(ws)
            except BackendError as exc:
                log.error("recovery of a workspace failed; tried again at the next start",
                          extra={"workspace": ws, "error": str(exc)})
                continue
            acted.append(ws)
            log.info("recovered an interrupted change", extra={
                "workspace": ws, "action": intent.kind.value,
                "outcome": "undone" if intent.undo and intent.kind is not ActionKind.DELETE else "finished"})
        with mapped("recovering"):
            if pending:  # what the intents did changed the picture
                containers, volumes = self.objects.everything()
            strays = {str((r.get("Labels") or {}).get(lb.WORKSPACE)) for r in containers
                      if self._is_copy(r)} | {
                str((v.get("Labels") or {}).get(lb.WORKSPACE)) for v in volumes
                if (v.get("Labels") or {}).get(lb.ROLE) == lb.ROLE_SNAPSHOT}
            busy = {i.workspace for i in self.intents.pending()}  # recovery failed: left for the next start
            for ws in sorted(strays - busy - {"None"}):
                for copy in self.objects.new_containers(ws):
                    self.objects.remove_container(copy["Id"])
                self._drop_strays(ws)
                log.info("swept copies left by an interrupted run", extra={"workspace": ws})
                acted.append(ws)
        return sorted(set(acted))

    def _is_copy(self, row: Mapping[str, Any]) -> bool:
        ws = str((row.get("Labels") or {}).get(lb.WORKSPACE) or "")
        names = [n.lstrip("/") for n in row.get("Names") or []]
        return bool(ws) and any(lb.is_prev_name(n, self.instance_id, ws) or lb.is_new_name(n, self.instance_id, ws)
                                for n in names)
