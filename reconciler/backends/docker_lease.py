"""One reconciler per instance id per engine: a lease held in the engine itself.

Two reconcilers with the same instance id on one engine (two state dirs, two hosts) would fight
over the same containers, each with its own intents and overrides. The lease is a Docker volume
named `reconciler-lease-<instance>`; its labels say who holds it (an owner id, one per state dir,
and a line naming the host, process and state dir). Creating a volume that exists returns the
one already there, labels and all, so "create, then read back the owner" is an atomic claim.

The holder beats: every `beat_s` it replaces a second volume, `reconciler-lease-<instance>.beat`,
whose creation time (the engine's clock, so hosts never compare clocks) is its last sign of life.
A lease is stale, and taken over, when its beat is older than `ttl_s`, or at once when its holder
ran on this host and that process is gone (a `kill -9`). A clean exit releases it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import docker
import docker.errors

from reconciler.backends.docker_engine import FOREIGN_ERRORS, mapped
from reconciler.errors import AnotherWriter

log = logging.getLogger(__name__)
LEASE = "reconciler.lease"  # the instance id
OWNER = "reconciler.lease-owner"
HOLDER = "reconciler.lease-holder"  # "host h, pid 12, `reconciler run`, state dir /x"
HOST = "reconciler.lease-host"
PID = "reconciler.lease-pid"


def lease_name(instance_id: str) -> str:
    return f"reconciler-lease-{instance_id}"


class EngineLease:
    def __init__(self, api: Callable[[], docker.APIClient], instance_id: str, owner: str, holder: str,
                 *, ttl_s: float = 30.0, beat_s: float = 10.0) -> None:
        self._api = api
        self.instance_id = instance_id
        self.owner = owner
        self.name = lease_name(instance_id)
        self.beat_name = self.name + ".beat"
        self.labels = {LEASE: instance_id, OWNER: owner, HOLDER: holder, HOST: socket.gethostname(),
                       PID: str(os.getpid())}
        self.ttl_s, self.beat_s = ttl_s, beat_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def acquire(self) -> None:
        """Hold the lease (raises LeaseHeld naming the holder); beats until `release`."""
        with mapped("taking the instance lease"):
            api = self._api()
            got = api.create_volume(self.name, labels=self.labels)
            labels = got.get("Labels") or {}
            if labels.get(OWNER) != self.owner:
                if not self._stale(api, labels, got):
                    raise AnotherWriter(
                        f"instance {self.instance_id!r} on this engine is held by another reconciler: "
                        f"{labels.get(HOLDER, 'unknown')}; stop that one, or give this one its own --instance-id "
                        f"(a stale lease is taken over {self.ttl_s:.0f} s after its holder stops)")
                log.warning("taking over a stale instance lease", extra={"context": labels.get(HOLDER, "")})
            if labels != self.labels:  # ours from an earlier process of this state dir, or a stale one
                self._remove(api, self.name)
                got = api.create_volume(self.name, labels=self.labels)
                if (got.get("Labels") or {}).get(OWNER) != self.owner:
                    raise AnotherWriter(f"instance {self.instance_id!r}: another reconciler took the lease at the same "
                                    f"moment: {(got.get('Labels') or {}).get(HOLDER, 'unknown')}")
            self._beat(api)
        self._stop.clear()
        self._thread = threading.Thread(target=self._beating, name="lease-beat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with contextlib.suppress(*FOREIGN_ERRORS):
            api = self._api()
            for name in (self.beat_name, self.name):
                if self._owned(api, name):
                    self._remove(api, name)

    # -- internals ---------------------------------------------------------------------------
    def _beating(self) -> None:
        while not self._stop.wait(self.beat_s):
            try:
                api = self._api()
                if not self._owned(api, self.name):
                    if not self.lost:
                        log.error("the instance lease was taken over by another reconciler",
                                  extra={"context": self.instance_id})
                    self.lost = True
                    continue
                self._beat(api)
            except FOREIGN_ERRORS as exc:  # the engine is away: the next beat tries again
                log.warning("could not renew the instance lease", extra={"error": str(exc)})

    def _beat(self, api: docker.APIClient) -> None:
        self._remove(api, self.beat_name)
        api.create_volume(self.beat_name, labels={LEASE: self.instance_id, OWNER: self.owner})

    def _owned(self, api: docker.APIClient, name: str) -> bool:
        try:
            return bool((api.inspect_volume(name).get("Labels") or {}).get(OWNER) == self.owner)
        except docker.errors.NotFound:
            return False

    def _stale(self, api: docker.APIClient, labels: dict[str, str], lease: dict[str, Any]) -> bool:
        if labels.get(HOST) == socket.gethostname() and not _alive(labels.get(PID, "")):
            return True
        try:
            beat = api.inspect_volume(self.beat_name)
            if (beat.get("Labels") or {}).get(OWNER) != labels.get(OWNER):
                beat = lease
        except docker.errors.NotFound:
            beat = lease
        now = _when(str(api.info().get("SystemTime", "")))
        then = _when(str(beat.get("CreatedAt", "")))
        return now is not None and then is not None and (now - then).total_seconds() > self.ttl_s

    @staticmethod
    def _remove(api: docker.APIClient, name: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_volume(name, force=True)


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _when(stamp: str) -> datetime | None:
    """An engine timestamp (RFC 3339, nanoseconds, `Z` or an offset) as an aware datetime."""
    if not stamp:
        return None
    head, _, rest = stamp.partition(".")
    zone = rest.lstrip("0123456789") if rest else stamp[19:]
    zone = "+00:00" if zone in ("Z", "") else zone
    try:
        return datetime.fromisoformat(head[:19] + zone)
    except ValueError:
        return None
