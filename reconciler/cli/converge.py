"""`reconciler plan` and `reconciler apply`: one pass over a config repo at a ref, printed or applied.

Progress (fetch, pins, tiers, actions, health gates) goes to stderr as it happens (`progress.py`);
stdout carries only the result, and nothing else with `--json`."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from reconciler.cli.options import APPLY, FORGE, OPERATOR, POLICY, SOURCE, AsJson, checkout_or_exit, operator
from reconciler.cli.output import FormatOption, report, workspace_prefix
from reconciler.cli.progress import Progress, ReportingParts
from reconciler.errors import AnotherWriter, ReconcilerError
from reconciler.model.config import ReconcilerFile
from reconciler.pipeline.compose import Parts, build_forge, build_parts
from reconciler.pipeline.passes import ForgePoster, PassOutcome, failed_outcome, run_pass
from reconciler.pipeline.settings import Settings
from reconciler.pipeline.writer import sole_writer
from reconciler.report.annotations import OutputFormat
from reconciler.source.checkout import Checkout

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Also list unchanged workspaces")]
ExitCode = Annotated[bool, typer.Option(
    "--exit-code", help="Exit 0 no changes, 1 invalid or refused, 2 could not plan, 3 changes pending (for CI)")]
CHANGES_PENDING = 3  # `plan --exit-code`: apply would change something (as `terraform plan -detailed-exitcode`'s 2)


@operator(SOURCE, OPERATOR, POLICY)
def plan_cmd(
    settings: Settings, source: str, ref: str | None, as_json: AsJson = False, verbose: Verbose = False,
    exit_code: ExitCode = False, output_format: FormatOption = OutputFormat.TEXT,
) -> None:
    """Show what apply would change, with a reason per workspace. Touches nothing."""
    progress = None if as_json else Progress()
    parts = ReportingParts.of(build_parts(settings), progress)
    outcome = run_pass(checkout_or_exit(parts, source, ref, progress), parts, apply=False)
    if progress is not None:
        progress.close()
    report(outcome, as_json=as_json, applied=False, verbose=verbose, output_format=output_format,
           prefix=workspace_prefix(source))
    pending = outcome.exit_code == 0 and outcome.plan is not None and bool(outcome.plan.changes())
    raise typer.Exit(CHANGES_PENDING if exit_code and pending else outcome.exit_code)


@operator(SOURCE, OPERATOR, POLICY, APPLY, FORGE)
def apply_cmd(settings: Settings, source: str, ref: str | None, as_json: AsJson = False) -> None:
    """Converge: canary tier, health gate, production tier; statuses on the commit."""
    forge = build_forge(settings)
    progress = None if as_json else Progress()
    parts = ReportingParts.of(build_parts(settings, forge=forge), progress)
    tree = checkout_or_exit(parts, source, ref, progress)
    if forge is not None and tree.revision is None:
        typer.echo("warning: --source is a plain directory: no commit to post statuses on", err=True)
    try:
        with sole_writer(parts.backend(ReconcilerFile()), settings.state_dir, "reconciler apply") as recovered:
            if recovered and not as_json:
                typer.echo(f"recovered {len(recovered)} workspace(s) an interrupted run left half-done: "
                           + ", ".join(recovered), err=True)
            outcome = _apply(parts, tree, progress)
    except AnotherWriter as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ReconcilerError as exc:  # the engine is away before anything was planned: `error` on the commit
        outcome = failed_outcome(tree.revision, exc, settings.contexts)
        if parts.forge is not None and tree.revision is not None:
            ForgePoster(parts.forge).post_lines(tree.revision, outcome.statuses, _runs_url(parts))
    if progress is not None:
        progress.close()
    report(outcome, as_json=as_json, applied=True)
    raise typer.Exit(outcome.exit_code)


def _apply(parts: Parts, tree: Checkout, progress: Progress | None) -> PassOutcome:
    """One pass with Ctrl-C turned into a clean stop: in-flight actions finish, nothing is cut half-way."""
    stop = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        message = "interrupt: finishing the current actions, then stopping (nothing is cut half-way)"
        if progress is not None:
            progress.line(message)
        else:
            typer.echo(message, err=True)
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        return run_pass(tree, parts, poster=ForgePoster(parts.forge) if parts.forge else None,
                        target_url=_runs_url(parts), stop=stop,
                        on_event=progress.event if progress is not None else None)
    finally:
        signal.signal(signal.SIGINT, previous)


def _runs_url(parts: Parts) -> str:
    base = parts.settings.public_url.rstrip("/")
    return f"{base}/runs" if base else ""
