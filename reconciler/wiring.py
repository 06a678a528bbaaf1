"""The composition root: builds a pass's inputs from what the operator chose.

`apply`, `plan`, `pins` and the daemon all converge through the same parts (Docker backend from
`reconciler.yaml`, live pin resolver, secret store, quarantine, external fetcher, plan policy);
they are put together here once, so the commands differ only in what they do with a pass.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr

from reconciler.apply.quarantine import QuarantineStore
from reconciler.backends.base import Backend
from reconciler.model.config import ReconcilerFile
from reconciler.model.enums import Mode
from reconciler.plan import PlanPolicy
from reconciler.reconcile import PassInputs
from reconciler.secrets import SecretStore

DEFAULT_STATE = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local/state")) / "reconciler"
DEFAULT_SECRETS = Path.home() / ".config" / "reconciler" / "secrets"


class Options(BaseModel):
    """Operator choices shared by every command that plans or converges."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    instance_id: str = "default"
    state_dir: Path = DEFAULT_STATE
    secrets_dir: Path = DEFAULT_SECRETS
    mode: Mode | None = None  # None: reconciler.yaml decides
    allow_empty: bool = False
    max_delete: int | None = None  # None: reconciler.yaml decides
    concurrency: int = 4
    health_timeout_s: float | None = None
    registry_credentials: Path | None = None
    token: SecretStr | None = None  # git and forge token

    @property
    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token else None


class LazyFetcher:
    """The git-backed `!external` fetcher, built only when a config actually uses `!external`."""

    def __init__(self, repo: Path, state_dir: Path, token: str | None = None) -> None:
        self.repo, self.state_dir, self.token = repo, state_dir, token

    def fetch(self, repo: str, ref: str, url: str | None) -> Path:
        from reconciler.render.repo import load_settings
        from reconciler.source.external import GitExternalFetcher

        token = self.token
        fetcher = GitExternalFetcher(self.state_dir, load_settings(self.repo).allowed_sources, lambda _: token)
        return fetcher.fetch(repo, ref, url)


def docker_backend(options: Options, settings: ReconcilerFile) -> Backend:
    from reconciler.backends.docker import DockerBackend

    return DockerBackend(
        options.instance_id,
        network=settings.docker.network,
        restart_policy=settings.docker.restart_policy,
        settle_seconds=settings.health.settle_seconds,
        state_dir=options.state_dir,
    )


def plan_policy(options: Options, settings: ReconcilerFile) -> PlanPolicy:
    return PlanPolicy(
        mode=options.mode or settings.mode,
        allow_empty=options.allow_empty,
        max_delete=options.max_delete if options.max_delete is not None else settings.max_delete,
    )


def pin_resolver(options: Options):  # type: ignore[no-untyped-def]
    from reconciler.source.pins import LivePinResolver
    from reconciler.source.registry import RegistryClient, load_credentials

    registry = RegistryClient(load_credentials(options.registry_credentials))
    return LivePinResolver(options.state_dir, registry, git_token=options.token_value)


def pass_inputs(options: Options, root: Path, *, apply: bool = True) -> PassInputs:
    """Everything a pass over the tree at `root` needs; callers add forge, stop and listeners."""
    return PassInputs(
        make_backend=lambda settings: docker_backend(options, settings),
        resolver=pin_resolver(options),
        secrets=SecretStore.open(options.secrets_dir, options.state_dir),
        policy=lambda settings: plan_policy(options, settings),
        fetcher=LazyFetcher(root, options.state_dir, options.token_value),
        health_timeout_s=options.health_timeout_s,
        concurrency=options.concurrency,
        apply=apply,
        quarantine=QuarantineStore(options.state_dir / f"quarantine-{options.instance_id}.json"),
    )
