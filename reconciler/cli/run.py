"""`reconciler run`: the daemon command. Same source, forge and backend flags as `apply`, plus the
daemon's own; every flag also as `RECONCILER_<FLAG>`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from reconciler.cli.options import APPLY, FORGE, OPERATOR, POLICY, SOURCE, operator, read_secret_file
from reconciler.errors import ReconcilerError
from reconciler.pipeline.settings import Settings

Branch = Annotated[str, typer.Option("--branch", envvar="RECONCILER_BRANCH", help="Branch to watch and converge")]
Listen = Annotated[str, typer.Option("--listen", envvar="RECONCILER_LISTEN", help="HOST:PORT of the HTTP server")]
ListenPages = Annotated[
    str | None,
    typer.Option("--listen-pages", envvar="RECONCILER_LISTEN_PAGES",
                 help="HOST:PORT of its own for /runs and /metrics (default: --listen)"),
]
PagesTokenFile = Annotated[
    Path | None,
    typer.Option("--pages-token-file", envvar="RECONCILER_PAGES_TOKEN_FILE",
                 help="Token the pages require (Bearer, or Basic auth password)"),
]
PollInterval = Annotated[
    float, typer.Option("--poll-interval", envvar="RECONCILER_POLL_INTERVAL", min=0.1, help="Seconds between polls")
]
ResyncInterval = Annotated[
    float,
    typer.Option("--resync-interval", envvar="RECONCILER_RESYNC_INTERVAL", min=0.1, help="Seconds between resyncs"),
]
HealUnhealthyAfter = Annotated[
    float,
    typer.Option("--heal-unhealthy-after", envvar="RECONCILER_HEAL_UNHEALTHY_AFTER", min=0,
                 help="Seconds a running workspace may fail its health check before a resync recreates it (0: never)"),
]
StuckAfter = Annotated[
    float,
    typer.Option("--stuck-after", envvar="RECONCILER_STUCK_AFTER", min=0,
                 help="Seconds one step of a run (fetch, plan, a tier, a gate, ...) may last before /healthz "
                      "answers 503 (0: never)"),
]
GitTimeout = Annotated[
    float,
    typer.Option("--git-timeout", envvar="RECONCILER_GIT_TIMEOUT", min=0.1,
                 help="Seconds a git call to the config repo waits for the server; a ref listing ends after "
                      "4x, a fetch after 10x this, whatever the server does"),
]
WebhookSecretFile = Annotated[
    Path | None,
    typer.Option("--webhook-secret-file", envvar="RECONCILER_WEBHOOK_SECRET_FILE", help="HMAC secret of /hooks/gitea"),
]
KeepRunsDays = Annotated[
    float, typer.Option("--keep-runs-days", envvar="RECONCILER_KEEP_RUNS_DAYS", min=0, help="Days of runs kept")
]
KeepRuns = Annotated[int, typer.Option("--keep-runs", envvar="RECONCILER_KEEP_RUNS", min=1, help="Runs kept at most")]
KeepCacheDays = Annotated[
    float,
    typer.Option("--keep-cache-days", envvar="RECONCILER_KEEP_CACHE_DAYS", min=0,
                 help="Days an unused !external or plugin cache entry is kept"),
]


class Level(StrEnum):
    """The daemon's log levels (a choice: anything else is a usage error)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


LogLevel = Annotated[Level, typer.Option("--log-level", envvar="RECONCILER_LOG_LEVEL", case_sensitive=False,
                                         help="Lowest level logged (JSON lines on stderr)")]


def _listen(value: str, flag: str = "--listen") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        typer.echo(f"error: {flag} must be HOST:PORT, got {value!r}", err=True)
        raise typer.Exit(2)
    return host.strip("[]"), int(port)


@operator(SOURCE, OPERATOR, POLICY, APPLY, FORGE)
def run_command(
    settings: Settings,
    source: str,
    ref: str | None,
    branch: Branch = "main",
    listen: Listen = "127.0.0.1:8080",
    listen_pages: ListenPages = None,
    pages_token_file: PagesTokenFile = None,
    poll_interval: PollInterval = 60.0,
    resync_interval: ResyncInterval = 600.0,
    stuck_after: StuckAfter = 900.0,
    git_timeout: GitTimeout = 30.0,
    heal_unhealthy_after: HealUnhealthyAfter = 300.0,
    webhook_secret_file: WebhookSecretFile = None,
    keep_runs_days: KeepRunsDays = 30.0,
    keep_runs: KeepRuns = 5000,
    keep_cache_days: KeepCacheDays = 7.0,
    log_level: LogLevel = Level.INFO,
) -> None:
    """Run the daemon: watch a branch (webhooks + poll), converge each new head, review pull requests,
    resync drift, serve /runs, /healthz, /metrics and /hooks/gitea; prune its journal and state dir."""
    from pydantic import SecretBytes, SecretStr

    from reconciler.daemon import logctx
    from reconciler.daemon.service import Daemon, DaemonSettings
    from reconciler.logs import setup_logging
    from reconciler.source.checkout import is_git_source

    setup_logging(log_level.value)
    logctx.install()
    host, port = _listen(listen)
    pages = _listen(listen_pages, "--listen-pages") if listen_pages else None
    if not is_git_source(source):
        typer.echo(f"error: the daemon needs a git source (URL or repository), not {source!r}", err=True)
        raise typer.Exit(2)
    if ref is not None:
        typer.echo("error: the daemon follows --branch; --ref is for plan and apply", err=True)
        raise typer.Exit(2)
    if not settings.public_url:
        settings = settings.model_copy(update={"public_url": f"http://{listen_pages or listen}"})
    secret = read_secret_file(webhook_secret_file, "webhook secret file")
    pages_token = read_secret_file(pages_token_file, "pages token file")
    if pages_token_file is not None and pages_token is None:
        typer.echo(f"error: the pages token file {pages_token_file} is empty", err=True)
        raise typer.Exit(2)
    if secret is None:
        typer.echo("warning: no --webhook-secret-file: /hooks/gitea is off, polling only", err=True)
    daemon_settings = DaemonSettings(
        source=source if "://" in source else str(Path(source).resolve()),
        settings=settings,
        branch=branch,
        host=host,
        port=port,
        pages=pages,
        pages_token=SecretStr(pages_token) if pages_token else None,
        poll_interval_s=poll_interval,
        resync_interval_s=resync_interval,
        stuck_after_s=stuck_after,
        git_timeout_s=git_timeout,
        heal_unhealthy_after_s=heal_unhealthy_after,
        webhook_secret=SecretBytes(secret.encode()) if secret else None,
        keep_runs_days=keep_runs_days,
        keep_runs=keep_runs,
        keep_cache_days=keep_cache_days,
    )
    try:
        code = Daemon(daemon_settings).run()
    except (ReconcilerError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)
