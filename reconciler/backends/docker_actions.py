"""Carrying out one action of a plan on the engine: create, update in place, recreate, delete.

Each change is written down as an intent (`docker_intents.py`) before its first effect, and every
step is safe to run again (a retry, or an action planned from a stale listing): a container at the
workspace's name with the desired spec is already done. A new container is set up under a
temporary `.new-*` name, its files written, started, and only then renamed, so the listing never
sees a workspace without its files; a recreate keeps the replaced container as `.prev-*` and
/configs as a snapshot for a rollback (`docker_recovery.py`). The sequence of each action is
described in `docker.py`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping

import docker
import docker.errors

from reconciler.backends import docker_configs as cfg
from reconciler.backends import labels as lb
from reconciler.backends.docker_engine import Scrubber, ensure_image, mapped
from reconciler.backends.docker_instance import DockerInstance
from reconciler.backends.docker_intents import Intent, Phase
from reconciler.backends.docker_state import Override
from reconciler.errors import BackendError, TransientBackendError
from reconciler.model.desired import DesiredWorkspace
from reconciler.model.enums import ActionKind
from reconciler.model.plan import Action

log = logging.getLogger(__name__)


class DockerActions(DockerInstance):
    """`apply` of the Docker backend, and the steps of each action kind."""

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
