"""The composition root: every part a pass needs, built from one `Settings`, in one place.

`apply`, `plan`, `pins` and the daemon all get their backend, pin resolver, secret store, hold
store, `!external` fetcher and forge from `Parts`; the commands differ only in what they do with
a pass. Heavy imports (docker, pygit2) happen when a part is first used, so `validate` stays quick.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.backends.base import Backend
from reconciler.forge.base import Forge
from reconciler.model.config import ReconcilerFile
from reconciler.model.credentials import FOR_FORKS, NONE, Credentials
from reconciler.pipeline.cache import PassCache
from reconciler.pipeline.holdstore import HoldStore
from reconciler.pipeline.settings import Settings
from reconciler.render.pins import PinResolver
from reconciler.secrets import SecretStore
from reconciler.source.checkout import Checkout, checkout

if TYPE_CHECKING:
    from reconciler.source.registry import CredentialLookup


@dataclass
class Parts:
    """What a pass is made of. Built once per process (`build_parts`); the backend per repo settings."""

    settings: Settings
    secrets: SecretStore | None
    holds: HoldStore
    forge: Forge | None = None
    wall: Callable[[], float] = time.time
    cache: PassCache = field(default_factory=PassCache)
    credentials: Credentials = NONE  # what a fetch may offer; `build_parts` sets the operator's
    trusted: bool = True  # False: a fork's pull request; no credential of any kind is offered
    _backends: dict[tuple[str, str, float], Backend] = field(default_factory=dict)
    _registry: tuple[object, object] | None = None  # (docker config stamp, client): kept while the file is the same
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def backend(self, repo: ReconcilerFile) -> Backend:
        """The backend for the repo's `docker:` and `health:` settings (one per distinct value)."""
        key = (repo.docker.network, repo.docker.restart_policy, repo.health.settle_seconds)
        with self._lock:
            if key not in self._backends:
                self._backends[key] = self.new_backend(*key)
            return self._backends[key]

    def new_backend(self, network: str, restart_policy: str, settle_seconds: float) -> Backend:
        """A Docker backend for these settings (a bench or test swaps the engine client here)."""
        from reconciler.backends.docker import DockerBackend

        return DockerBackend(self.settings.instance_id, network=network, restart_policy=restart_policy,
                             settle_seconds=settle_seconds, state_dir=self.settings.state_dir)

    def observer(self) -> Backend:
        """A backend to list what runs (for metrics): the last one built, else one with the defaults."""
        with self._lock:
            built = list(self._backends.values())
        return built[-1] if built else self.backend(ReconcilerFile())

    def resolver(self) -> PinResolver:
        """A fresh live resolver: its remote listings and digests are cached for one pass only."""
        from reconciler.source.pins import LivePinResolver
        from reconciler.source.registry import RegistryClient, load_credentials

        path = self.settings.registry_credentials
        stamp = (path.stat().st_mtime_ns if path is not None and path.is_file() else None, self.trusted)
        with self._lock:  # a client per process (its TLS context costs ~0.1 s), anew when the config changes
            if self._registry is None or self._registry[0] != stamp:
                # the credentials file first, then the docker config.json; none for an untrusted review
                docker_config = load_credentials(path) if self.trusted else None
                lookup = _FirstOf(self.credentials, docker_config)
                self._registry = (stamp, RegistryClient(lookup, allowed=self.settings.policy.registry_allowed))
            registry = self._registry[1]
            assert isinstance(registry, RegistryClient)
        return LivePinResolver(self.settings.state_dir, registry, auth=self.credentials)

    def fetcher(self, repo: ReconcilerFile) -> LazyFetcher:
        """The `!external` fetcher for a tree whose settings are `repo`; built only when used."""
        allowed = self.settings.policy.sources_for(repo.allowed_sources)
        return LazyFetcher(self.settings.state_dir, allowed, self.credentials)

    def untrusted(self) -> Parts:
        """These parts with no credential at all: for pull requests from forks."""
        return replace(self, credentials=FOR_FORKS, trusted=False, _backends=self._backends, cache=PassCache(),
                       _registry=None, _lock=threading.Lock())

    def secrets_fingerprint(self) -> tuple[object, ...]:
        return self.secrets.fingerprint() if self.secrets is not None else ()

    def checkout(self, source: str, ref: str | None) -> Checkout:
        return checkout(source, ref, self.settings.state_dir, auth=self.credentials)


class _FirstOf:
    """Registry credentials: the first lookup that has some for a host."""

    def __init__(self, *lookups: CredentialLookup | None) -> None:
        self.lookups = [lookup for lookup in lookups if lookup is not None]

    def get(self, host: str) -> tuple[str, str] | None:
        return next((found for lookup in self.lookups if (found := lookup.get(host)) is not None), None)


class LazyFetcher:
    """The git-backed `!external` fetcher, constructed only when a config actually uses `!external`."""

    def __init__(self, state_dir: Path, allowed: list[str], auth: Credentials) -> None:
        self.state_dir, self.allowed, self.auth = state_dir, allowed, auth
        self.used = False  # a render that fetched is not cached: an external ref may move upstream

    def fetch(self, repo: str, ref: str, url: str | None) -> Path:
        from reconciler.source.external import GitExternalFetcher

        self.used = True
        return GitExternalFetcher(self.state_dir, self.allowed, self.auth).fetch(repo, ref, url)


def build_forge(settings: Settings, *, timeout: float = 10, max_attempts: int = 4) -> Forge | None:
    """The Gitea client when `--gitea-url` is set (the caller checks `--gitea-repo` came with it)."""
    if not settings.gitea_url:
        return None
    from reconciler.forge.gitea import GiteaClient

    return GiteaClient(settings.gitea_url, settings.gitea_repo or "", settings.token_value, timeout=timeout,
                       max_attempts=max_attempts, deadline=timeout * 2)  # a forge that drips never holds a pass long


def build_parts(settings: Settings, *, forge: Forge | None = None) -> Parts:
    secrets = SecretStore.open(settings.secrets_dir, settings.state_dir) if settings.secrets_dir else None
    return Parts(settings=settings, secrets=secrets, holds=HoldStore(settings.hold_file), forge=forge,
                 credentials=settings.credentials)
