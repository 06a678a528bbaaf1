"""Desired state: what the config repo at one revision says should run. Never holds a secret value."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from reconciler.errors import Location
from reconciler.model.config import Health, Resources
from reconciler.model.enums import Tier

# env the reconciler sets from other fields of the workspace; a config may not set them itself
RESERVED_ENV = frozenset({"WORKSPACE_ID", "WORKSPACE_NAME", "PARENT_ID", "AGENT_MODEL", "AGENT_ROLE", "AGENT_RUNTIME"})


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PluginSource(Frozen):
    """A plugin as `plugins.yaml` declares it: where it comes from and how it is followed."""

    name: str
    source: str
    track: str
    path: str | None = None


class PluginPinRef(PluginSource):
    """A plugin as one workspace uses it. `resolved_sha` is filled by pin resolution."""
    resolved_sha: str | None = None
    local_path: str | None = None  # cached checkout of resolved_sha (plugin subdir applied), for install
    content_hash: str | None = None  # tree content without SKILL.md files (filled once fetched)
    skills_hash: str | None = None  # SKILL.md content only


class FileEntry(Frozen):
    path: str  # relative, '/'-separated
    sha256: str
    size: int


class FilesRef(Frozen):
    """The `files_dir` of a workspace: where it sits in the rendered tree and its content hashes."""

    root: str  # absolute directory on disk (inside the rendered tree at that revision)
    display: str  # repo-relative path for messages
    entries: tuple[FileEntry, ...] = ()
    content_hash: str = ""  # every file except SKILL.md ones
    skills_hash: str = ""  # SKILL.md files only: a change there alone needs no restart


class DesiredWorkspace(Frozen):
    id: str  # <org>/<key>
    org: str
    key: str
    name: str
    role: str | None = None
    tier: Tier = Tier.PRODUCTION
    runtime: str
    provisioned: bool = True  # False for runtime `external`: tracked, never provisioned
    model: str | None = None
    image: str | None = None  # reference from images.yaml
    image_digest: str | None = None  # repo@sha256:... once resolved
    parent: str | None = None
    env: dict[str, str] = Field(default_factory=dict)  # plain env incl. the RESERVED_ENV ones
    secrets: tuple[str, ...] = ()
    secret_digests: dict[str, str] = Field(default_factory=dict)  # name -> keyed hash, never the value
    required_env: tuple[str, ...] = ()
    plugins: tuple[PluginPinRef, ...] = ()
    files: FilesRef | None = None
    resources: Resources | None = None
    health: Health | None = None
    source: Location
    spec_parts: dict[str, str] = Field(default_factory=dict)  # component -> short hash
    spec_hash: str = ""


class OrgFailure(Frozen):
    """One org whose template did not render: its running workspaces are kept as they are, the other
    orgs converge. `file`/`line`/`column`/`message` are its first error; `errors` all of them, one line each."""

    org: str
    file: str
    line: int = 0
    column: int = 0
    message: str
    errors: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return str(Location(self.file, self.line, self.column))

    def first(self) -> str:
        """`file:line:col: message` of the first error."""
        return f"{self.where}: {self.message}"


class DesiredState(Frozen):
    revision: str | None = None
    root: str  # absolute path of the rendered tree
    workspaces: tuple[DesiredWorkspace, ...] = ()
    orgs: tuple[str, ...] = ()  # the orgs that rendered (their workspaces are above, maybe none)
    failed_orgs: tuple[OrgFailure, ...] = ()  # the orgs that did not: nothing of theirs is desired or deleted
    manual_orgs: tuple[str, ...] = ()  # orgs whose org.yaml says `production: manual` (the policy may say it for all)

    def failed(self) -> frozenset[str]:
        return frozenset(f.org for f in self.failed_orgs)

    def by_id(self) -> dict[str, DesiredWorkspace]:
        return {w.id: w for w in self.workspaces}
