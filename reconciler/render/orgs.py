"""Walk one org template into desired workspaces: defaults, includes, externals, identity, env.

Identity is `<org>/<key>`, independent of the parent and of the file a workspace is written in.
`!include` / `!external` are followed here (resolved by `references.py`), only where a workspace or
a list of them stands and only inside spawned subtrees. Every problem is collected (not raised) so
one run reports all; `render_org` returns the problems of that org, so the caller can fail that org
alone. What the operator policy forbids is a `PolicyRefusal` (the caller fails the whole commit for
it), and an `!external` remote that does not answer raises `SourceUnreachable` (the reconciler's
trouble, not the change's: nothing is decided on half a render).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.errors import ConfigError, Location, PolicyRefusal, ReconcilerError
from reconciler.model.config import (
    ImagesFile,
    OrgFile,
    PluginPin,
    PluginUse,
    ReconcilerFile,
    Workspace,
    WorkspaceFields,
)
from reconciler.model.desired import DesiredWorkspace, FilesRef, PluginPinRef
from reconciler.model.enums import Tier
from reconciler.model.policy import Policy
from reconciler.render.files import scan_files
from reconciler.render.images import image_for
from reconciler.render.loader import ExternalRef, IncludeRef, LocDict, LocList, TreeContext, confine
from reconciler.render.references import ExternalFetcher, load_external, load_include
from reconciler.render.spec_hash import with_spec
from reconciler.render.validate import Broken, broken_at, did_you_mean, validate, validate_partial
from reconciler.secrets import SecretStore

Problem = tuple[str, Location | None]  # a message about a workspace, and the failure it follows from (if any)


@dataclass
class OrgRenderer:
    settings: ReconcilerFile
    plugins: dict[str, PluginPin]
    images: ImagesFile | None
    fetcher: ExternalFetcher | None
    secrets: SecretStore | None
    policy: Policy = field(default_factory=Policy)
    # the root files' parts that failed to load ("plugins.yaml" -> {("plugins", "notes"): where}): an
    # error that only follows from one of them (a plugin "not declared") is marked as following it
    broken: dict[str, Broken] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)
    workspaces: list[DesiredWorkspace] = field(default_factory=list)
    _files_cache: dict[Path, FilesRef] = field(default_factory=dict)
    _defaults_broken: Broken = field(default_factory=dict)
    _defaults_item: LocDict | None = None  # the org's `defaults` as written, for the location of an entry
    # (where, what) of the problems located in the defaults: every other workspace inheriting the same
    # bad entry has the same problem, which follows from the first one told
    _told: set[tuple[str, str]] = field(default_factory=set)

    # ---- the org ---------------------------------------------------------------------------
    def render_org(self, org: str, data: Any, ctx: TreeContext, org_file: Location) -> list[ConfigError]:
        """Render one org's template into `workspaces`; returns the problems found in it (also kept in
        `errors`). Raises `SourceUnreachable` when an `!external` remote does not answer."""
        mark = len(self.errors)
        if not isinstance(data, LocDict):
            self.errors.append(ConfigError("org.yaml must be a mapping with name, defaults, workspaces", org_file))
            return self.errors[mark:]
        parsed, errs, broken = validate_partial(OrgFile, data.without("workspaces"), data.loc, ("defaults",))
        self.errors.extend(errs)
        defaults = parsed.defaults if parsed and parsed.defaults else WorkspaceFields()
        if parsed is None:  # e.g. the org's name failed: keep what is valid of the defaults on their own
            given = data.get("defaults")
            own, _, own_broken = validate_partial(WorkspaceFields, given, data.loc) if isinstance(
                given, LocDict) else (None, [], {(): data.value_locs.get("defaults", data.loc)})
            defaults = own or defaults
            broken = {("defaults", *part): at for part, at in own_broken.items()} if "defaults" in data else {}
        seen: dict[str, Location] = {}
        self._defaults_broken = broken
        given = data.get("defaults")
        self._defaults_item = given if isinstance(given, LocDict) else None
        self._walk(data.get("workspaces"), data.value_locs.get("workspaces", data.loc), org, None, defaults, seen, 0)
        return self.errors[mark:]

    def _follows(self, file: str, *path: str) -> Location | None:
        """Where the part of a root file that `path` depends on failed to load, if it did."""
        return broken_at(self.broken.get(file, {}), *path)

    def _entry_at(self, item: LocDict, field: str, name: str) -> Location:
        """Where `name` is written in the `field` list of the workspace, else of the org defaults (the
        workspace when neither holds it as written, e.g. it came from an include)."""
        for where in (item, self._defaults_item):
            entries = where.get(field) if where is not None else None
            if isinstance(entries, LocList):
                for entry, at in zip(entries, entries.item_locs, strict=True):
                    if entry == name or (isinstance(entry, LocDict) and entry.get("name") == name):
                        return at
        return item.loc

    def _from_defaults(self, *fields: str) -> Location | None:
        """Where one of the org `defaults` fields failed to load, if one did."""
        return next((at for f in fields if (at := broken_at(self._defaults_broken, "defaults", f))), None)

    def _walk(
        self,
        items: Any,
        at: Location,
        org: str,
        parent: str | None,
        defaults: WorkspaceFields,
        seen: dict[str, Location],
        depth: int,
    ) -> None:
        for item, loc in self._expand(items, at, 0):
            if not isinstance(item, LocDict):
                self.errors.append(ConfigError("a workspace must be a mapping with at least `name`", loc))
                continue
            ws, errs = validate(Workspace, item.without("children"), item.loc)
            if ws is None:
                self.errors.extend(errs)
                continue
            if not ws.spawning:
                continue  # this workspace and its whole subtree: no side effect at all
            desired = self._desired(org, ws, defaults, parent, item, seen)
            ceiling = min(self.settings.limits.max_workspaces, self.policy.max_workspaces)
            if len(self.workspaces) > ceiling:
                self.errors.append(PolicyRefusal(
                    f"more than {ceiling} workspaces; raise limits.max_workspaces in reconciler.yaml if this is "
                    f"intended (at most the max_workspaces of {self.policy.origin})", item.loc,
                    follows=self._follows("reconciler.yaml", "limits", "max_workspaces")))
                return
            if "children" in item:
                self._walk(
                    item["children"],
                    item.value_locs["children"],
                    org,
                    desired.id if desired else f"{org}/?",
                    defaults,
                    seen,
                    depth + 1,
                )

    def _expand(self, data: Any, at: Location, depth: int) -> Iterator[tuple[Any, Location]]:
        """Yield workspace mappings, resolving includes/externals and flattening lists."""
        if data is None:
            return
        if isinstance(data, LocList):
            for item, loc in zip(data, data.item_locs, strict=True):
                yield from self._expand(item, loc, depth)
        elif isinstance(data, IncludeRef):
            loaded = self._include(data, depth)
            if loaded is not None:
                yield from self._expand(loaded, data.loc, depth + 1)
        elif isinstance(data, ExternalRef):
            loaded = self._external(data)
            if loaded is not None:
                yield from self._expand(loaded, data.loc, depth + 1)
        elif isinstance(data, LocDict):
            yield data, data.loc
        else:
            self.errors.append(ConfigError(f"expected a workspace or a list of workspaces, got {data!r}", at))

    def _include(self, ref: IncludeRef, depth: int) -> Any:
        try:
            return load_include(ref, depth)
        except ConfigError as exc:
            self.errors.append(exc)
            return None

    def _external(self, ref: ExternalRef) -> Any:
        try:
            return load_external(ref, self.policy, self.settings.allowed_sources, self.fetcher)
        except ConfigError as exc:
            self.errors.append(exc)
            return None

    # ---- one workspace ---------------------------------------------------------------------
    def _desired(
        self,
        org: str,
        ws: Workspace,
        defaults: WorkspaceFields,
        parent: str | None,
        item: LocDict,
        seen: dict[str, Location],
    ) -> DesiredWorkspace | None:
        problems: list[Problem] = []  # messages located at the workspace itself
        refusals: list[str] = []  # the same, for what the operator policy forbids
        located: list[ConfigError] = []  # messages with a more precise location
        key = ws.key or slug(ws.name)
        if not key:
            self.errors.append(ConfigError(f"cannot derive a key from name {ws.name!r}; set `key:`", item.loc))
            return None
        if key in seen:
            self.errors.append(
                ConfigError(
                    f"duplicate workspace key {key!r} in org {org!r}: also at {seen[key]}; "
                    "give one of them its own `key`",
                    item.loc,
                )
            )
            return None
        seen[key] = item.loc
        ident = f"{org}/{key}"
        runtime = ws.runtime or defaults.runtime
        if not runtime:
            problems.append(("runtime is required (set it on the workspace or in the org defaults)",
                             self._from_defaults("runtime")))
        provisioned = runtime != "external"
        image = None
        if runtime and provisioned:
            image = image_for(runtime, self.images)
            if image is None:
                cause = self._follows("images.yaml", "images", runtime)
                hint = did_you_mean(runtime, self.images.images if self.images else ())
                problems.append((f"runtime {runtime!r} has no image in images.yaml{hint}"
                                 if hint else f"runtime {runtime!r} has no image in images.yaml; add `{runtime}: "
                                 "<image>` there", cause))
        env = {**(defaults.env or {}), **(ws.env or {})}
        reserved_names = self.policy.reserved()
        reserved = sorted(reserved_names & set(env))
        if reserved:
            refusals.append(f"env {', '.join(reserved)} is reserved (set by the reconciler or by "
                            f"{self.policy.origin}); remove it from env")
        plain = dict(env)  # strings only: the model refuses what YAML read as a number or boolean
        model, role = ws.model or defaults.model, ws.role or defaults.role
        plain.update({"WORKSPACE_ID": ident, "WORKSPACE_NAME": ws.name, "AGENT_RUNTIME": runtime or ""})
        if parent:
            plain["PARENT_ID"] = parent
        if model:
            plain["AGENT_MODEL"] = model
        if role:
            plain["AGENT_ROLE"] = role
        secrets = _union(defaults.secrets, ws.secrets)
        shadowing = sorted(reserved_names & set(secrets))
        if shadowing:
            refusals.append(f"secret(s) {', '.join(shadowing)} would shadow a reserved env name (set by the "
                            f"reconciler or by {self.policy.origin}); rename the secret")
        digests = self._secret_digests(org, key, secrets, problems, located, item)
        required = _union(defaults.required_env, ws.required_env)
        missing_env = [n for n in required if n not in plain and n not in secrets]
        if missing_env:
            them = "it" if len(missing_env) == 1 else "them"
            located.append(ConfigError(
                f"required_env missing: {', '.join(missing_env)} (set {them} in env or secrets, on this "
                "workspace or in the org defaults)", self._entry_at(item, "required_env", missing_env[0]),
                follows=self._from_defaults("env", "secrets")))
        plugins = self._plugins(defaults.plugins, ws.plugins, problems, located, item)
        files = self._files(ws.files_dir or defaults.files_dir, item, located)
        resources = ws.resources or defaults.resources
        if ws.resources and defaults.resources:
            resources = defaults.resources.model_copy(update=ws.resources.model_dump(exclude_none=True))
        over = self.policy.over_ceiling(resources) if resources else []
        if over:
            refusals.append(f"resources above the ceiling of {self.policy.origin}: {', '.join(over)}")
        if problems or refusals or located:
            self.errors.extend(ConfigError(f"{ident}: {p}", item.loc, follows=cause) for p, cause in problems)
            self.errors.extend(PolicyRefusal(f"{ident}: {p}", item.loc) for p in refusals)
            for e in located:
                told = (str(e.location), e.message)
                follows = e.follows or (e.location if told in self._told else None)
                self._told.add(told)
                self.errors.append(ConfigError(f"{ident}: {e.message}", e.location, follows=follows))
            return None
        desired = with_spec(
            DesiredWorkspace(
                id=ident,
                org=org,
                key=key,
                name=ws.name,
                role=role,
                tier=ws.tier or defaults.tier or Tier.PRODUCTION,
                runtime=runtime or "",
                provisioned=provisioned,
                model=model,
                image=image,
                parent=parent,
                env=plain,
                secrets=tuple(secrets),
                secret_digests=digests,
                required_env=tuple(required),
                plugins=tuple(plugins),
                files=files,
                resources=resources,
                health=ws.health or defaults.health,
                source=item.loc,
            )
        )
        self.workspaces.append(desired)
        return desired

    def _secret_digests(self, org: str, key: str, secrets: list[str], problems: list[Problem],
                        located: list[ConfigError], item: LocDict) -> dict[str, str]:
        """name -> keyed hash of each secret; a missing or unreadable one is a problem of this workspace
        (so of its org only), whatever the reason the file cannot be read."""
        if self.secrets is None:
            return {}
        digests: dict[str, str] = {}
        missing: list[str] = []
        for name in secrets:
            try:
                if not self.secrets.has(org, key, name):
                    missing.append(name)
                    continue
                digests[name] = self.secrets.digest(org, key, name)
            except ReconcilerError as exc:  # names the secret and its path, never its content
                problems.append((str(exc), None))
            except OSError as exc:  # a directory on the lookup path cannot be searched
                problems.append((f"secret {name} cannot be looked up: {exc.strerror or type(exc).__name__}"
                                 f"{f' ({exc.filename})' if exc.filename else ''}", None))
        if missing:
            located.append(ConfigError(missing_secrets(self.secrets.directory, org, key, missing),
                                       self._entry_at(item, "secrets", missing[0])))
        return digests

    def _plugins(self, base: list[Any] | None, own: list[Any] | None, problems: list[Problem],
                 located: list[ConfigError], item: LocDict) -> list[PluginPinRef]:
        chosen: dict[str, str | None] = {}
        for entry in (base or []) + (own or []):
            name, track = (entry.name, entry.track) if isinstance(entry, PluginUse) else (entry, None)
            chosen[name] = track
        out = []
        for name, track in chosen.items():
            pin = self.plugins.get(name)
            if pin is None:
                located.append(ConfigError(
                    f"plugin {name!r} is not declared in plugins.yaml{did_you_mean(name, self.plugins)}",
                    self._entry_at(item, "plugins", name), follows=self._follows("plugins.yaml", "plugins", name)))
                continue
            out.append(PluginPinRef(name=name, source=pin.source, track=track or pin.track, path=pin.path))
        return sorted(out, key=lambda p: p.name)

    def _files(self, files_dir: str | None, item: LocDict, problems: list[ConfigError]) -> FilesRef | None:
        if not files_dir:
            return None
        ctx = item.ctx
        at = item.value_locs.get("files_dir", item.loc)
        try:
            directory = confine(ctx.root, ctx.files_base, files_dir, "files_dir", at)
            if directory not in self._files_cache:
                self._files_cache[directory] = scan_files(directory, ctx.root, ctx.display(directory), at)
            return self._files_cache[directory]
        except ConfigError as exc:
            problems.append(exc)
            return None


def missing_secrets(directory: Path | None, org: str, key: str, names: list[str]) -> str:
    """Why secrets were not found, naming the real paths looked at (and the directory, when it is not there)."""
    what = f"secret {names[0]}" if len(names) == 1 else f"secrets {', '.join(names)}"
    if directory is None:
        return f"{what} cannot be looked up: no secrets directory is configured (give --secrets-dir)"
    if not directory.is_dir():
        return f"{what} not found: the secrets directory {directory} does not exist (--secrets-dir)"
    if len(names) == 1:
        paths = ", ".join(str(d / names[0]) for d in (directory / org / key, directory / org, directory))
        return f"{what} not found in the secrets directory {directory}: create one of {paths}"
    return (f"{what} not found in the secrets directory {directory} (looked in {directory / org / key}/, "
            f"{directory / org}/, {directory}/)")


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63].strip("-")


def _union(*lists: list[str] | None) -> list[str]:
    out: list[str] = []
    for items in lists:
        out.extend(i for i in items or [] if i not in out)
    return out

