"""`reconciler validate` and `reconciler render`: a config repository checked, or shown as it renders.

The source is what `apply` takes (a directory, a local git repository, a git URL at `--ref`), reached
through the same checkout with the same credentials and trust policy. One difference: a local work
tree without `--ref` is read as it is on disk, uncommitted edits included (check before committing);
with `--ref` it is the commit, as `apply` would see it."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from reconciler.cli.options import SOURCE_ARG, STATE, TOKEN, TRUST, AsJson, checkout_or_exit, exit_on_errors, operator
from reconciler.cli.output import FormatOption, config_errors_as, workspace_prefix
from reconciler.cli.progress import Progress
from reconciler.errors import ConfigError
from reconciler.model.config import ReconcilerFile
from reconciler.model.desired import DesiredState
from reconciler.pipeline.compose import build_parts
from reconciler.pipeline.settings import Settings
from reconciler.render.repo import load_settings, render_repo
from reconciler.report.annotations import OutputFormat
from reconciler.report.desired import desired_json, render_tree, summary
from reconciler.source.checkout import Checkout


def _render(source: str, ref: str | None, settings: Settings, *, quiet: bool = False,
            output_format: OutputFormat = OutputFormat.TEXT) -> DesiredState:
    parts = build_parts(settings)
    if ref is None and _work_tree(source):
        tree = Checkout(Path(source).resolve(), None, None)
    else:
        tree = checkout_or_exit(parts, source, ref, None if quiet else Progress())
    path = tree.root
    try:  # an invalid reconciler.yaml is reported by render_repo with every other error
        repo = load_settings(path)
    except ConfigError:
        repo = ReconcilerFile()
    with exit_on_errors(), config_errors_as(output_format, workspace_prefix(source)):
        return render_repo(path, secrets=parts.secrets, fetcher=parts.fetcher(repo), policy=settings.policy,
                           revision=tree.revision)


def _work_tree(source: str) -> bool:
    return "://" not in source and (Path(source) / ".git").exists()


@operator(SOURCE_ARG, STATE, TRUST, TOKEN, default_secrets=False)
def validate(settings: Settings, source: str, ref: str | None,
             output_format: FormatOption = OutputFormat.TEXT) -> None:
    """Check a config repository (directory, git repository or URL): schema, includes, externals,
    references, the operator policy. Exit 1 on any error."""
    state = _render(source, ref, settings, quiet=output_format is not OutputFormat.TEXT, output_format=output_format)
    if output_format is OutputFormat.JSON:  # stdout is the list of errors: none
        typer.echo("[]")
    typer.echo(summary(state), err=output_format is OutputFormat.JSON)


@operator(SOURCE_ARG, STATE, TRUST, TOKEN, default_secrets=False)
def render(settings: Settings, source: str, ref: str | None, as_json: AsJson = False) -> None:
    """Print the desired state a config repository (directory, git repository or URL) renders to (never a
    secret value)."""
    state = _render(source, ref, settings, quiet=as_json)
    typer.echo(json.dumps(desired_json(state), indent=2) if as_json else render_tree(state))
