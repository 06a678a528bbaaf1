"""Command line: `validate`, `render`, `plan`, `apply`, `pins`, `run`. Exit codes: 0 ok, 1 the change
is wrong (invalid config, failed health gate, refused by a guard, held), 2 the reconciler could not work,
3 changes pending (`plan --exit-code`), 64 usage error, 130 interrupted."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from reconciler.cli.config import render, validate
from reconciler.cli.control import register as register_control
from reconciler.cli.converge import apply_cmd, plan_cmd
from reconciler.cli.pins import pins_cmd
from reconciler.cli.run import run_command

try:  # typer 0.2x carries its own copy of click, whose exceptions its commands raise
    from typer._click import exceptions as click_errors
except ImportError:  # an older typer: click itself
    from click import exceptions as click_errors  # type: ignore[no-redef]

EX_USAGE = 64  # sysexits.h: the command was used incorrectly (unknown option, bad value, missing argument)


class Commands(TyperGroup):
    """The root command: click's own error handling with a usage error as ONE line on stderr and
    exit 64 (click's is a boxed message and 2, which this CLI uses for "could not work")."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `reconciler` alone: the help is already out
                sys.exit(EX_USAGE)
            usage_error(exc)
        except click_errors.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


def usage_error(exc: click_errors.UsageError) -> NoReturn:
    """`error: <what>; see 'reconciler plan --help'` on one line, exit 64."""
    message = re.sub(r"\s+", " ", exc.format_message()).replace("Value error, ", "").strip()
    where = exc.ctx.command_path if exc.ctx is not None else "reconciler"
    typer.echo(f"error: {message} (see '{where} --help')", err=True)
    sys.exit(EX_USAGE)


def package_version() -> str:
    try:
        return metadata.version("reconciler")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        from reconciler import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"reconciler {package_version()}")
        raise typer.Exit(0)


app = typer.Typer(cls=Commands, add_completion=True, no_args_is_help=True, help=__doc__,
                  pretty_exceptions_enable=False)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print the version and exit")] = False,
) -> None:
    pass


app.command("validate")(validate)
app.command("render")(render)
app.command("plan")(plan_cmd)
app.command("apply")(apply_cmd)
app.command("pins")(pins_cmd)
app.command("run")(run_command)
register_control(app)  # status, sync, suspend, resume, release, retry, promote: a running daemon, via its API
