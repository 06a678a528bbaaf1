"""Command line: `validate`, `render`, `plan`, `apply`, `run`. Exit codes: 0 ok, 1 the change is
wrong (invalid config, failed health gate, refused by a guard), 2 the reconciler could not work."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from reconciler.errors import ConfigError, ConfigErrors, ReconcilerError
from reconciler.model.desired import DesiredState, DesiredWorkspace
from reconciler.render import render_repo
from reconciler.secrets import SecretStore

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)

PathArg = Annotated[Path, typer.Argument(help="Config repository directory", exists=False)]
SecretsDir = Annotated[
    Path | None,
    typer.Option("--secrets-dir", envvar="RECONCILER_SECRETS_DIR", help="Check secrets exist in this directory"),
]
StateDir = Annotated[
    Path,
    typer.Option("--state-dir", envvar="RECONCILER_STATE_DIR", help="Mirrors, caches, keys, journal"),
]
DEFAULT_STATE = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local/state")) / "reconciler"


def _render(path: Path, secrets_dir: Path | None, state_dir: Path) -> DesiredState:
    secrets = SecretStore.open(secrets_dir, state_dir) if secrets_dir else None
    return render_repo(path, secrets=secrets, fetcher=_fetcher(path, state_dir))


class _LazyFetcher:
    """Builds the git-backed fetcher only when a config actually uses `!external`."""

    def __init__(self, repo: Path, state_dir: Path) -> None:
        self.repo, self.state_dir = repo, state_dir

    def fetch(self, repo: str, ref: str, url: str | None) -> Path:
        from reconciler.render.repo import load_settings
        from reconciler.source.external import GitExternalFetcher

        fetcher = GitExternalFetcher(self.state_dir, load_settings(self.repo).allowed_sources)
        return fetcher.fetch(repo, ref, url)


def _fetcher(path: Path, state_dir: Path) -> _LazyFetcher:
    return _LazyFetcher(path, state_dir)


def print_config_errors(exc: ConfigError) -> None:
    errors = exc.errors if isinstance(exc, ConfigErrors) else [exc]
    for err in errors:
        typer.echo(f"error: {err}", err=True)
    typer.echo(f"{len(errors)} error(s); nothing was changed.", err=True)


@app.command()
def validate(path: PathArg, secrets_dir: SecretsDir = None, state_dir: StateDir = DEFAULT_STATE) -> None:
    """Check a config repository: schema, includes, externals, references. Exit 1 on any error."""
    try:
        state = _render(path, secrets_dir, state_dir)
    except ConfigError as exc:
        print_config_errors(exc)
        raise typer.Exit(1) from None
    except ReconcilerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    provisioned = sum(1 for w in state.workspaces if w.provisioned)
    orgs = len({w.org for w in state.workspaces})
    typer.echo(
        f"valid: {len(state.workspaces)} workspaces ({provisioned} provisioned, "
        f"{len(state.workspaces) - provisioned} external) in {orgs} orgs"
    )


def workspace_json(w: DesiredWorkspace) -> dict[str, object]:
    return {
        "id": w.id,
        "name": w.name,
        "org": w.org,
        "key": w.key,
        "tier": w.tier.value,
        "runtime": w.runtime,
        "provisioned": w.provisioned,
        "image": w.image_digest or w.image,
        "parent": w.parent,
        "spec_hash": w.spec_hash,
        "plugins": [
            {"name": p.name, "source": p.source, "track": p.track, "resolved_sha": p.resolved_sha} for p in w.plugins
        ],
        "env_keys": sorted(w.env),
        "secrets": list(w.secrets),
        "files_dir": w.files.display if w.files else None,
        "files_hash": w.files.content_hash if w.files else None,
        "source": str(w.source),
    }


def render_tree(state: DesiredState) -> str:
    children: dict[str | None, list[DesiredWorkspace]] = {}
    for w in state.workspaces:
        children.setdefault(w.parent, []).append(w)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for w in children.get(parent, []):
            extra = " (external, not provisioned)" if not w.provisioned else f" {w.image}"
            lines.append(f"{'  ' * depth}- {w.id} [{w.tier.value}] {w.runtime}{extra}  spec {w.spec_hash[:12]}")
            walk(w.id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


@app.command()
def render(
    path: PathArg,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
    secrets_dir: SecretsDir = None,
    state_dir: StateDir = DEFAULT_STATE,
) -> None:
    """Print the desired state a config repository renders to (never a secret value)."""
    try:
        state = _render(path, secrets_dir, state_dir)
    except ConfigError as exc:
        print_config_errors(exc)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps({"workspaces": [workspace_json(w) for w in state.workspaces]}, indent=2))
    else:
        typer.echo(render_tree(state))


# ---- plan / apply -------------------------------------------------------------------------------
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
DEFAULT_SECRETS = Path.home() / ".config" / "reconciler" / "secrets"


def _read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        token = path.read_text().strip()
    except OSError as exc:
        typer.echo(f"error: cannot read token file {path}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    from reconciler.logs import mask_secret

    mask_secret(token)
    return token or None


def _pass(
    *,
    apply: bool,
    source: str,
    ref: str | None,
    mode: str | None,
    allow_empty: bool,
    max_delete: int | None,
    instance_id: str,
    state_dir: Path,
    secrets_dir: Path | None,
    gitea_url: str | None,
    gitea_repo: str | None,
    gitea_token_file: Path | None,
    public_url: str,
    concurrency: int,
    health_timeout: float | None,
    registry_credentials: Path | None,
    progress: bool,
):  # type: ignore[no-untyped-def]
    import signal
    import threading

    from reconciler.apply.quarantine import QuarantineStore
    from reconciler.backends.docker import DockerBackend
    from reconciler.errors import SourceError
    from reconciler.forge.gitea import GiteaClient
    from reconciler.model.enums import Mode
    from reconciler.plan import PlanPolicy
    from reconciler.reconcile import PassInputs, run_pass
    from reconciler.source.checkout import checkout
    from reconciler.source.pins import LivePinResolver
    from reconciler.source.registry import RegistryClient, load_credentials

    token = _read_token(gitea_token_file)
    if mode is not None and mode not in ("reconcile", "merge"):
        typer.echo(f"error: --mode must be reconcile or merge, got {mode!r}", err=True)
        raise typer.Exit(2)
    try:
        tree = checkout(source, ref, state_dir, token=token)
        registry = RegistryClient(load_credentials(registry_credentials))
    except SourceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    forge = None
    if gitea_url and apply:
        if not gitea_repo:
            typer.echo("error: --gitea-url needs --gitea-repo owner/name", err=True)
            raise typer.Exit(2)
        if tree.revision is None:
            typer.echo("warning: --source is a plain directory: no commit to post statuses on", err=True)
        forge = GiteaClient(gitea_url, gitea_repo, token)
    stop = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        typer.echo("interrupt: finishing the current actions, then stopping (nothing is cut half-way)", err=True)
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint) if apply else None

    def policy(settings):  # type: ignore[no-untyped-def]
        return PlanPolicy(
            mode=Mode(mode) if mode else settings.mode,
            allow_empty=allow_empty,
            max_delete=max_delete if max_delete is not None else settings.max_delete,
        )

    def make_backend(settings):  # type: ignore[no-untyped-def]
        return DockerBackend(
            instance_id,
            network=settings.docker.network,
            restart_policy=settings.docker.restart_policy,
            settle_seconds=settings.health.settle_seconds,
            state_dir=state_dir,
        )

    inputs = PassInputs(
        make_backend=make_backend,
        resolver=LivePinResolver(state_dir, registry, git_token=token),
        secrets=SecretStore.open(secrets_dir or DEFAULT_SECRETS, state_dir),
        policy=policy,
        fetcher=_fetcher(tree.root, state_dir),
        forge=forge,
        target_url=public_url.rstrip("/") + "/runs" if public_url else "",
        health_timeout_s=health_timeout,
        concurrency=concurrency,
        stop=stop,
        on_event=_progress if progress else None,
        apply=apply,
        quarantine=QuarantineStore(state_dir / f"quarantine-{instance_id}.json"),
    )
    try:
        return run_pass(tree, inputs)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _progress(event: str, payload: dict[str, object]) -> None:
    if event == "tier_started":
        typer.echo(f"{payload['tier']}: {payload['changes']} change(s), {payload['unchanged']} unchanged", err=True)
    elif event == "action_done":
        typer.echo(
            f"  {payload.get('outcome')}: {payload.get('kind')} {payload.get('workspace')}"
            f" ({float(payload.get('duration_s', 0) or 0):.1f}s)",  # type: ignore[arg-type]
            err=True,
        )
    elif event == "gate_started":
        typer.echo(f"{payload['tier']}: health gate, waiting for {payload['total']} workspace(s)", err=True)
    elif event == "gate_done":
        typer.echo(f"{payload['tier']}: health gate {payload['outcome']}", err=True)


def _report(result, as_json: bool, applied: bool, verbose: bool = False) -> None:  # type: ignore[no-untyped-def]
    from reconciler.plan import plan_to_json, render_table

    if as_json:
        doc: dict[str, object] = {"revision": result.revision, "exit_code": result.exit_code, "message": result.message}
        if result.plan is not None:
            doc["plan"] = plan_to_json(result.plan)
        if result.run is not None:
            doc["run"] = result.run.model_dump(mode="json")
        doc["statuses"] = [s.__dict__ for s in result.statuses]
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    if result.plan is None:
        typer.echo(f"error: {result.message}" if result.exit_code else result.message, err=True)
    elif not applied:
        typer.echo(render_table(result.plan, verbose=verbose))
    for line in result.statuses if applied else []:
        typer.echo(f"{line.context}: {line.state}: {line.description}")
    if result.unposted:
        typer.echo(f"warning: {len(result.unposted)} status(es) could not be posted (forge unreachable)", err=True)


@app.command("plan")
def plan_cmd(
    source: Source,
    ref: Ref = None,
    mode: ModeOpt = None,
    allow_empty: AllowEmpty = False,
    max_delete: MaxDelete = None,
    instance_id: InstanceId = "default",
    as_json: AsJson = False,
    state_dir: StateDir = DEFAULT_STATE,
    secrets_dir: SecretsDir = None,
    registry_credentials: RegistryCreds = None,
    gitea_token_file: GiteaTokenFile = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list unchanged workspaces")] = False,
) -> None:
    """Show what apply would change, with a reason per workspace. Touches nothing."""
    result = _pass(
        apply=False,
        source=source,
        ref=ref,
        mode=mode,
        allow_empty=allow_empty,
        max_delete=max_delete,
        instance_id=instance_id,
        state_dir=state_dir,
        secrets_dir=secrets_dir,
        gitea_url=None,
        gitea_repo=None,
        gitea_token_file=gitea_token_file,
        public_url="",
        concurrency=1,
        health_timeout=None,
        registry_credentials=registry_credentials,
        progress=False,
    )
    if result.exit_code and result.plan is None and not as_json and "\n" in result.message:
        for line in result.message.splitlines():
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(result.exit_code)
    _report(result, as_json, applied=False, verbose=verbose)
    raise typer.Exit(result.exit_code)


@app.command("apply")
def apply_cmd(
    source: Source,
    ref: Ref = None,
    mode: ModeOpt = None,
    allow_empty: AllowEmpty = False,
    max_delete: MaxDelete = None,
    instance_id: InstanceId = "default",
    as_json: AsJson = False,
    state_dir: StateDir = DEFAULT_STATE,
    secrets_dir: SecretsDir = None,
    gitea_url: GiteaUrl = None,
    gitea_repo: GiteaRepo = None,
    gitea_token_file: GiteaTokenFile = None,
    public_url: PublicUrl = "",
    concurrency: Concurrency = 4,
    health_timeout: HealthTimeout = None,
    registry_credentials: RegistryCreds = None,
) -> None:
    """Converge: canary tier, health gate, production tier; statuses on the commit."""
    result = _pass(
        apply=True,
        source=source,
        ref=ref,
        mode=mode,
        allow_empty=allow_empty,
        max_delete=max_delete,
        instance_id=instance_id,
        state_dir=state_dir,
        secrets_dir=secrets_dir,
        gitea_url=gitea_url,
        gitea_repo=gitea_repo,
        gitea_token_file=gitea_token_file,
        public_url=public_url,
        concurrency=concurrency,
        health_timeout=health_timeout,
        registry_credentials=registry_credentials,
        progress=not as_json,
    )
    if result.exit_code and result.plan is None and not as_json and "\n" in result.message:
        for line in result.message.splitlines():
            typer.echo(f"error: {line}", err=True)
    _report(result, as_json, applied=True)
    raise typer.Exit(result.exit_code)


# ---- pins (registered last: the command module reuses the options above) ------------------------
from reconciler.cli_pins import pins_cmd  # noqa: E402

app.command("pins")(pins_cmd)

# ---- run: the daemon (registered last: the command module reuses the options above) -------------
from reconciler.daemon.command import run_command  # noqa: E402

app.command("run")(run_command)
