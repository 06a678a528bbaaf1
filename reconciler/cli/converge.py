"""`reconciler plan` and `reconciler apply`: one pass over a config repo at a ref, printed or applied."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from reconciler.cli.options import APPLY, FORGE, OPERATOR, POLICY, SOURCE, AsJson, operator
from reconciler.cli.output import progress, report
from reconciler.errors import AnotherWriter, ReconcilerError, SourceError
from reconciler.model.config import ReconcilerFile
from reconciler.pipeline.compose import Parts, build_forge, build_parts
from reconciler.pipeline.passes import ForgePoster, PassOutcome, failed_outcome, run_pass
from reconciler.pipeline.settings import Settings
from reconciler.pipeline.writer import sole_writer
from reconciler.source.checkout import Checkout

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Also list unchanged workspaces")]


def checkout_or_exit(parts: Parts, source: str, ref: str | None) -> Checkout:
    try:
        return parts.checkout(source, ref)
    except SourceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@operator(SOURCE, OPERATOR, POLICY)
def plan_cmd(
    settings: Settings, source: str, ref: str | None, as_json: AsJson = False, verbose: Verbose = False
) -> None:
    """Show what apply would change, with a reason per workspace. Touches nothing."""
    parts = build_parts(settings)
    outcome = run_pass(checkout_or_exit(parts, source, ref), parts, apply=False)
    report(outcome, as_json=as_json, applied=False, verbose=verbose)
    raise typer.Exit(outcome.exit_code)


@operator(SOURCE, OPERATOR, POLICY, APPLY, FORGE)
def apply_cmd(settings: Settings, source: str, ref: str | None, as_json: AsJson = False) -> None:
    """Converge: canary tier, health gate, production tier; statuses on the commit."""
    forge = build_forge(settings)
    parts = build_parts(settings, forge=forge)
    tree = checkout_or_exit(parts, source, ref)
    if forge is not None and tree.revision is None:
        typer.echo("warning: --source is a plain directory: no commit to post statuses on", err=True)
    try:
        with sole_writer(parts.backend(ReconcilerFile()), settings.state_dir, "reconciler apply") as recovered:
            if recovered and not as_json:
                typer.echo(f"recovered {len(recovered)} workspace(s) an interrupted run left half-done: "
                           + ", ".join(recovered), err=True)
            outcome = _apply(parts, tree, progress_lines=not as_json)
    except AnotherWriter as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ReconcilerError as exc:  # the engine is away before anything was planned: `error` on the commit
        outcome = failed_outcome(tree.revision, exc, settings.contexts)
        if parts.forge is not None and tree.revision is not None:
            ForgePoster(parts.forge).post_lines(tree.revision, outcome.statuses, _runs_url(parts))
    report(outcome, as_json=as_json, applied=True)
    raise typer.Exit(outcome.exit_code)


def _apply(parts: Parts, tree: Checkout, *, progress_lines: bool) -> PassOutcome:
    """One pass with Ctrl-C turned into a clean stop: in-flight actions finish, nothing is cut half-way."""
    stop = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        typer.echo("interrupt: finishing the current actions, then stopping (nothing is cut half-way)", err=True)
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        return run_pass(tree, parts, poster=ForgePoster(parts.forge) if parts.forge else None,
                        target_url=_runs_url(parts), stop=stop,
                        on_event=progress if progress_lines else None)
    finally:
        signal.signal(signal.SIGINT, previous)


def _runs_url(parts: Parts) -> str:
    base = parts.settings.public_url.rstrip("/")
    return f"{base}/runs" if base else ""
