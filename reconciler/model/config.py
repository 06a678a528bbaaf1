"""Pydantic models of every file in the config repository: the contract operators write.

`schemas/*.schema.json` are generated from these models (`python -m reconciler.render.schema`)
and a test checks the checked-in copies never drift. Unknown keys are errors everywhere.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from reconciler.model.enums import Mode, Tier
from reconciler.model.refs import REF_CHARS, SHA_HEX

KEY_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
TRACK_PATTERN = rf"^(none|tag:{REF_CHARS}|branch:{REF_CHARS}|sha:{SHA_HEX})$"
TRACK_HINT = "use one of none, tag:<name>, branch:<name>, sha:<40 hex>"
RUNTIME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
MEMORY_PATTERN = r"^[0-9]+[kmgKMG]?$"
HEALTH_PATH_PATTERN = r"^/[A-Za-z0-9_./-]*$"
NETWORK_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

# What each pattern means, in the words an error message uses ("... must be <words>, got '256mb'").
PATTERN_WORDS = {
    KEY_PATTERN: "a lowercase slug (a-z, 0-9 and '-', at most 63 characters, no '-' at either end)",
    ENV_NAME_PATTERN: "an env name (letters, digits and '_', not starting with a digit)",
    TRACK_PATTERN: "one of none, tag:<name>, branch:<name>, sha:<40 hex>",
    RUNTIME_PATTERN: "a runtime name (lowercase letters, digits, '_' and '-')",
    MEMORY_PATTERN: "a size like 512m or 2g (digits, then k, m or g)",
    HEALTH_PATH_PATTERN: "an HTTP path starting with / (letters, digits, '_', '.', '/' and '-')",
    NETWORK_PATTERN: "a docker network name (letters, digits, '_', '.' and '-')",
}

ENV_VALUE_MAX = 32 * 1024  # characters per env value; longer text belongs in files_dir


def _env_value(value: str) -> str:
    """An env value reaches a process environment: no NUL or other control character but tab/newline."""
    bad = next((c for c in value if (ord(c) < 0x20 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F), None)
    if bad is not None:
        raise ValueError(f"contains the control character U+{ord(bad):04X}; only tab and newline may appear")
    return value


EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN, max_length=128)]
EnvValue = Annotated[str, Field(max_length=ENV_VALUE_MAX), AfterValidator(_env_value)]
Track = Annotated[str, Field(pattern=TRACK_PATTERN, description=f"How to follow the source: {TRACK_HINT}")]


# The image reference grammar of docker/distribution (`reference/regexp.go`), ASCII only.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"  # `-+`, not `-*`: same language, no backtracking blow-up
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST = "|".join(f"{algorithm}:[0-9a-f]{{{n}}}" for algorithm, n in DIGEST_HEX.items())
IMAGE_REF_PATTERN = rf"^(?P<name>{_NAME})(?::{_TAG})?(?:@(?:{_DIGEST}))?$"
IMAGE_REF_MAX = 512  # characters; the repository name alone at most 255 (distribution's limit)
_IMAGE_REF = re.compile(IMAGE_REF_PATTERN)


def image_reference_problem(ref: str) -> str | None:
    """What is wrong with an image reference (None: it is valid), in words a config author can act on."""
    if len(ref) > IMAGE_REF_MAX:
        return f"is {len(ref)} characters long, over the {IMAGE_REF_MAX} limit"
    match = _IMAGE_REF.fullmatch(ref)
    if match:
        name = match.group("name")
        return None if len(name) <= 255 else f"repository name is {len(name)} characters, over the 255 limit"
    name, at, digest = ref.partition("@")
    if at and not re.fullmatch(_DIGEST, digest):
        return (f"digest {digest!r} must be sha256: and 64 lowercase hex digits "
                "(or sha384: and 96, sha512: and 128)")
    last = name.rpartition("/")[2]
    if ":" in last:
        tag = last.split(":", 1)[1]
        if not re.fullmatch(_TAG, tag):
            return f"tag {tag!r} must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
    return ("must be [host[:port]/]path[:tag][@digest] with a lowercase path (a-z, 0-9, single '.', '_' "
            "or '__', or dashes between them)")


def _image_reference(ref: str) -> str:
    problem = image_reference_problem(ref)
    if problem:
        raise ValueError(f"image reference {ref!r} {problem}")
    return ref


def _registry_prefix(prefix: str) -> str:
    if len(prefix) > 255 or not re.fullmatch(rf"{_DOMAIN}(?:/{_PATH_COMPONENT})*/?", prefix):
        raise ValueError(f"registry_prefix {prefix!r} must be a registry host[:port], optionally with a "
                         "lowercase path, e.g. registry.example.com:5000/team")
    return prefix


ImageRef = Annotated[
    str,
    AfterValidator(_image_reference),
    Field(
        description="repo[:tag] or repo@sha256:<64 hex> (the docker/distribution reference grammar)",
        json_schema_extra={"pattern": IMAGE_REF_PATTERN.replace("(?P<name>", "("), "maxLength": IMAGE_REF_MAX},
    ),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(Strict):
    cpus: float | None = Field(default=None, gt=0, le=256, description="CPU limit (cores)")
    memory: str | None = Field(default=None, pattern=MEMORY_PATTERN, description="Memory limit, e.g. 512m or 2g")
    pids: int | None = Field(default=None, gt=0, le=65536, description="Max processes")


class Health(Strict):
    """How to tell a workspace is healthy: an HTTP GET inside the workload."""

    port: int = Field(ge=1, le=65535)
    path: str = Field(default="/health", pattern=HEALTH_PATH_PATTERN)
    interval_seconds: float = Field(default=2, gt=0, le=300)
    timeout_seconds: float = Field(default=2, gt=0, le=300)
    retries: int = Field(default=3, ge=1, le=100)
    start_period_seconds: float = Field(default=0, ge=0, le=3600)


class PluginUse(Strict):
    """A plugin used by a workspace, optionally overriding the tracked ref of `plugins.yaml`."""

    name: str = Field(pattern=KEY_PATTERN)
    track: Track | None = None


PluginEntry = Annotated[str, Field(pattern=KEY_PATTERN)] | PluginUse

_FIELDS_DOC = {
    "name": "Display name",
    "key": "Stable identity slug (default: slug of name); identity is <org>/<key>",
    "role": "Free descriptive text the agent reads; never an identifier",
    "runtime": "Runtime image family (images.yaml key); `external` = operator-run, not provisioned",
    "model": "Model id passed to the runtime",
    "files_dir": "Directory (relative to the org template) whose files become /configs",
    "tier": "canary or production (default)",
    "spawning": "false skips this workspace and its whole subtree",
}


class WorkspaceFields(Strict):
    """Fields a workspace and the org `defaults` share."""

    role: str | None = Field(default=None, max_length=4000, description=_FIELDS_DOC["role"])
    runtime: str | None = Field(default=None, pattern=RUNTIME_PATTERN, description=_FIELDS_DOC["runtime"])
    model: str | None = Field(default=None, max_length=200, description=_FIELDS_DOC["model"])
    files_dir: str | None = Field(default=None, max_length=500, description=_FIELDS_DOC["files_dir"])
    tier: Tier | None = Field(default=None, description=_FIELDS_DOC["tier"])
    plugins: list[PluginEntry] | None = None
    env: dict[EnvName, EnvValue] | None = Field(
        default=None, description="Plain env values, all strings: quote numbers and yes/no/on/off"
    )
    secrets: list[EnvName] | None = None
    required_env: list[EnvName] | None = None
    resources: Resources | None = None
    health: Health | None = None


class Workspace(WorkspaceFields):
    """One workspace of an org tree (children are validated one by one by the renderer)."""

    name: str = Field(min_length=1, max_length=200, description=_FIELDS_DOC["name"])
    key: str | None = Field(default=None, pattern=KEY_PATTERN, description=_FIELDS_DOC["key"])
    spawning: bool = Field(default=True, description=_FIELDS_DOC["spawning"])
    children: list[Workspace] | None = None


class OrgFile(Strict):
    """`orgs/<org>/org.yaml`."""

    name: str = Field(min_length=1, max_length=200)
    production: Literal["auto", "manual"] | None = Field(
        default=None, description="manual: production changes of this org wait after a passed canary gate until "
        "the commit is approved (`reconciler promote <sha>`, or an approving review on the pull request that "
        "merged it). Unset: as the operator policy says. An org may only make it stricter: `auto` under a "
        "policy that says `manual` is an error")
    defaults: WorkspaceFields | None = None
    workspaces: list[Workspace] = Field(default_factory=list)


class PluginPin(Strict):
    source: str = Field(min_length=1, max_length=500, description="git URL of the plugin (allowlisted)")
    track: Track = "none"
    path: str | None = Field(default=None, description="Subdirectory of the source holding the plugin")


class PluginsFile(Strict):
    """`plugins.yaml`: plugin name -> source + tracked ref."""

    plugins: dict[Annotated[str, Field(pattern=KEY_PATTERN)], PluginPin] = Field(default_factory=dict)


class ImagesFile(Strict):
    """`images.yaml`: runtime -> image reference (repo:tag or repo@sha256:...)."""

    registry_prefix: Annotated[str, AfterValidator(_registry_prefix)] | None = Field(
        default=None, description="Prepended to image references that name no registry host"
    )
    images: dict[Annotated[str, Field(pattern=RUNTIME_PATTERN)], ImageRef] = Field(default_factory=dict)


class HealthSettings(Strict):
    timeout_seconds: float = Field(default=120, gt=0, le=3600, description="Health gate timeout per tier")
    settle_seconds: float = Field(default=3, ge=0, le=600, description="Running-and-not-restarting period")


class DockerSettings(Strict):
    network: str = Field(
        default="none", pattern=NETWORK_PATTERN, description="none, host, bridge or a named network"
    )
    restart_policy: Literal["no", "always", "unless-stopped", "on-failure"] = "unless-stopped"


class Limits(Strict):
    max_workspaces: int = Field(default=5000, ge=1, le=100000)


class ReconcilerFile(Strict):
    """`reconciler.yaml`: optional repo-wide settings."""

    mode: Mode = Mode.RECONCILE
    max_delete: int | None = Field(default=None, ge=0, description="Cap on deletions per run")
    allowed_sources: list[str] = Field(
        default_factory=list,
        description="host/org prefixes (e.g. git.example.com/acme/) that !external and plugin sources must match",
    )
    health: HealthSettings = Field(default_factory=HealthSettings)
    docker: DockerSettings = Field(default_factory=DockerSettings)
    limits: Limits = Field(default_factory=Limits)


MEMORY_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def memory_bytes(size: str) -> int:
    """`512m` -> bytes (the `resources.memory` shape: digits and an optional k/m/g)."""
    digits = size.rstrip("kmgKMG")
    return int(digits) * MEMORY_UNITS[size[len(digits):].lower()]


def memory_suggestion(size: str) -> str | None:
    """`256mb`, `2Gi`, `512 MB` -> `256m`, `2g`, `512m`: what a memory size written another way means here."""
    match = re.fullmatch(r"\s*([0-9]+)\s*([kmgKMG])(?:i?[bB]|i)\s*", size)
    return f"{match.group(1)}{match.group(2).lower()}" if match else None


def source_allowed(repo: str, allowed: list[str]) -> bool:
    """`host/org/name` matches a `host/org/` prefix only on a path-segment boundary. A path that
    could mean another place once a server normalises it (`.`/`..` or empty segments, `%`-escapes,
    backslashes) matches nothing: `host/org/../evil/x` must not pass as `host/org/`."""
    if not _plain_path(repo):
        return False
    repo = repo.strip("/") + "/"
    return any(repo.startswith(p.strip("/") + "/") for p in allowed if p.strip("/") and _plain_path(p))


def _plain_path(path: str) -> bool:
    segments = path.strip("/").split("/")
    return "%" not in path and "\\" not in path and all(s not in ("", ".", "..") for s in segments)


def dump_plain(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)
