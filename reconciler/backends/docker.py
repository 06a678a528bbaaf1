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

This module is the `Backend` as callers see it, and its observing side (`list_owned`, `health`,
`lease`); the rest is built up in layers, one job each: the state every part shares and the
/configs helper runs (`docker_instance.py`), carrying out actions (`docker_actions.py`), then
commit, rollback and recovery (`docker_recovery.py`).
"""

from __future__ import annotations

import logging

from reconciler.backends import labels as lb
from reconciler.backends.docker_engine import FOREIGN_ERRORS, mapped
from reconciler.backends.docker_health import health_from_inspect
from reconciler.backends.docker_lease import EngineLease
from reconciler.backends.docker_listing import ListingMemo, observe
from reconciler.backends.docker_recovery import DockerRecovery
from reconciler.errors import BackendError
from reconciler.model.enums import HealthState
from reconciler.model.observed import ObservedWorkspace

log = logging.getLogger(__name__)


class DockerBackend(DockerRecovery):
    """`Backend` on one Docker engine. Thread-safe for different workspaces at once."""

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

    def lease(self, owner: str, holder: str) -> EngineLease:
        return EngineLease(self._api, self.instance_id, owner, holder)
