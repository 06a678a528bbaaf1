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
