"""What `plan` and `apply` print: the outcome (text or JSON). Progress while they work: `progress.py`.

Config errors of `validate` and `plan` in the `--format` asked for (`report/annotations.py`): text,
json or github (workflow commands, so a CI run annotates the lines at fault)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from reconciler.errors import ConfigError
from reconciler.pipeline.passes import PassOutcome
from reconciler.plan import plan_to_json, render_table
from reconciler.report.annotations import (
    Annotation,
    OutputFormat,
    count_errors,
    from_errors,
    from_lines,
    render,
)

FormatOption = Annotated[OutputFormat, typer.Option(
    "--format", envvar="RECONCILER_FORMAT", case_sensitive=False,
    help="How config errors are printed: text; json, a list of {file, line, column, message, severity} on stdout; "
         "github, workflow commands that annotate the lines in GitHub and Gitea Actions")]


def outcome_json(outcome: PassOutcome) -> str:
    doc: dict[str, object] = {"revision": outcome.revision, "status": outcome.status.value,
                              "exit_code": outcome.exit_code, "message": outcome.message}
    if outcome.errors:
        doc["errors"] = list(outcome.errors)
    if outcome.plan is not None:
        doc["plan"] = plan_to_json(outcome.plan)
    if outcome.run is not None:
        doc["run"] = outcome.run.model_dump(mode="json")
    doc["statuses"] = [s.as_json() for s in outcome.statuses]
    return json.dumps(doc, indent=2, default=str)


def report(outcome: PassOutcome, *, as_json: bool, applied: bool, verbose: bool = False,
           output_format: OutputFormat = OutputFormat.TEXT, prefix: str = "") -> None:
    if as_json:
        typer.echo(outcome_json(outcome))
        return
    if output_format is not OutputFormat.TEXT and not applied:
        if output_format is OutputFormat.GITHUB and outcome.plan is not None:
            typer.echo(render_table(outcome.plan, verbose=verbose))
        emit(plan_annotations(outcome), output_format, prefix)
        return
    if outcome.plan is None:
        if outcome.errors:
            emit(plan_annotations(outcome), OutputFormat.TEXT)
        for line in () if outcome.errors else outcome.message.splitlines():
            typer.echo(f"error: {line}", err=True)
    elif not applied:
        typer.echo(render_table(outcome.plan, verbose=verbose))
    for status in outcome.statuses if applied else ():
        typer.echo(f"{status.context}: {status.state}: {status.description}")
    if outcome.unposted:
        typer.echo(f"warning: {len(outcome.unposted)} status(es) could not be posted (forge unreachable)", err=True)


def plan_annotations(outcome: PassOutcome) -> list[Annotation]:
    """The config errors of a pass's outcome (the commit's, or each failed org's), a refused plan, or
    why there is no plan. A cause keeps its "N more errors follow" line (in `message`, see ConfigErrors)."""
    if outcome.plan is None:
        if not outcome.errors:
            return [Annotation(None, None, None, line) for line in outcome.message.splitlines() if line.strip()]
        listed = from_lines(outcome.errors)
        with_notes = from_lines(outcome.message.splitlines())
        return with_notes if [a for a in with_notes if a.severity == "error"] == listed else listed
    found = [a for failure in outcome.plan.failed_orgs for a in from_lines(failure.errors or (failure.first(),))]
    if outcome.plan.refused:
        found.append(Annotation(None, None, None, f"plan refused: {outcome.plan.refused}"))
    return found


def emit(annotations: list[Annotation], output_format: OutputFormat, prefix: str = "") -> None:
    """Annotations in `output_format` (text on stderr, json and github on stdout), then how many errors."""
    for line in render(annotations, output_format, prefix):
        typer.echo(line, err=output_format is OutputFormat.TEXT)
    if count_errors(annotations):
        typer.echo(f"{count_errors(annotations)} error(s); nothing was changed.", err=True)


@contextmanager
def config_errors_as(output_format: OutputFormat, prefix: str = "") -> Iterator[None]:
    """A config error printed in `output_format` (each cause with how many errors follow from it), exit 1."""
    try:
        yield
    except ConfigError as exc:
        emit(from_errors(exc), output_format, prefix)
        raise typer.Exit(1) from None


def workspace_prefix(source: str) -> str:
    """Where a local config repo sits in the CI workspace (`$GITHUB_WORKSPACE`, else the current
    directory), so a github annotation names the file the runner checked out; "" for a URL, or a
    directory outside the workspace or at its root."""
    path = Path(source)
    if not path.is_dir():
        return ""
    base = Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()
    try:
        relative = path.resolve().relative_to(base)
    except ValueError:
        return ""
    return "" if relative == Path(".") else relative.as_posix()
