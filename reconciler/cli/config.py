"""`reconciler validate` and `reconciler render`: a config repository checked, or shown as it renders."""

from __future__ import annotations

import json

import typer

from reconciler.cli.options import AsJson, PathArg, SecretsDir, StateDir, exit_on_errors
from reconciler.errors import ConfigError
from reconciler.model.config import ReconcilerFile
from reconciler.model.desired import DesiredState
from reconciler.pipeline.compose import build_parts
from reconciler.pipeline.settings import DEFAULT_STATE, Settings
from reconciler.render.repo import load_settings, render_repo
from reconciler.report.desired import desired_json, render_tree, summary


def _render(path: PathArg, secrets_dir: SecretsDir, state_dir: StateDir) -> DesiredState:
    parts = build_parts(Settings(state_dir=state_dir, secrets_dir=secrets_dir))
    try:  # an invalid reconciler.yaml is reported by render_repo with every other error
        repo = load_settings(path)
    except ConfigError:
        repo = ReconcilerFile()
    with exit_on_errors():
        return render_repo(path, secrets=parts.secrets, fetcher=parts.fetcher(repo))


def validate(path: PathArg, secrets_dir: SecretsDir = None, state_dir: StateDir = DEFAULT_STATE) -> None:
    """Check a config repository: schema, includes, externals, references. Exit 1 on any error."""
    typer.echo(summary(_render(path, secrets_dir, state_dir)))


def render(
    path: PathArg, as_json: AsJson = False, secrets_dir: SecretsDir = None, state_dir: StateDir = DEFAULT_STATE
) -> None:
    """Print the desired state a config repository renders to (never a secret value)."""
    state = _render(path, secrets_dir, state_dir)
    typer.echo(json.dumps(desired_json(state), indent=2) if as_json else render_tree(state))
