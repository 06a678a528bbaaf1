"""The operator's choices for every command that plans or converges: one frozen value.

Built once at the entry point from flags and `RECONCILER_*` environment (the CLI reads both);
nothing edits it afterwards. What the config repo says (`reconciler.yaml`) is combined with it by
the pure functions here, so "flag if given, else the repo's value" is written once.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from reconciler.model.config import ReconcilerFile
from reconciler.model.credentials import NONE, Credentials
from reconciler.model.enums import Mode
from reconciler.model.policy import Policy
from reconciler.plan.guards import PlanPolicy
from reconciler.report.statuses import Contexts

DEFAULT_STATE = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local/state")) / "reconciler"
DEFAULT_SECRETS = Path.home() / ".config" / "reconciler" / "secrets"


class Settings(BaseModel):
    """What the operator chose; secrets (the token) stay `SecretStr` and never print."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance_id: str = "default"
    state_dir: Path = DEFAULT_STATE
    secrets_dir: Path | None = DEFAULT_SECRETS  # None: secrets are not checked (validate/render)
    mode: Mode | None = None  # None: reconciler.yaml decides
    allow_empty: bool = False
    max_delete: int | None = Field(default=None, ge=0)  # None: reconciler.yaml decides
    concurrency: int = Field(default=4, ge=1, le=64)
    health_timeout_s: float | None = None  # None: reconciler.yaml's health.timeout_seconds
    registry_credentials: Path | None = None  # a docker config.json
    token: SecretStr | None = None  # the forge (Gitea API) token; as a git credential it is in `credentials`
    policy: Policy = Field(default_factory=Policy)  # what a commit may ask for (deny-all without one)
    credentials: Credentials = NONE  # which credential goes to which host
    gitea_url: str | None = None
    gitea_repo: str | None = None  # owner/name
    public_url: str = ""  # base URL of the run pages, for status links
    status_context_instance: bool = False  # contexts reconciler/<instance-id>/<kind> instead of reconciler/<kind>

    @property
    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token else None

    @property
    def contexts(self) -> Contexts:
        """The commit status contexts this reconciler posts (and reads back)."""
        return Contexts(self.instance_id if self.status_context_instance else None)

    @property
    def hold_file(self) -> Path:
        return self.state_dir / f"quarantine-{self.instance_id}.json"


def plan_policy(settings: Settings, repo: ReconcilerFile) -> PlanPolicy:
    """The flag wins; else the repo's value (render has checked it is within the operator policy's
    ceiling); else the policy's ceiling; else the guard's default."""
    if settings.max_delete is not None:
        max_delete: int | None = settings.max_delete
    elif repo.max_delete is not None:
        max_delete = repo.max_delete
    else:
        max_delete = settings.policy.max_delete
    return PlanPolicy(mode=settings.mode or repo.mode, allow_empty=settings.allow_empty, max_delete=max_delete)


def health_timeout(settings: Settings, repo: ReconcilerFile) -> float:
    return settings.health_timeout_s or repo.health.timeout_seconds
