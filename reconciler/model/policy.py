"""The operator's policy: what a commit may ask for. Never read from the config repository.

The config repo decides *what runs*; the operator decides *where things may run and what a commit
may ask for*: which git sources (`!external`, plugins) and registries (images) may be reached,
which docker networks a workspace may join, the ceilings (deletions per run,
workspaces, resources), the env names the reconciler reserves, and whether the daemon promotes a
commit to production on its own (`production: auto`) or waits for an operator (`manual`). `reconciler.yaml` may narrow a
bound (fewer sources, a smaller delete cap), never widen it; a value outside the policy is a
`file:line` error that names the policy (`origin`).

Given with `--policy FILE` (schema: `schemas/policy.schema.json`), extended by flags
(`--allow-source`, `--allow-registry`). Without any, nothing outside the config repo may be
reached: no `!external`, no plugin source, no registry.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from reconciler.model.config import Resources, memory_bytes, source_allowed
from reconciler.model.desired import RESERVED_ENV

PREFIX_HINT = "host[:port]/owner/ for git sources, host[:port][/path] for registries"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DockerPolicy(_Strict):
    networks: list[str] = Field(default_factory=lambda: ["none"], description="Docker networks a workspace may join")


class Policy(_Strict):
    """`--policy FILE`: the bounds of every commit, pull request included."""

    sources: list[str] = Field(default_factory=list, description=f"Allowed git source prefixes ({PREFIX_HINT})")
    registries: list[str] = Field(default_factory=list, description="Allowed image registries: host[:port][/path]")
    docker: DockerPolicy = Field(default_factory=DockerPolicy)
    max_delete: int | None = Field(default=None, ge=0, description="Ceiling on deletions per run")
    max_workspaces: int = Field(default=5000, ge=1, le=100000, description="Ceiling on workspaces per revision")
    resources: Resources = Field(default_factory=Resources, description="Ceilings on each workspace's limits")
    reserved_env: list[str] = Field(default_factory=list, description="Env names no commit may set (added to the "
                                    "built-in ones)")
    production: Literal["auto", "manual"] = Field(
        default="auto", description="auto: production follows a passed canary gate; manual: the daemon applies "
        "production only once an operator approves the commit (`reconciler promote <sha>`)")
    origin: SkipJsonSchema[str] = Field(default="the operator policy (none given)", exclude=True)  # named in errors

    def source_allowed(self, repo: str) -> bool:
        """`host/owner/name` of a git source is under an allowed prefix (on a segment boundary)."""
        return source_allowed(repo, self.sources)

    def within(self, prefix: str) -> bool:
        """A repo's `allowed_sources` entry narrows the policy: it must lie under one of its prefixes."""
        return self.source_allowed(prefix.strip("/"))

    def sources_for(self, repo_sources: list[str]) -> list[str]:
        """The prefixes a tree may reach: the repo's own list (the entries within the policy), or the
        policy's when the repo names none. A repo entry outside the policy admits nothing."""
        return [p for p in repo_sources if self.within(p)] if repo_sources else list(self.sources)

    def registry_allowed(self, image: str) -> bool:
        """The repository of an image reference (tag and digest cut off; no host means Docker Hub)
        is under an allowed registry prefix, on a path-segment boundary."""
        return source_allowed(image_repository(image), self.registries)

    def reserved(self) -> frozenset[str]:
        return RESERVED_ENV | frozenset(self.reserved_env)

    def over_ceiling(self, resources: Resources) -> list[str]:
        """Each limit of `resources` above the policy's ceiling, in words."""
        out: list[str] = []
        ceiling = self.resources
        if ceiling.cpus is not None and resources.cpus is not None and resources.cpus > ceiling.cpus:
            out.append(f"cpus {resources.cpus} > {ceiling.cpus}")
        if ceiling.pids is not None and resources.pids is not None and resources.pids > ceiling.pids:
            out.append(f"pids {resources.pids} > {ceiling.pids}")
        if ceiling.memory and resources.memory and memory_bytes(resources.memory) > memory_bytes(ceiling.memory):
            out.append(f"memory {resources.memory} > {ceiling.memory}")
        return out


def image_repository(image: str) -> str:
    """`host[:port]/path/name` of a reference: `127.0.0.1:5000/a/b:tag@sha256:..` -> `127.0.0.1:5000/a/b`,
    `alpine` -> `docker.io/library/alpine` (a port's colon is not a tag's)."""
    name = image.partition("@")[0]
    head, slash, last = name.rpartition("/")
    name = f"{head}{slash}{last.partition(':')[0]}"
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name if '/' in name else 'library/' + name}"


