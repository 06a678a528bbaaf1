"""Command-line options shared by `plan`, `apply`, `pins` and `run`: one declaration each, every one
also readable from `RECONCILER_<FLAG>`, plus the small helpers the commands share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from reconciler.errors import ConfigError, ConfigErrors, ReconcilerError
from reconciler.wiring import DEFAULT_SECRETS, DEFAULT_STATE

__all__ = ["DEFAULT_SECRETS", "DEFAULT_STATE"]

PathArg = Annotated[Path, typer.Argument(help="Config repository directory", exists=False)]
SecretsDir = Annotated[
    Path | None,
    typer.Option("--secrets-dir", envvar="RECONCILER_SECRETS_DIR", help="Secret values (default for plan/apply: "
                 "~/.config/reconciler/secrets; validate/render check secrets only when given)"),
]
StateDir = Annotated[
    Path, typer.Option("--state-dir", envvar="RECONCILER_STATE_DIR", help="Mirrors, caches, keys, journal")
]
Source = Annotated[
    str, typer.Option("--source", envvar="RECONCILER_SOURCE", help="Config repo: directory, local git repo or URL")
]
Ref = Annotated[str | None, typer.Option("--ref", envvar="RECONCILER_REF", help="Branch, tag or SHA (default: HEAD)")]
ModeOpt = Annotated[
    str | None, typer.Option("--mode", envvar="RECONCILER_MODE", help="reconcile or merge (default: reconciler.yaml)")
]
AllowEmpty = Annotated[
    bool, typer.Option("--allow-empty", envvar="RECONCILER_ALLOW_EMPTY", help="Let an empty repo delete everything")
]
MaxDelete = Annotated[
    int | None, typer.Option("--max-delete", envvar="RECONCILER_MAX_DELETE", help="Cap on deletions per run")
]
InstanceId = Annotated[
    str, typer.Option("--instance-id", envvar="RECONCILER_INSTANCE_ID", help="Owns only workspaces labelled with it")
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
GiteaUrl = Annotated[str | None, typer.Option("--gitea-url", envvar="RECONCILER_GITEA_URL", help="Post statuses")]
GiteaRepo = Annotated[str | None, typer.Option("--gitea-repo", envvar="RECONCILER_GITEA_REPO", help="owner/name")]
GiteaTokenFile = Annotated[
    Path | None, typer.Option("--gitea-token-file", envvar="RECONCILER_GITEA_TOKEN_FILE", help="API and git token")
]
PublicUrl = Annotated[
    str, typer.Option("--public-url", envvar="RECONCILER_PUBLIC_URL", help="Base URL of the run page for statuses")
]
Concurrency = Annotated[int, typer.Option("--concurrency", envvar="RECONCILER_CONCURRENCY", min=1, max=64)]
HealthTimeout = Annotated[
    float | None, typer.Option("--health-timeout", envvar="RECONCILER_HEALTH_TIMEOUT", help="Seconds per tier gate")
]
RegistryCreds = Annotated[
    Path | None,
    typer.Option("--registry-credentials", envvar="RECONCILER_REGISTRY_CREDENTIALS", help="docker config.json"),
]


def read_secret_file(path: Path | None, what: str = "token file") -> str | None:
    """A secret from its file (stripped), registered with the log scrubber; exit 2 when unreadable."""
    if path is None:
        return None
    try:
        value = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        typer.echo(f"error: cannot read {what} {path}: {reason}", err=True)
        raise typer.Exit(2) from None
    from reconciler.logs import mask_secret

    mask_secret(value)
    return value or None


def read_token(path: Path | None) -> str | None:
    return read_secret_file(path, "token file")


def parse_mode(mode: str | None):  # type: ignore[no-untyped-def]
    from reconciler.model.enums import Mode

    if mode is None:
        return None
    if mode not in ("reconcile", "merge"):
        typer.echo(f"error: --mode must be reconcile or merge, got {mode!r}", err=True)
        raise typer.Exit(2)
    return Mode(mode)


@contextmanager
def exit_on_errors() -> Iterator[None]:
    """A config error exits 1 with every error listed; any other reconciler error exits 2."""
    try:
        yield
    except ConfigError as exc:
        print_config_errors(exc)
        raise typer.Exit(1) from None
    except ReconcilerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def print_config_errors(exc: ConfigError) -> None:
    errors = exc.errors if isinstance(exc, ConfigErrors) else [exc]
    for err in errors:
        typer.echo(f"error: {err}", err=True)
    typer.echo(f"{len(errors)} error(s); nothing was changed.", err=True)
