"""`reconciler run`: the daemon command. Same source, forge and backend flags as `apply`, plus the
daemon's own; every flag also as `RECONCILER_<FLAG>`. `cli.py` imports and registers it, so the
entry point is `reconciler.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reconciler.cli_options import (
    DEFAULT_SECRETS,
    DEFAULT_STATE,
    AllowEmpty,
    Concurrency,
    GiteaRepo,
    GiteaTokenFile,
    GiteaUrl,
    HealthTimeout,
    InstanceId,
    MaxDelete,
    ModeOpt,
    PublicUrl,
    RegistryCreds,
    SecretsDir,
    Source,
    StateDir,
    parse_mode,
    read_secret_file,
)

Branch = Annotated[str, typer.Option("--branch", envvar="RECONCILER_BRANCH", help="Branch to watch and converge")]
Listen = Annotated[str, typer.Option("--listen", envvar="RECONCILER_LISTEN", help="HOST:PORT of the HTTP server")]
PollInterval = Annotated[
    float, typer.Option("--poll-interval", envvar="RECONCILER_POLL_INTERVAL", min=0.1, help="Seconds between polls")
]
ResyncInterval = Annotated[
    float,
    typer.Option("--resync-interval", envvar="RECONCILER_RESYNC_INTERVAL", min=0.1, help="Seconds between resyncs"),
]
WebhookSecretFile = Annotated[
    Path | None,
    typer.Option("--webhook-secret-file", envvar="RECONCILER_WEBHOOK_SECRET_FILE", help="HMAC secret of /hooks/gitea"),
]
LogLevel = Annotated[str, typer.Option("--log-level", envvar="RECONCILER_LOG_LEVEL", help="DEBUG, INFO, WARNING")]


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        typer.echo(f"error: --listen must be HOST:PORT, got {value!r}", err=True)
        raise typer.Exit(2)
    return host.strip("[]"), int(port)


def run_command(
    source: Source,
    branch: Branch = "main",
    listen: Listen = "127.0.0.1:8080",
    state_dir: StateDir = DEFAULT_STATE,
    poll_interval: PollInterval = 60.0,
    resync_interval: ResyncInterval = 600.0,
    webhook_secret_file: WebhookSecretFile = None,
    public_url: PublicUrl = "",
    mode: ModeOpt = None,
    allow_empty: AllowEmpty = False,
    max_delete: MaxDelete = None,
    instance_id: InstanceId = "default",
    secrets_dir: SecretsDir = None,
    gitea_url: GiteaUrl = None,
    gitea_repo: GiteaRepo = None,
    gitea_token_file: GiteaTokenFile = None,
    concurrency: Concurrency = 4,
    health_timeout: HealthTimeout = None,
    registry_credentials: RegistryCreds = None,
    log_level: LogLevel = "INFO",
) -> None:
    """Run the daemon: watch a branch (webhooks + poll), converge each new head, review pull requests,
    resync drift, serve /runs, /healthz, /metrics and /hooks/gitea."""
    from pydantic import SecretBytes, SecretStr

    from reconciler.daemon import logctx
    from reconciler.daemon.lock import AlreadyRunning
    from reconciler.daemon.service import Daemon, DaemonSettings
    from reconciler.logs import setup_logging
    from reconciler.source.checkout import is_git_source
    from reconciler.wiring import Options

    setup_logging(log_level)
    logctx.install()
    host, port = _listen(listen)
    if not is_git_source(source):
        typer.echo(f"error: the daemon needs a git source (URL or repository), not {source!r}", err=True)
        raise typer.Exit(2)
    if gitea_url and not gitea_repo:
        typer.echo("error: --gitea-url needs --gitea-repo owner/name", err=True)
        raise typer.Exit(2)
    token = read_secret_file(gitea_token_file, "token file")
    secret = read_secret_file(webhook_secret_file, "webhook secret file")
    if secret is None:
        typer.echo("warning: no --webhook-secret-file: /hooks/gitea is off, polling only", err=True)
    options = Options(
        instance_id=instance_id,
        state_dir=state_dir,
        secrets_dir=secrets_dir or DEFAULT_SECRETS,
        mode=parse_mode(mode),
        allow_empty=allow_empty,
        max_delete=max_delete,
        concurrency=concurrency,
        health_timeout_s=health_timeout,
        registry_credentials=registry_credentials,
        token=SecretStr(token) if token else None,
    )
    settings = DaemonSettings(
        source=source if "://" in source else str(Path(source).resolve()),
        options=options,
        branch=branch,
        host=host,
        port=port,
        poll_interval_s=poll_interval,
        resync_interval_s=resync_interval,
        webhook_secret=SecretBytes(secret.encode()) if secret else None,
        public_url=public_url or f"http://{listen}",
        gitea_url=gitea_url,
        gitea_repo=gitea_repo,
    )
    try:
        code = Daemon(settings).run()
    except (AlreadyRunning, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)
