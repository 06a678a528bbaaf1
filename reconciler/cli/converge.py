"""`reconciler plan` and `reconciler apply`: one pass over a config repo at a ref, printed or applied.

Progress (fetch, pins, tiers, actions, health gates) goes to stderr as it happens (`progress.py`);
stdout carries only the result, and nothing else with `--json` or a `--format` other than text.

With production manual (the operator policy's `production: manual`, or an org's own in its
org.yaml), `apply` applies canary and keeps the production changes of those orgs back: production's
status is `pending` "waiting for approval", a line says how to approve, and the exit code is 0
(nothing failed; the daemon's commit waits the same way). `--promote` is the operator's approval of
production for this one run."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated

import typer

from reconciler.cli.options import APPLY, FORGE, OPERATOR, POLICY, SOURCE, AsJson, checkout_or_exit, operator
from reconciler.cli.output import FormatOption, report, workspace_prefix
from reconciler.cli.progress import Progress, ReportingParts
from reconciler.daemon.approval import keep_for_approval, manual_orgs
from reconciler.daemon.suspension import APPROVAL, Waiting, changes_text
from reconciler.errors import AnotherWriter, ReconcilerError
from reconciler.model.config import ReconcilerFile
from reconciler.pipeline.compose import Parts, build_forge, build_parts
from reconciler.pipeline.passes import ForgePoster, KeepBack, PassOutcome, failed_outcome, run_pass
from reconciler.pipeline.settings import Settings
from reconciler.pipeline.stages import Planned
from reconciler.pipeline.writer import sole_writer
from reconciler.report.annotations import OutputFormat
from reconciler.source.checkout import Checkout
from reconciler.source.mirror import safe_url

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
    progress = None if as_json or output_format is not OutputFormat.TEXT else Progress()
    parts = ReportingParts.of(build_parts(settings), progress)
    outcome = run_pass(checkout_or_exit(parts, source, ref, progress), parts, apply=False)
    if progress is not None:
        progress.close()
    report(outcome, as_json=as_json, applied=False, verbose=verbose, output_format=output_format,
           prefix=workspace_prefix(source))
    pending = outcome.exit_code == 0 and outcome.plan is not None and bool(outcome.plan.changes())
    raise typer.Exit(CHANGES_PENDING if exit_code and pending else outcome.exit_code)


Promote = Annotated[bool, typer.Option(
    "--promote", help="Approve production for this run: with production manual (the policy's or an org's), "
    "apply production's changes too instead of keeping them waiting for approval")]


@operator(SOURCE, OPERATOR, POLICY, APPLY, FORGE)
def apply_cmd(settings: Settings, source: str, ref: str | None, as_json: AsJson = False,
              promote: Promote = False) -> None:
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
            outcome = _apply(parts, tree, progress, promote)
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
    waiting = _waiting(outcome)
    if waiting and not as_json:
        where = f" --ref {tree.revision[:12]}" if tree.revision else ""
        typer.echo(f"production waits for approval: {waiting} kept back (production: manual); to apply them: "
                   f"reconciler apply --source {safe_url(source)}{where} --promote", err=True)
    raise typer.Exit(outcome.exit_code)


def _waiting(outcome: PassOutcome) -> str:
    """"N change(s)" of production kept waiting for approval by this run, or ""."""
    kept = [a for a in outcome.plan.actions if APPROVAL in a.reason] if outcome.plan is not None else []
    return changes_text(len(kept)) if kept and APPROVAL in outcome.message else ""


def _keep_production(parts: Parts, promote: bool) -> KeepBack:
    """Production's changes of the orgs with production manual, kept back unless `promote`."""

    def keep(planned: Planned) -> tuple[Planned, Callable[[PassOutcome], PassOutcome] | None]:
        orgs = manual_orgs(parts.settings.policy.production, planned.prepared.desired)
        plan, count = keep_for_approval(planned.plan, orgs)
        if promote or not count:
            return planned, None
        waiting = Waiting(planned.prepared.revision or "", approval=count)

        def edit(outcome: PassOutcome) -> PassOutcome:
            final = waiting.lines(outcome.final())
            note = waiting.message(applied=any(APPROVAL in line.description for line in final))
            return replace(outcome, statuses=(*outcome.statuses, *final), plan=plan,
                           message=f"{outcome.message}; {note}" if note else outcome.message)

        return Planned(planned.prepared, plan), edit

    return keep


def _apply(parts: Parts, tree: Checkout, progress: Progress | None, promote: bool = False) -> PassOutcome:
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
                        on_event=progress.event if progress is not None else None,
                        keep_back=_keep_production(parts, promote))
    finally:
        signal.signal(signal.SIGINT, previous)


def _runs_url(parts: Parts) -> str:
    base = parts.settings.public_url.rstrip("/")
    return f"{base}/runs" if base else ""
