"""The planner: desired state + observed workspaces -> ordered actions with reasons. Pure.

No I/O and no clock: pins are resolved and the backend observed before this runs. Steps:

1. pair desired and observed by identity (`<org>/<key>`);
2. classify each pair: desired only -> CREATE, observed only -> DELETE (NOOP in merge mode), both ->
   NOOP / UPDATE (only files, plugins or SKILL.md differ; no restart when only SKILL.md did) /
   RECREATE (anything else, or not running), from the per-component `spec_parts`. What runs for
   an org that failed to render (`desired.failed_orgs`) is NOOP, copies included: nothing of it is
   desired, and nothing of it may be deleted or changed on the strength of a broken template;
3. order: canary tier first, then production; inside a tier deletes last; by id.

Holds (`holds.py`) and guards (`guards.py`) come after, in `reconciler.plan.plan`.

Reasons name what differs (env key names, secret names, image references) and never a value.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.model.desired import DesiredState, DesiredWorkspace
from reconciler.model.enums import TIER_ORDER, ActionKind, Mode
from reconciler.model.observed import ObservedWorkspace, split_current
from reconciler.model.plan import Action, Plan

IN_PLACE = frozenset({"files", "plugins", "skills", "plugin"})
NO_RESTART = frozenset({"skills", "plugin"})  # `plugin.<name>`: the pinned SHA alone (content has own parts)
# Order in which reasons name components; unknown components follow, sorted.
REASON_ORDER = ("image", "plugin", "runtime", "model", "role", "name", "tier", "parent", "resources", "health",
                "env", "secret", "plugins", "files", "skills")

EXTERNAL_REASON = "runtime external: operator-run, not provisioned"
FAILED_ORG_REASON = "kept: its org failed to render"


def diff(desired: DesiredState, actual: Sequence[ObservedWorkspace], mode: Mode = Mode.RECONCILE) -> Plan:
    """The ordered actions that turn `actual` into `desired` (before holds and guards)."""
    wanted = desired.by_id()
    failed = desired.failed()
    observed, duplicates = split_current(actual)
    actions: list[Action] = []
    for ws_id in sorted(wanted.keys() | observed.keys()):
        want, have = wanted.get(ws_id), observed.get(ws_id)
        if want is not None:
            actions.append(classify(want, have))
        elif have is not None:
            actions.append(_kept(have) if org_of(ws_id) in failed else _unwanted(have, "not in repo", mode))
    actions += [_kept(o) if org_of(o.id) in failed else _unwanted(o, f"duplicate of {o.id}", mode)
                for o in duplicates]
    return Plan(revision=desired.revision, mode=mode, actions=tuple(sorted(actions, key=_order_key)),
                orgs=desired.orgs, failed_orgs=desired.failed_orgs)


def org_of(workspace_id: str) -> str:
    """`<org>/<key>` -> `<org>`."""
    return workspace_id.partition("/")[0]


def classify(want: DesiredWorkspace, have: ObservedWorkspace | None) -> Action:
    """The action for one desired workspace and what runs for it (if anything)."""

    def act(kind: ActionKind, reason: str, restart: bool = True) -> Action:
        return Action(kind=kind, workspace_id=want.id, tier=want.tier, reason=reason,
                      desired=want, observed=have, restart=restart)

    if not want.provisioned:
        return act(ActionKind.NOOP, EXTERNAL_REASON)
    if have is None:
        return act(ActionKind.CREATE, "not running")
    if not have.running:
        return act(ActionKind.RECREATE, "container not running")
    if have.spec_hash == want.spec_hash:
        return act(ActionKind.NOOP, "up to date")
    changed = changed_parts(want.spec_parts, have.spec_parts)
    if not have.spec_parts or not changed:
        return act(ActionKind.RECREATE, "spec hash differs")
    components = {_component(k) for k in changed}
    reason = describe(changed, want, have)
    if components <= NO_RESTART:
        return act(ActionKind.UPDATE, f"{reason}: no restart", restart=False)
    if components <= IN_PLACE:
        return act(ActionKind.UPDATE, f"{reason}: in place, restart")
    return act(ActionKind.RECREATE, reason)


def changed_parts(want: dict[str, str], have: dict[str, str]) -> list[str]:
    """Part keys whose hash differs or that exist on one side only, sorted."""
    return sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))


def describe(changed: list[str], want: DesiredWorkspace, have: ObservedWorkspace) -> str:
    """One reason naming every differing component (names only, never values)."""
    by_component: dict[str, list[str]] = {}
    for key in changed:
        by_component.setdefault(_component(key), []).append(key)
    known = [c for c in REASON_ORDER if c in by_component]
    rest = sorted(c for c in by_component if c not in REASON_ORDER)
    phrases: list[str] = []
    for component in known + rest:
        keys = by_component[component]
        phrases.extend(_phrase(component, keys, want, have))
    return "; ".join(phrases)


def _phrase(component: str, keys: list[str], want: DesiredWorkspace, have: ObservedWorkspace) -> list[str]:
    if component == "image":
        return [_image_phrase(want, have)]
    if component == "plugin":
        return [_plugin_phrase(key.split(".", 1)[-1], want, have) for key in keys]
    if component == "tier":
        return [f"tier {have.tier.value} → {want.tier.value}"]
    if component == "parent":
        return [f"moved under {want.parent}" if want.parent else "moved to top level"]
    if component == "runtime":
        return [f"runtime → {want.runtime}"]
    if component == "health":
        return ["health check changed"]
    if component == "skills":
        return ["SKILL.md changed"]
    if component in ("env", "secret"):
        return _keyed(component, keys, want, have)
    return [f"{component} changed"]


def _short(ref: str) -> str:
    """`repo@sha256:<64 hex>` or `sha256:...` -> `sha256:<12 hex>`; a commit SHA -> 7 hex."""
    digest = ref.rpartition("@")[2]
    if digest.startswith("sha256:"):
        return digest[: len("sha256:") + 12]
    return digest[:7] if len(digest) == 40 else digest


def _image_phrase(want: DesiredWorkspace, have: ObservedWorkspace) -> str:
    """`image x:latest: sha256:aa… → sha256:bb…` when a tag moved; else the two references."""
    new = want.image_digest or want.image or "unknown"
    old = have.image or "unknown"
    same_repo = old.partition("@")[0] == new.partition("@")[0]
    if want.image and "@" not in want.image and "@" in old and "@" in new and same_repo:
        name = want.image.rsplit("/", 1)[-1]
        return f"image {name if ':' in name else name + ':latest'}: {_short(old)} → {_short(new)}"
    return f"image {old} → {new}"


def _plugin_phrase(name: str, want: DesiredWorkspace, have: ObservedWorkspace) -> str:
    """`plugin X: tag v1.2 moved abc1234 → def5678` (names refs and commits, never content)."""
    pin = next((p for p in want.plugins if p.name == name), None)
    if pin is None:
        return f"plugin {name} removed"
    old, new = have.plugins.get(name), pin.resolved_sha or pin.track
    if f"plugin.{name}" not in have.spec_parts:
        return f"plugin {name} added at {_short(new)}"
    kind, _, ref = pin.track.partition(":")
    what = f"{kind} {ref} moved" if kind in ("tag", "branch") else f"{kind} pin"
    return f"plugin {name}: {what} {_short(old) + ' → ' if old else 'now '}{_short(new)}"


def _keyed(component: str, keys: list[str], want: DesiredWorkspace, have: ObservedWorkspace) -> list[str]:
    names = {k: k.split(".", 1)[1] if "." in k else k for k in keys}
    added = [names[k] for k in keys if k in want.spec_parts and k not in have.spec_parts]
    removed = [names[k] for k in keys if k not in want.spec_parts and k in have.spec_parts]
    changed = [names[k] for k in keys if k in want.spec_parts and k in have.spec_parts]
    label = "env" if component == "env" else "secret"
    out = []
    if changed:
        out.append(f"{'env changed' if label == 'env' else 'secrets rotated'}: {', '.join(changed)}")
    if added:
        out.append(f"{label} added: {', '.join(added)}")
    if removed:
        out.append(f"{label} removed: {', '.join(removed)}")
    return out



def _kept(have: ObservedWorkspace) -> Action:
    return Action(kind=ActionKind.NOOP, workspace_id=have.id, tier=have.tier, reason=FAILED_ORG_REASON, observed=have)


def _unwanted(have: ObservedWorkspace, why: str, mode: Mode) -> Action:
    if mode is Mode.MERGE:
        return Action(kind=ActionKind.NOOP, workspace_id=have.id, tier=have.tier,
                      reason=f"{why}; kept (merge mode)", observed=have)
    return Action(kind=ActionKind.DELETE, workspace_id=have.id, tier=have.tier, reason=why, observed=have)


def _order_key(action: Action) -> tuple[int, bool, str, str]:
    ref = action.observed.backend_ref if action.observed else ""
    return (TIER_ORDER.index(action.tier), action.kind is ActionKind.DELETE, action.workspace_id, ref)


def _component(part_key: str) -> str:
    return part_key.split(".", 1)[0]
