"""What `plan` and `apply` print: progress lines while applying, then the outcome (text or JSON)."""

from __future__ import annotations

import json

import typer

from reconciler.model.events import ActionDone, ApplyEvent, GateDone, GateStarted, TierStarted
from reconciler.pipeline.passes import PassOutcome
from reconciler.plan import plan_to_json, render_table


def progress(event: ApplyEvent) -> None:
    """One line on stderr per moment of an apply."""
    if isinstance(event, TierStarted):
        typer.echo(f"{event.tier}: {event.changes} change(s), {event.unchanged} unchanged", err=True)
    elif isinstance(event, ActionDone):
        r = event.result
        typer.echo(f"  {r.outcome}: {r.kind} {r.workspace_id} ({r.duration_s:.1f}s)", err=True)
    elif isinstance(event, GateStarted):
        typer.echo(f"{event.tier}: health gate, waiting for {event.total} workspace(s)", err=True)
    elif isinstance(event, GateDone):
        typer.echo(f"{event.result.tier}: health gate {event.result.outcome}", err=True)


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
