"""`reconciler pins`: the lock view of a config repo against what runs; `--check` for CI.

Same first steps as a pass (checkout, render, observe, resolve pins; `reconcile.run_pass`), then
the pure lock view (`report.pins`). Registered on the app by `cli.py`. Exit codes:
0 (no drift, or no `--check`), 1 drift with `--check` or an invalid config, 2 the reconciler
could not tell (registry, git or engine unreachable).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

from reconciler.cli_options import (
    DEFAULT_STATE,
    AsJson,
    GiteaTokenFile,
    InstanceId,
    Ref,
    RegistryCreds,
    SecretsDir,
    Source,
    StateDir,
    exit_on_errors,
    read_token,
)
from reconciler.report.pins import LockView, lock_view, render_text
from reconciler.wiring import LazyFetcher, Options, docker_backend, pin_resolver

Check = Annotated[bool, typer.Option("--check", help="Exit 1 when what runs differs from what the pins resolve to")]


def build_view(options: Options, source: str, ref: str | None, secrets_dir: Path | None) -> LockView:
    """Checkout, render, observe and resolve, as a pass does up to its plan. Raises ReconcilerError."""
    from reconciler.render.pins import resolve_pins
    from reconciler.render.repo import load_settings, render_repo
    from reconciler.secrets import SecretStore
    from reconciler.source.checkout import checkout

    tree = checkout(source, ref, options.state_dir, token=options.token_value)
    settings = load_settings(tree.root)
    secrets = SecretStore.open(secrets_dir, options.state_dir) if secrets_dir else None
    fetcher = LazyFetcher(tree.root, options.state_dir, options.token_value)
    desired = render_repo(tree.root, fetcher=fetcher, secrets=secrets, revision=tree.revision)
    actual = docker_backend(options, settings).list_owned()
    installed = {o.id: o.plugins for o in sorted(actual, key=lambda o: o.running)}
    return lock_view(resolve_pins(desired, pin_resolver(options), installed), actual)


def pins_cmd(
    source: Source,
    ref: Ref = None,
    instance_id: InstanceId = "default",
    as_json: AsJson = False,
    check: Check = False,
    state_dir: StateDir = DEFAULT_STATE,
    secrets_dir: SecretsDir = None,
    registry_credentials: RegistryCreds = None,
    gitea_token_file: GiteaTokenFile = None,
) -> None:
    """Every plugin and image pin with its resolved SHA/digest and the workspaces using it."""
    token = read_token(gitea_token_file)
    with exit_on_errors():
        options = Options(instance_id=instance_id, state_dir=state_dir, registry_credentials=registry_credentials,
                          token=SecretStr(token) if token else None)
        view = build_view(options, source, ref, secrets_dir)
    if as_json:
        typer.echo(json.dumps({**view.model_dump(mode="json"), "drifted": view.drifted}, indent=2))
    else:
        typer.echo(render_text(view))
    raise typer.Exit(1 if check and view.drifted else 0)
