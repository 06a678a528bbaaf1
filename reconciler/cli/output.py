"""What `plan` and `apply` print: the outcome (text or JSON). Progress while they work: `progress.py`."""

from __future__ import annotations

import json

import typer

from reconciler.pipeline.passes import PassOutcome
from reconciler.plan import plan_to_json, render_table


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


def report(outcome: PassOutcome, *, as_json: bool, applied: bool, verbose: bool = False) -> None:
    if as_json:
        typer.echo(outcome_json(outcome))
        return
    if outcome.plan is None:
        lines = list(outcome.errors) or outcome.message.splitlines()
        for line in lines:
            typer.echo(f"error: {line}", err=True)
        if outcome.errors:
            typer.echo(f"{len(outcome.errors)} error(s); nothing was changed.", err=True)
    elif not applied:
        typer.echo(render_table(outcome.plan, verbose=verbose))
    for status in outcome.statuses if applied else ():
        typer.echo(f"{status.context}: {status.state}: {status.description}")
    if outcome.unposted:
        typer.echo(f"warning: {len(outcome.unposted)} status(es) could not be posted (forge unreachable)", err=True)
