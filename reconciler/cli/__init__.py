"""Command line: `validate`, `render`, `plan`, `apply`, `pins`, `run`. Exit codes: 0 ok, 1 the change
is wrong (invalid config, failed health gate, refused by a guard, held), 2 the reconciler could not work."""

from __future__ import annotations

import typer

from reconciler.cli.config import render, validate
from reconciler.cli.converge import apply_cmd, plan_cmd
from reconciler.cli.pins import pins_cmd
from reconciler.cli.run import run_command

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)
app.command("validate")(validate)
app.command("render")(render)
app.command("plan")(plan_cmd)
app.command("apply")(apply_cmd)
app.command("pins")(pins_cmd)
app.command("run")(run_command)
