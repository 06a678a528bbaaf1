"""The live PinResolver: plugin refs through git remote listings, image tags through the registry."""

from __future__ import annotations

from pathlib import Path

from reconciler.model.credentials import Credentials
from reconciler.model.desired import PluginPinRef
from reconciler.source.refs import plugin_checkout, resolve_track
from reconciler.source.registry import RegistryClient


class LivePinResolver:
    """One per run: remote listings and digests are cached for the run's duration only."""

    def __init__(
        self, state_dir: Path, registry: RegistryClient | None = None, auth: Credentials | None = None
    ) -> None:
        self.state_dir = state_dir / "plugins"
        self.registry = registry or RegistryClient()
        self.auth = auth
        self._heads: dict[str, dict[str, str]] = {}
        self._digests: dict[str, str] = {}

    def image_digest(self, ref: str) -> str:
        if ref not in self._digests:
            self._digests[ref] = self.registry.digest(ref)
        return self._digests[ref]

    def plugin(self, pin: PluginPinRef) -> tuple[str, Path]:
        sha = resolve_track(pin.source, pin.track, auth=self.auth, cache=self._heads)
        return sha, plugin_checkout(pin.source, sha, self.state_dir, pin.path, auth=self.auth)
