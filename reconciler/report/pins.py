"""The lock view: every pin, what it resolves to now, who uses it, and what drifted. Pure.

Built from the desired state with pins resolved (`render.pins.resolve_pins`) and the observed
workspaces (the backend's labels: `reconciler.image`, `reconciler.plugins`). A pin has *drifted*
for a workspace when what runs there is not what the pin resolves to now: a moved tag or branch
upstream, a held digest that production stays off, or a change not applied yet. Workspaces
that do not run at all are listed apart (`not_running`): nothing runs there to drift. Two
renderings of one value: `render_text` for people, `model_dump(mode="json")` for machines (CI).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from reconciler.model.desired import DesiredState, PluginSource
from reconciler.model.observed import ObservedWorkspace, current_of


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PluginLock(PluginSource):
    resolved_sha: str | None
    workspaces: tuple[str, ...]


class ImageLock(_Frozen):
    runtime: str
    reference: str  # as images.yaml says (tag or digest)
    resolved: str | None  # repo@sha256:...
    workspaces: tuple[str, ...]


class Drift(_Frozen):
    workspace: str
    pin: str  # `image` or `plugin <name>`
    running: str | None  # what the backend says runs (None: not installed)
    resolved: str | None  # what the pin resolves to now (None: no longer declared)


class LockView(_Frozen):
    revision: str | None = None
    plugins: tuple[PluginLock, ...] = ()
    images: tuple[ImageLock, ...] = ()
    drift: tuple[Drift, ...] = ()
    not_running: tuple[str, ...] = ()

    @property
    def drifted(self) -> bool:
        return bool(self.drift)


def lock_view(desired: DesiredState, actual: list[ObservedWorkspace]) -> LockView:
    observed = current_of(actual)
    plugins: dict[tuple[str, str, str, str | None, str | None], list[str]] = {}
    images: dict[tuple[str, str, str | None], list[str]] = {}
    drift: list[Drift] = []
    not_running: list[str] = []
    for ws in desired.workspaces:
        if not ws.provisioned:
            continue
        if ws.image:
            images.setdefault((ws.runtime, ws.image, ws.image_digest), []).append(ws.id)
        for p in ws.plugins:
            plugins.setdefault((p.name, p.source, p.track, p.path, p.resolved_sha), []).append(ws.id)
        have = observed.get(ws.id)
        if have is None:
            not_running.append(ws.id)
            continue
        if ws.image_digest and have.image != ws.image_digest:
            drift.append(Drift(workspace=ws.id, pin="image", running=have.image, resolved=ws.image_digest))
        wanted = {p.name: p.resolved_sha for p in ws.plugins}
        for name in sorted(wanted.keys() | have.plugins.keys()):
            if wanted.get(name) != have.plugins.get(name):
                drift.append(Drift(workspace=ws.id, pin=f"plugin {name}", running=have.plugins.get(name),
                                   resolved=wanted.get(name)))
    return LockView(
        revision=desired.revision,
        plugins=tuple(PluginLock(name=k[0], source=k[1], track=k[2], path=k[3], resolved_sha=k[4],
                                 workspaces=tuple(sorted(v))) for k, v in sorted(plugins.items(), key=_key)),
        images=tuple(ImageLock(runtime=k[0], reference=k[1], resolved=k[2], workspaces=tuple(sorted(v)))
                     for k, v in sorted(images.items(), key=_key)),
        drift=tuple(drift),
        not_running=tuple(sorted(not_running)),
    )


def _key(item: tuple[tuple[str | None, ...], list[str]]) -> tuple[str, ...]:
    return tuple(part or "" for part in item[0])


def render_text(view: LockView) -> str:
    lines = [f"revision {view.revision or '(plain directory)'}", "plugins:"]
    for p in view.plugins:
        where = f"{p.source}{f' ({p.path})' if p.path else ''}"
        lines.append(f"  {p.name:<16} {p.track:<24} {p.resolved_sha or 'unresolved'}  {where}")
        lines.append(f"  {'':<16} used by {', '.join(p.workspaces)}")
    if not view.plugins:
        lines.append("  (none)")
    lines.append("images:")
    for i in view.images:
        lines.append(f"  {i.runtime:<16} {i.reference}")
        lines.append(f"  {'':<16} -> {i.resolved or 'unresolved'}")
        lines.append(f"  {'':<16} used by {', '.join(i.workspaces)}")
    if not view.images:
        lines.append("  (none)")
    if view.drift:
        lines.append(f"drift ({len(view.drift)}): what runs is not what the pins resolve to now")
        for d in view.drift:
            running, resolved = d.running or "nothing", d.resolved or "nothing"
            lines.append(f"  {d.workspace}: {d.pin}: runs {running} -> resolves to {resolved}")
    else:
        lines.append("no drift: every running workspace runs what its pins resolve to")
    if view.not_running:
        lines.append(f"not running ({len(view.not_running)}): {', '.join(view.not_running)}")
    return "\n".join(lines)
