"""`reconciler validate` and `reconciler render`: a config repository checked, or shown as it renders."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from reconciler.cli.options import STATE, TRUST, AsJson, PathArg, exit_on_errors, operator
from reconciler.errors import ConfigError
from reconciler.model.config import ReconcilerFile
from reconciler.model.desired import DesiredState
from reconciler.pipeline.compose import build_parts
from reconciler.pipeline.settings import Settings
from reconciler.render.repo import load_settings, render_repo
from reconciler.report.desired import desired_json, render_tree, summary


def _render(path: Path, settings: Settings) -> DesiredState:
    parts = build_parts(settings)
    try:  # an invalid reconciler.yaml is reported by render_repo with every other error
        repo = load_settings(path)
    except ConfigError:
        repo = ReconcilerFile()
    with exit_on_errors():
        return render_repo(path, secrets=parts.secrets, fetcher=parts.fetcher(repo), policy=settings.policy)


@operator(STATE, TRUST, default_secrets=False)
def validate(settings: Settings, path: PathArg) -> None:
    """Check a config repository: schema, includes, externals, references, the operator policy. Exit 1 on any
    error."""
    typer.echo(summary(_render(path, settings)))


@operator(STATE, TRUST, default_secrets=False)
def render(settings: Settings, path: PathArg, as_json: AsJson = False) -> None:
    """Print the desired state a config repository renders to (never a secret value)."""
    state = _render(path, settings)
    typer.echo(json.dumps(desired_json(state), indent=2) if as_json else render_tree(state))
