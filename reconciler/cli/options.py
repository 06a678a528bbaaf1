"""The operator's flags, declared once: every one also readable from `RECONCILER_<FLAG>`.

A command declares only its own parameters and asks for the shared groups with `@operator(...)`;
the decorator adds those flags to the command's signature (typer reads it) and hands the command
one frozen `Settings` built from them. So `validate`, `plan`, `apply`, `pins` and `run` cannot
disagree on a flag's name, default or meaning, and every one of them reaches its source through
`checkout_or_exit` (`Parts.checkout`): a directory, a local git repository or a git URL at `--ref`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr

from reconciler.errors import ConfigError, ConfigErrors, ReconcilerError, SourceError
from reconciler.model.enums import Mode
from reconciler.pipeline.operator import default_policy_path, load_credentials, load_policy, token_host
from reconciler.pipeline.settings import DEFAULT_SECRETS, DEFAULT_STATE, Settings

if typing.TYPE_CHECKING:
    from reconciler.cli.progress import Progress
    from reconciler.pipeline.compose import Parts
    from reconciler.source.checkout import Checkout


def _option(flag: str, help: str, **extra: Any) -> Any:
    return typer.Option(flag, envvar="RECONCILER_" + flag.lstrip("-").replace("-", "_").upper(), help=help, **extra)


AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
SecretsDir = Annotated[Path | None, _option("--secrets-dir", "Secret values (checked only when given)")]
StateDir = Annotated[Path, _option("--state-dir", "Mirrors, caches, keys, journal")]

# name -> (annotation, default); the groups a command can ask for
_Flag = tuple[Any, Any]
_REF: _Flag = (Annotated[str | None, _option("--ref", "Branch, tag or SHA (default: HEAD)")], None)
SOURCE: dict[str, _Flag] = {
    "source": (Annotated[str, _option("--source", "Config repo: directory, local git repo or URL")], ...),
    "ref": _REF,
}
# `validate` and `render`: the same sources, also given as the first argument (`reconciler validate PATH`)
SOURCE_ARG: dict[str, _Flag] = {
    "source": (Annotated[str | None, typer.Argument(
        metavar="[SOURCE]", help="Config repo: directory, local git repo or URL (or --source)",
        show_default=False)], None),
    "source_option": (Annotated[str | None, _option("--source", "Config repo, as SOURCE")], None),
    "ref": _REF,
}
STATE: dict[str, _Flag] = {
    "state_dir": (StateDir, DEFAULT_STATE),
    "secrets_dir": (Annotated[Path | None, _option(
        "--secrets-dir", f"Secret values (default for plan/apply/run: {DEFAULT_SECRETS})")], None),
}
TRUST: dict[str, _Flag] = {
    "policy": (Annotated[Path | None, _option(
        "--policy", "Operator policy file: what a commit may ask for (default: ~/.config/reconciler/policy.yaml "
        "if it exists)")],
        None),
    "allow_source": (Annotated[list[str] | None, _option(
        "--allow-source", "Also allow this git source prefix (host:port/owner/, port optional); repeatable")], None),
    "allow_registry": (Annotated[list[str] | None, _option(
        "--allow-registry", "Also allow this image registry (host:port/path, port and path optional); repeatable")],
        None),
    "credentials": (Annotated[Path | None, _option(
        "--credentials", "Credentials file: which credential goes to which git or registry host")], None),
}
TOKEN: dict[str, _Flag] = {
    "gitea_token_file": (Annotated[Path | None, _option(
        "--gitea-token-file", "Gitea API token; also the git credential for the Gitea host only")], None),
}
OPERATOR: dict[str, _Flag] = {
    "instance_id": (Annotated[str, _option("--instance-id", "Owns only workspaces labelled with it")], "default"),
    **STATE,
    **TRUST,
    "registry_credentials": (Annotated[Path | None, _option("--registry-credentials", "docker config.json")], None),
    **TOKEN,
}
POLICY: dict[str, _Flag] = {
    "mode": (Annotated[Mode | None, _option("--mode", "reconcile or merge (default: reconciler.yaml)")], None),
    "allow_empty": (Annotated[bool, _option("--allow-empty", "Let an empty repo delete everything")], False),
    "max_delete": (Annotated[int | None, _option("--max-delete", "Cap on deletions per run", min=0)], None),
}
APPLY: dict[str, _Flag] = {
    "concurrency": (Annotated[int, _option(
        "--concurrency", "Workspaces created, updated or deleted at the same time inside a tier (the tier's "
        "health gate still waits for all of them)", min=1, max=64)], 4),
    "health_timeout_s": (Annotated[float | None, _option("--health-timeout", "Seconds per tier gate")], None),
}
FORGE: dict[str, _Flag] = {
    "gitea_url": (Annotated[str | None, _option("--gitea-url", "Gitea base URL: post statuses there")], None),
    "gitea_repo": (Annotated[str | None, _option("--gitea-repo", "owner/name of the config repo on Gitea")], None),
    "public_url": (Annotated[str, _option("--public-url", "Base URL of the run pages, for status links")], ""),
    "status_context_instance": (Annotated[bool, _option(
        "--status-context-instance", "Put --instance-id in the status contexts: reconciler/<instance>/canary, "
        "reconciler/<instance>/production, reconciler/<instance>/plan")], False),
}


def operator(*groups: dict[str, _Flag], default_secrets: bool = True) -> Callable[[Callable[..., None]], Any]:
    """Add the flags of `groups` to a command; it receives `source`/`ref` (if asked) and `settings`.

    `default_secrets`: without `--secrets-dir`, use the default directory (plan/apply/run) or check
    no secrets at all (pins).
    """
    flags = {name: flag for group in groups for name, flag in group.items()}

    def decorate(command: Callable[..., None]) -> Any:
        hints = typing.get_type_hints(command, include_extras=True)  # the command's own annotations, resolved
        declared = inspect.signature(command).parameters.values()
        own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in declared
               if p.name != "settings" and p.name not in flags]
        shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann,
                                    default=inspect.Parameter.empty if default is ... else default)
                  for name, (ann, default) in flags.items()]
        params = shared + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        if "source_option" in flags:  # to tell `--source` from RECONCILER_SOURCE
            params.append(inspect.Parameter("cli_context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))

        @functools.wraps(command, assigned=("__module__", "__name__", "__qualname__", "__doc__"), updated=())
        def wrapper(**kwargs: Any) -> None:
            if "source_option" in kwargs:
                kwargs["source"] = _one_source(kwargs.pop("cli_context"), kwargs["source"], kwargs.pop("source_option"))
            values = {name: kwargs.pop(name) for name in flags if name not in _PASSED}
            if default_secrets and "secrets_dir" in values and values["secrets_dir"] is None:
                values["secrets_dir"] = DEFAULT_SECRETS
            command(settings=build_settings(source=kwargs.get("source"), **values), **kwargs)

        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate


_PASSED = frozenset({"source", "source_option", "ref"})  # handed to the command itself, not to Settings


def _one_source(ctx: typer.Context, argument: str | None, option: str | None) -> str:
    """SOURCE or `--source`: the argument wins over RECONCILER_SOURCE; both on the command line is a
    usage error, and so is neither."""
    if argument and option and argument != option:
        origin = ctx.get_parameter_source("source_option")
        if origin is None or origin.name != "ENVIRONMENT":
            raise typer.BadParameter(f"{argument!r} and --source {option!r} both given; give one", ctx=ctx,
                                     param_hint="SOURCE")
    source = argument or option
    if not source:
        raise typer.BadParameter("missing: a directory, a local git repository or a git URL (or --source)",
                                 ctx=ctx, param_hint="SOURCE")
    return source


def checkout_or_exit(parts: Parts, source: str, ref: str | None, progress: Progress | None = None) -> Checkout:
    """The tree of `source` at `ref` through `Parts.checkout`, the one checkout every command uses
    (told to `progress` when given); exit 2 when it cannot be had."""
    try:
        if progress is None:
            return parts.checkout(source, ref)
        return progress.fetch(source, ref, lambda: parts.checkout(source, ref))
    except SourceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def read_secret_file(path: Path | None, what: str = "token file") -> str | None:
    """A secret from its file (stripped), registered with the log scrubber; exit 2 when unreadable."""
    if path is None:
        return None
    try:
        value = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        typer.echo(f"error: cannot read {what} {path}: {reason}", err=True)
        raise typer.Exit(2) from None
    from reconciler.logs import mask_secret

    mask_secret(value)
    return value or None


def build_settings(
    *,
    source: str | None = None,
    gitea_token_file: Path | None = None,
    policy: Path | None = None,
    allow_source: list[str] | None = None,
    allow_registry: list[str] | None = None,
    credentials: Path | None = None,
    **values: Any,
) -> Settings:
    """The one `Settings` of this invocation: flags, the token read from its file, the policy and the
    credentials files read and checked (a broken operator file exits 2 naming its line)."""
    token = read_secret_file(gitea_token_file, "token file")
    if values.get("gitea_url") and not values.get("gitea_repo"):
        typer.echo("error: --gitea-url needs --gitea-repo owner/name", err=True)
        raise typer.Exit(2)
    if policy is None and default_policy_path().is_file():
        policy = default_policy_path()
    try:
        loaded_policy = load_policy(policy, sources=allow_source or (), registries=allow_registry or ())
        owner = token_host(values.get("gitea_url"), source)
        loaded_credentials = load_credentials(credentials, token=token, token_host=owner)
    except ConfigError as exc:
        for err in exc.errors if isinstance(exc, ConfigErrors) else [exc]:
            typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    return Settings(token=SecretStr(token) if token else None, policy=loaded_policy,
                    credentials=loaded_credentials, **values)


@contextmanager
def exit_on_errors() -> Iterator[None]:
    """A config error exits 1 with every error listed; any other reconciler error exits 2."""
    try:
        yield
    except ConfigError as exc:
        print_config_errors(exc)
        raise typer.Exit(1) from None
    except ReconcilerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def print_config_errors(exc: ConfigError) -> None:
    errors = exc.errors if isinstance(exc, ConfigErrors) else [exc]
    for err in errors:
        typer.echo(f"error: {err}", err=True)
    typer.echo(f"{len(errors)} error(s); nothing was changed.", err=True)
