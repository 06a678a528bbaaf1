"""Render a whole config repository (a directory: a checkout or a tree exported at one SHA).

    reconciler.yaml  plugins.yaml  images.yaml  orgs/<org>/org.yaml

Returns the DesiredState, or raises ConfigErrors carrying every problem found, each with
file:line:column. Nothing here talks to a backend; `!external` goes through the fetcher given.

With `per_org=True` (what a pass uses) a problem inside `orgs/<org>/` fails that org only: the
state lists it in `failed_orgs` (first error's file:line, every error) and holds none of its
workspaces, and the other orgs render as usual. Still raised for the whole commit: a problem in
`reconciler.yaml`, `plugins.yaml`, `images.yaml` or the layout (no `orgs/`, an org directory name
that is not a slug), a `PolicyRefusal` anywhere, and every org failing at once (nothing would be
left to converge: the same as a broken commit). `validate`, `render` and `pins` keep the default:
any error fails the render.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from pydantic import BaseModel

from reconciler.errors import ConfigError, ConfigErrors, Location, PolicyRefusal
from reconciler.model.config import KEY_PATTERN, ImagesFile, PluginsFile, ReconcilerFile
from reconciler.model.desired import DesiredState, OrgFailure
from reconciler.model.policy import Policy
from reconciler.render.images import image_for
from reconciler.render.loader import LocDict, TreeContext, load_yaml
from reconciler.render.orgs import OrgRenderer
from reconciler.render.references import ExternalFetcher, source_refusal
from reconciler.render.validate import Broken, broken_at, locate, validate_partial
from reconciler.secrets import SecretStore

M = TypeVar("M", bound=BaseModel)
__all__ = ["ExternalFetcher", "load_settings", "render_repo"]


def _load_optional(
    model: type[M], root: Path, ctx: TreeContext, name: str, errors: list[ConfigError], entries: tuple[str, ...] = ()
) -> tuple[M | None, Any, Broken]:
    """One root file: (what is valid of it, its located data, {failed part: where}). A part that failed
    is kept out, so what depends on the rest is still checked, and what depends on it follows."""
    path = root / name
    if not path.is_file():
        return None, None, {}
    try:
        data = load_yaml(path, ctx)
    except ConfigError as exc:
        errors.append(exc)
        return None, None, {(): exc.location or Location(name)}
    parsed, errs, broken = validate_partial(model, data if data is not None else {}, Location(name), entries)
    errors.extend(errs)
    return parsed, data, broken


def load_settings(root: Path) -> ReconcilerFile:
    """`reconciler.yaml` alone (defaults when absent); raises ConfigErrors when invalid."""
    root = Path(os.path.realpath(root))
    errors: list[ConfigError] = []
    settings, _, _ = _load_optional(ReconcilerFile, root, TreeContext(root, root), "reconciler.yaml", errors)
    if errors:
        raise ConfigErrors(errors)
    return settings or ReconcilerFile()


def render_repo(
    root: Path,
    *,
    fetcher: ExternalFetcher | None = None,
    secrets: SecretStore | None = None,
    revision: str | None = None,
    policy: Policy | None = None,
    per_org: bool = False,
) -> DesiredState:
    """The desired state of the tree at `root`, within the operator's `policy` (none given: nothing
    outside the repo may be reached). `per_org`: an org's own errors fail that org only (see above)."""
    policy = policy or Policy()
    root = Path(os.path.realpath(root))
    if not root.is_dir():
        raise ConfigErrors([ConfigError(f"{root} is not a directory")])
    ctx = TreeContext(root, root)
    errors: list[ConfigError] = []
    settings, settings_data, settings_broken = _load_optional(ReconcilerFile, root, ctx, "reconciler.yaml", errors)
    settings = settings or ReconcilerFile()
    errors.extend(check_within_policy(settings, settings_data, policy, settings_broken))
    plugins, plugins_data, plugins_broken = _load_optional(PluginsFile, root, ctx, "plugins.yaml", errors, ("plugins",))
    plugins = plugins or PluginsFile()
    images, images_data, images_broken = _load_optional(ImagesFile, root, ctx, "images.yaml", errors, ("images",))
    errors.extend(_check_plugin_sources(plugins, plugins_data, settings, policy))
    errors.extend(_check_registries(images, images_data, policy, images_broken))
    orgs_dir = root / "orgs"
    if not orgs_dir.is_dir():
        errors.append(
            ConfigError(
                "not a config repository: no orgs/ directory (expected orgs/<org>/org.yaml)", Location(str(root))
            )
        )
        raise ConfigErrors(errors)
    renderer = OrgRenderer(settings, dict(plugins.plugins), images, fetcher, secrets, policy,
                           broken={"reconciler.yaml": settings_broken, "plugins.yaml": plugins_broken,
                                   "images.yaml": images_broken})
    by_org: dict[str, list[ConfigError]] = {}  # every org directory -> its own errors
    manual: list[str] = []  # orgs whose org.yaml asks for manual production
    for org_dir in sorted(p for p in orgs_dir.iterdir() if p.is_dir()):
        org = org_dir.name
        org_file = org_dir / "org.yaml"
        where = Location(ctx.display(org_file))
        if not re.match(KEY_PATTERN, org):
            errors.append(ConfigError(f"org directory name {org!r} must be a lowercase slug ({KEY_PATTERN})", where))
            continue
        own = by_org.setdefault(org, [])
        if not org_file.is_file():
            own.append(ConfigError(f"orgs/{org}/ has no org.yaml; add one or remove the directory", where))
            continue
        try:
            data = load_yaml(org_file, TreeContext(root, org_dir))
        except ConfigError as exc:
            own.append(exc)
            continue
        own.extend(renderer.render_org(org, data, TreeContext(root, org_dir), where))
        own.extend(_check_production(data, policy, where))
        if isinstance(data, LocDict) and data.get("production") == "manual":
            manual.append(org)
    failed = {org: own for org, own in by_org.items() if own}
    in_orgs = [e for own in failed.values() for e in own]
    scoped = per_org and not any(isinstance(e, PolicyRefusal) for e in in_orgs) and len(failed) < len(by_org)
    if errors or (in_orgs and not scoped):
        raise ConfigErrors(errors + in_orgs)
    workspaces = tuple(sorted((w for w in renderer.workspaces if w.org not in failed), key=lambda w: w.id))
    return DesiredState(revision=revision, root=str(root), workspaces=workspaces,
                        orgs=tuple(org for org in by_org if org not in failed),
                        manual_orgs=tuple(org for org in manual if org not in failed),
                        failed_orgs=tuple(org_failure(org, own) for org, own in failed.items()))


