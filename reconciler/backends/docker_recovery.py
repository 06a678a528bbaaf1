"""Ending a change on the engine: commit keeps it, rollback undoes it, recover acts after a crash.

`commit` drops what a change kept for its rollback (the `.prev-*` container, the /configs snapshot)
and records its spec as verified; `rollback` removes a create, or puts back the one container the
change replaced, its /configs and its override, never a container older than the verified spec;
`recover` (every start) finishes or undoes exactly the changes that have an intent, then sweeps
helpers, copies and snapshots that no intent explains. Kept apart from carrying actions out
(`docker_actions.py`), which this builds on: recovering a delete is doing it again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from reconciler.backends import labels as lb
from reconciler.backends.docker_actions import DockerActions
from reconciler.backends.docker_engine import mapped
from reconciler.backends.docker_intents import Phase, Verified
from reconciler.errors import BackendError
from reconciler.model.enums import ActionKind

log = logging.getLogger(__name__)


class DockerRecovery(DockerActions):
    """`commit`, `rollback` and `recover` of the Docker backend."""

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
            self._restore_configs(workspace_id, str(holder.get("Image")))
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
