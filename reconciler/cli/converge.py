"""Command line: `validate`, `render`, `plan`, `apply`, `pins`, `run`. Exit codes: 0 ok, 1 the change
is wrong (invalid config, failed health gate, refused by a guard), 2 the reconciler could not work."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr

from reconciler.cli_options import (
    DEFAULT_SECRETS,
    DEFAULT_STATE,
    AllowEmpty,
    AsJson,
    Concurrency,
    GiteaRepo,
    GiteaTokenFile,
    GiteaUrl,
    HealthTimeout,
    InstanceId,
    MaxDelete,
    ModeOpt,
    PathArg,
    PublicUrl,
    Ref,
    RegistryCreds,
    SecretsDir,
    Source,
    StateDir,
    exit_on_errors,
    parse_mode,
    read_token,
)
from reconciler.cli_pins import pins_cmd
from reconciler.daemon.command import run_command
from reconciler.errors import SourceError
from reconciler.model.desired import DesiredState
from reconciler.reconcile import PassResult, run_pass
from reconciler.render import render_repo
from reconciler.report.desired import desired_json, render_tree, summary
from reconciler.secrets import SecretStore
from reconciler.wiring import LazyFetcher, Options, pass_inputs

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)
app.command("pins")(pins_cmd)
app.command("run")(run_command)


def _render(path: Path, secrets_dir: Path | None, state_dir: Path) -> DesiredState:
    secrets = SecretStore.open(secrets_dir, state_dir) if secrets_dir else None
    return render_repo(path, secrets=secrets, fetcher=LazyFetcher(path, state_dir))


@app.command()
def validate(path: PathArg, secrets_dir: SecretsDir = None, state_dir: StateDir = DEFAULT_STATE) -> None:
    """Check a config repository: schema, includes, externals, references. Exit 1 on any error."""
    with exit_on_errors():
        state = _render(path, secrets_dir, state_dir)
    typer.echo(summary(state))


@app.command()
def render(
    path: PathArg, as_json: AsJson = False, secrets_dir: SecretsDir = None, state_dir: StateDir = DEFAULT_STATE
) -> None:
    """Print the desired state a config repository renders to (never a secret value)."""
    with exit_on_errors():
        state = _render(path, secrets_dir, state_dir)
    typer.echo(json.dumps(desired_json(state), indent=2) if as_json else render_tree(state))


# ---- plan / apply -------------------------------------------------------------------------------


def _options(
    instance_id: str, state_dir: Path, secrets_dir: Path | None, mode: str | None, allow_empty: bool,
    max_delete: int | None, registry_credentials: Path | None, token: str | None,
    concurrency: int = 4, health_timeout: float | None = None,
) -> Options:
    return Options(
        instance_id=instance_id, state_dir=state_dir, secrets_dir=secrets_dir or DEFAULT_SECRETS,
        mode=parse_mode(mode), allow_empty=allow_empty, max_delete=max_delete, concurrency=concurrency,
        health_timeout_s=health_timeout, registry_credentials=registry_credentials,
        token=SecretStr(token) if token else None,
    )


def _run(options: Options, source: str, ref: str | None, *, apply: bool, forge_args: tuple[Any, ...] = (),
         public_url: str = "", progress: bool = False) -> PassResult:
    from reconciler.forge.gitea import GiteaClient
    from reconciler.source.checkout import checkout

    try:
        tree = checkout(source, ref, options.state_dir, token=options.token_value)
    except SourceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    inputs = pass_inputs(options, tree.root, apply=apply)
    gitea_url, gitea_repo = forge_args or (None, None)
    if gitea_url and apply:
        if not gitea_repo:
            typer.echo("error: --gitea-url needs --gitea-repo owner/name", err=True)
            raise typer.Exit(2)
        if tree.revision is None:
            typer.echo("warning: --source is a plain directory: no commit to post statuses on", err=True)
        inputs.forge = GiteaClient(gitea_url, gitea_repo, options.token_value)
    inputs.target_url = public_url.rstrip("/") + "/runs" if public_url else ""
    inputs.on_event = _progress if progress else None
    inputs.stop = threading.Event()
    stop = inputs.stop

    def on_sigint(signum: int, frame: object) -> None:
        typer.echo("interrupt: finishing the current actions, then stopping (nothing is cut half-way)", err=True)
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint) if apply else None
    try:
        return run_pass(tree, inputs)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _progress(event: str, payload: dict[str, Any]) -> None:
    if event == "tier_started":
        typer.echo(f"{payload['tier']}: {payload['changes']} change(s), {payload['unchanged']} unchanged", err=True)
    elif event == "action_done":
        duration = float(payload.get("duration_s") or 0)
        typer.echo(f"  {payload.get('outcome')}: {payload.get('kind')} {payload.get('workspace')} ({duration:.1f}s)",
                   err=True)
    elif event == "gate_started":
        typer.echo(f"{payload['tier']}: health gate, waiting for {payload['total']} workspace(s)", err=True)
    elif event == "gate_done":
        typer.echo(f"{payload['tier']}: health gate {payload['outcome']}", err=True)


def _report(result: PassResult, as_json: bool, applied: bool, verbose: bool = False) -> None:
    from reconciler.plan import plan_to_json, render_table

    if as_json:
        doc: dict[str, object] = {"revision": result.revision, "exit_code": result.exit_code, "message": result.message}
        if result.plan is not None:
            doc["plan"] = plan_to_json(result.plan)
        if result.run is not None:
            doc["run"] = result.run.model_dump(mode="json")
        doc["statuses"] = [vars(s) for s in result.statuses]
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    if result.plan is None:
        for line in result.message.splitlines() if result.exit_code else []:
            typer.echo(f"error: {line}", err=True)
        if not result.exit_code:
            typer.echo(result.message, err=True)
    elif not applied:
        typer.echo(render_table(result.plan, verbose=verbose))
    for status in result.statuses if applied else []:
        typer.echo(f"{status.context}: {status.state}: {status.description}")
    if result.unposted:
        typer.echo(f"warning: {len(result.unposted)} status(es) could not be posted (forge unreachable)", err=True)


@app.command("plan")
def plan_cmd(
    source: Source, ref: Ref = None, mode: ModeOpt = None, allow_empty: AllowEmpty = False,
    max_delete: MaxDelete = None, instance_id: InstanceId = "default", as_json: AsJson = False,
    state_dir: StateDir = DEFAULT_STATE, secrets_dir: SecretsDir = None,
    registry_credentials: RegistryCreds = None, gitea_token_file: GiteaTokenFile = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list unchanged workspaces")] = False,
) -> None:
    """Show what apply would change, with a reason per workspace. Touches nothing."""
    options = _options(instance_id, state_dir, secrets_dir, mode, allow_empty, max_delete, registry_credentials,
                       read_token(gitea_token_file))
    result = _run(options, source, ref, apply=False)
    _report(result, as_json, applied=False, verbose=verbose)
    raise typer.Exit(result.exit_code)


@app.command("apply")
def apply_cmd(
    source: Source, ref: Ref = None, mode: ModeOpt = None, allow_empty: AllowEmpty = False,
    max_delete: MaxDelete = None, instance_id: InstanceId = "default", as_json: AsJson = False,
    state_dir: StateDir = DEFAULT_STATE, secrets_dir: SecretsDir = None, gitea_url: GiteaUrl = None,
    gitea_repo: GiteaRepo = None, gitea_token_file: GiteaTokenFile = None, public_url: PublicUrl = "",
    concurrency: Concurrency = 4, health_timeout: HealthTimeout = None, registry_credentials: RegistryCreds = None,
) -> None:
    """Converge: canary tier, health gate, production tier; statuses on the commit."""
    options = _options(instance_id, state_dir, secrets_dir, mode, allow_empty, max_delete, registry_credentials,
                       read_token(gitea_token_file), concurrency, health_timeout)
    result = _run(options, source, ref, apply=True, forge_args=(gitea_url, gitea_repo), public_url=public_url,
                  progress=not as_json)
    _report(result, as_json, applied=True)
    raise typer.Exit(result.exit_code)