def org_failure(org: str, errors: list[ConfigError]) -> OrgFailure:
    """The failure of one org: its first error (by file, line) as the cause, every error listed but
    those that only follow from another one (a cause is followed by an indented line saying how many)."""
    together = ConfigErrors(errors)
    first = together.errors[0]
    at = first.location or Location(f"orgs/{org}/org.yaml")
    return OrgFailure(org=org, file=at.file, line=at.line, column=at.column, message=first.message,
                      errors=tuple(str(together).splitlines()))


def check_within_policy(
    settings: ReconcilerFile, data: Any, policy: Policy, broken: Broken | None = None
) -> list[ConfigError]:
    """reconciler.yaml may narrow the operator policy, never widen it. A setting that failed to load
    is checked at its default, and an error about that default only follows from the failure."""
    errors: list[ConfigError] = []
    broken = broken or {}

    def at(*path: str | int) -> Location:
        return locate(data, path, Location("reconciler.yaml"))

    for i, prefix in enumerate(settings.allowed_sources):
        if not policy.within(prefix):
            errors.append(ConfigError(
                f"allowed_sources entry {prefix!r} is not within {policy.origin} (sources: "
                f"{', '.join(policy.sources) or 'none'}); the repo may only narrow it", at("allowed_sources", i)))
    if settings.docker.network not in policy.docker.networks:
        errors.append(ConfigError(
            f"docker.network {settings.docker.network!r} is not allowed by {policy.origin} "
            f"(networks: {', '.join(policy.docker.networks) or 'none'})", at("docker", "network"),
            follows=broken_at(broken, "docker", "network")))
    if settings.max_delete is not None and policy.max_delete is not None and settings.max_delete > policy.max_delete:
        errors.append(ConfigError(
            f"max_delete {settings.max_delete} is above the ceiling of {policy.origin} ({policy.max_delete})",
            at("max_delete")))
    if "max_workspaces" in settings.limits.model_fields_set and settings.limits.max_workspaces > policy.max_workspaces:
        errors.append(ConfigError(
            f"limits.max_workspaces {settings.limits.max_workspaces} is above the ceiling of {policy.origin} "
            f"({policy.max_workspaces})", at("limits", "max_workspaces")))
    return errors


def _check_production(data: Any, policy: Policy, where: Location) -> list[ConfigError]:
    """An org's `production` may make the policy's stricter (`manual` under `auto`), never looser."""
    if policy.production == "manual" and isinstance(data, LocDict) and data.get("production") == "auto":
        return [PolicyRefusal(f"production 'auto' is not allowed by {policy.origin} (production: manual); an org "
                              "may only make it stricter: remove it or say manual", locate(data, ("production",),
                                                                                         where))]
    return []


def _check_registries(images: ImagesFile | None, data: Any, policy: Policy, broken: Broken) -> list[ConfigError]:
    errors: list[ConfigError] = []
    prefix_failed = broken_at(broken, "registry_prefix")  # the references are checked without it
    for runtime in (images.images if images else {}):
        ref = image_for(runtime, images)
        if ref and not policy.registry_allowed(ref):
            shown = ", ".join(policy.registries) or "none"
            errors.append(ConfigError(
                f"image {ref!r} is from a registry {policy.origin} does not allow (registries: {shown}); only the "
                "operator can allow one: add it to `registries` in the policy file",
                locate(data, ("images", runtime), Location("images.yaml")), follows=prefix_failed))
    return errors


def _check_plugin_sources(
    plugins: PluginsFile, data: Any, settings: ReconcilerFile, policy: Policy
) -> list[ConfigError]:
    errors = []
    for name, pin in plugins.plugins.items():
        parsed = urlparse(pin.source)
        where = locate(data, ("plugins", name, "source"), Location("plugins.yaml"))
        if parsed.scheme not in ("http", "https") or parsed.username or parsed.password:
            errors.append(
                ConfigError(
                    f"plugin {name!r}: source must be an http(s) git URL without credentials, got {pin.source!r}", where
                )
            )
        elif why := source_refusal(f"{parsed.netloc}{parsed.path}".removesuffix(".git"), policy,
                                   settings.allowed_sources):
            errors.append(ConfigError(f"plugin {name!r}: source {pin.source!r} {why}", where))
        if pin.path and (pin.path.startswith("/") or ".." in Path(pin.path).parts):
            errors.append(ConfigError(f"plugin {name!r}: path must be relative and downward only", where))
    return errors
