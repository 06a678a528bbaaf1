"""Pin resolution: turn tracked refs into exact commits and image tags into digests.

Runs after render and before plan: every image becomes `repo@sha256:...` and every plugin gets
its resolved SHA, its local checkout and its content hashes, then spec hashes are recomputed, so
an upstream move of a tag or branch is drift the plan sees. A digest pin never reaches the
resolver (no registry call at all), and `track: none` resolves to the SHA the workspace already
runs (from the observed state) when there is one. The I/O goes through a `PinResolver` (the live
one is in `reconciler.source.pins`); this module only transforms values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from reconciler.errors import Location
from reconciler.model.desired import DesiredState, DesiredWorkspace, PluginPinRef
from reconciler.model.refs import FULL_SHA
from reconciler.render.files import scan_files
from reconciler.render.images import split_reference
from reconciler.render.spec_hash import with_spec


class PinResolver(Protocol):
    def image_digest(self, ref: str) -> str:
        """`sha256:...` the tag points at now. Raises SourceError."""
        ...

    def plugin(self, pin: PluginPinRef) -> tuple[str, Path]:
        """(resolved commit SHA, local directory of the plugin at that SHA). Raises SourceError."""
        ...


def pinned_image(ref: str, resolver: PinResolver) -> str:
    repo, _tag, digest = split_reference(ref)
    return f"{repo}@{digest or resolver.image_digest(ref)}"


def effective_track(pin: PluginPinRef, installed: Mapping[str, str]) -> str:
    """`track: none` means installed once, never moved: stay on the SHA already installed, if any."""
    sha = installed.get(pin.name, "")
    if pin.track == "none" and FULL_SHA.fullmatch(sha):
        return f"sha:{sha}"
    return pin.track


PluginKey = tuple[str, str, str | None]  # (source, effective track, path)
Installed = Mapping[str, Mapping[str, str]]  # workspace id -> plugin name -> SHA it runs


@dataclass(frozen=True)
class Resolution:
    """What upstream says right now: a digest per image reference, a commit (and content) per plugin pin."""

    images: dict[str, str] = field(default_factory=dict)  # reference -> repo@sha256:...
    plugins: dict[PluginKey, PluginPinRef] = field(default_factory=dict)

    def key(self) -> tuple[object, ...]:
        """A hashable value that changes when anything upstream moved (for caching the pinned state)."""
        plugins = sorted((k, p.resolved_sha, p.content_hash, p.skills_hash) for k, p in self.plugins.items())
        return (tuple(sorted(self.images.items())), tuple((repr(k), *rest) for k, *rest in plugins))


def resolve_upstream(
    state: DesiredState,
    resolver: PinResolver,
    installed: Installed | None = None,
) -> Resolution:
    """Ask upstream once per distinct image reference and plugin pin (the only I/O of pinning)."""
    installed = installed or {}
    found = Resolution()
    for ws in state.workspaces:
        if not ws.provisioned:
            continue
        if ws.image and ws.image not in found.images:
            found.images[ws.image] = pinned_image(ws.image, resolver)
        for pin in ws.plugins:
            track = effective_track(pin, installed.get(ws.id, {}))
            key = (pin.source, track, pin.path)
            if key not in found.plugins:
                sha, local = resolver.plugin(pin.model_copy(update={"track": track}))
                files = scan_files(local, local, f"plugin {pin.name}@{sha[:12]}", Location("plugins.yaml"))
                found.plugins[key] = pin.model_copy(update={
                    "resolved_sha": sha, "local_path": str(local),
                    "content_hash": files.content_hash, "skills_hash": files.skills_hash,
                })
    return found


def apply_resolution(state: DesiredState, found: Resolution, installed: Installed) -> DesiredState:
    """Digests and plugin SHAs filled in, spec hashes recomputed. Pure."""
    out: list[DesiredWorkspace] = []
    for ws in state.workspaces:
        if not ws.provisioned:
            out.append(ws)
            continue
        update: dict[str, object] = {}
        if ws.image:
            update["image_digest"] = found.images[ws.image]
        update["plugins"] = tuple(
            found.plugins[(pin.source, effective_track(pin, installed.get(ws.id, {})), pin.path)].model_copy(
                update={"name": pin.name, "track": pin.track})
            for pin in ws.plugins
        )
        out.append(with_spec(ws.model_copy(update=update)))
    return state.model_copy(update={"workspaces": tuple(out)})


def resolve_pins(
    state: DesiredState,
    resolver: PinResolver,
    installed: Installed | None = None,
) -> DesiredState:
    """Digests and plugin SHAs filled in, spec hashes recomputed. `installed` is {workspace id:
    {plugin name: SHA}} as the backend reports it (`ObservedWorkspace.plugins`): a `track: none`
    plugin stays on that SHA; only a workspace that does not have it yet gets the current HEAD."""
    return apply_resolution(state, resolve_upstream(state, resolver, installed), installed or {})
