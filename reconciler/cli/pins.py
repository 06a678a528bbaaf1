"""`reconciler pins`: the lock view of a config repo against what runs; `--check` for CI.

The pipeline's `prepare` stage (render, observe, resolve pins), then the pure lock view
(`report.pins`). Exit codes: 0 (no drift, or no `--check`), 1 drift with `--check` or an invalid
config, 2 the reconciler could not tell (registry, git or engine unreachable).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from reconciler.cli.options import OPERATOR, SOURCE, AsJson, exit_on_errors, operator
from reconciler.pipeline.compose import build_parts
from reconciler.pipeline.settings import Settings
from reconciler.pipeline.stages import prepare
from reconciler.report.pins import lock_view, render_text

Check = Annotated[bool, typer.Option("--check", help="Exit 1 when what runs differs from what the pins resolve to")]


@operator(SOURCE, OPERATOR, default_secrets=False)
def pins_cmd(settings: Settings, source: str, ref: str | None, as_json: AsJson = False, check: Check = False) -> None:
    """Every plugin and image pin with its resolved SHA/digest and the workspaces using it."""
    parts = build_parts(settings)
    with exit_on_errors():
        prepared = prepare(parts.checkout(source, ref), parts)
    view = lock_view(prepared.desired, list(prepared.actual))
    if as_json:
        typer.echo(json.dumps({**view.model_dump(mode="json"), "drifted": view.drifted}, indent=2))
    else:
        typer.echo(render_text(view))
    raise typer.Exit(1 if check and view.drifted else 0)
