"""The operator's files, read once at the entry point: the policy and the credentials.

    --policy FILE        what a commit may ask for (`model/policy.Policy`; schemas/policy.schema.json)
    --credentials FILE   which credential goes to which host (schemas/credentials.schema.json):

        git:
          - {host: gitea.example.com, token_file: /run/secrets/gitea-token}       # user `oauth2`
          - {host: git.example.com, username: deploy, password_file: /run/secrets/git-password}
          - {host: github.com, ssh_key_file: /run/secrets/deploy-key}              # `<key>.pub` beside it
        registries:
          - {host: registry.example.com, username: bot, password_file: /run/secrets/registry-password}

Secret values are only ever read from files (never written inline), registered with the log
scrubber as they are read. A broken file is a `ConfigError` naming the file and line: the operator
fixes it, the reconciler does not start on a guess.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, SecretStr

from reconciler.errors import ConfigError, ConfigErrors, Location
from reconciler.logs import mask_secret
from reconciler.model.credentials import Credentials, CredentialsFile, GitCredential, RegistryCredential, url_host
from reconciler.model.policy import Policy
from reconciler.render.loader import TreeContext, load_yaml
from reconciler.render.validate import validate


def _load(path: Path, model: type[BaseModel]) -> BaseModel:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise ConfigErrors([ConfigError(f"{path} does not exist or is not a file", Location(str(path)))])
    ctx = TreeContext(path.parent, path.parent, label=f"{path.parent}/")
    parsed, errors = validate(model, load_yaml(path, ctx) or {}, Location(str(path)))
    if errors or parsed is None:
        raise ConfigErrors(errors)
    return parsed


def load_policy(path: Path | None, *, sources: Sequence[str] = (), registries: Sequence[str] = ()) -> Policy:
    """The policy file (if any), with the flags' extra allowed sources and registries added."""
    base = _load(path, Policy) if path is not None else Policy()
    assert isinstance(base, Policy)
    origin = f"the operator policy {path}" if path is not None else "the operator policy (no --policy file given)"
    return base.model_copy(update={"sources": [*base.sources, *sources],
                                   "registries": [*base.registries, *registries], "origin": origin})


def _secret(path: Path, what: str) -> SecretStr:
    try:
        value = path.expanduser().read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigErrors([ConfigError(f"cannot read the {what} {path}: {reason}", Location(str(path)))]) from None
    mask_secret(value)
    return SecretStr(value)


def load_credentials(path: Path | None, *, token: str | None = None, token_host: str | None = None) -> Credentials:
    """The credentials file (if any), plus the Gitea token as a credential for `token_host` only."""
    git: list[GitCredential] = []
    registries: list[RegistryCredential] = []
    if path is not None:
        parsed = _load(path, CredentialsFile)
        assert isinstance(parsed, CredentialsFile)
        for entry in parsed.git:
            secret_file = entry.token_file or entry.password_file
            git.append(GitCredential(
                host=entry.host.lower(), username=entry.username,
                password=_secret(secret_file, f"git credential for {entry.host}") if secret_file else None,
                ssh_key=entry.ssh_key_file.expanduser() if entry.ssh_key_file else None,
            ))
        registries = [RegistryCredential(host=e.host.lower(), username=e.username,
                                         password=_secret(e.password_file, f"registry password for {e.host}"))
                      for e in parsed.registries]
    if token and token_host and not any(c.host == token_host and c.ssh_key is None for c in git):
        git.append(GitCredential(host=token_host, password=SecretStr(token)))
    return Credentials(git=tuple(git), registries=tuple(registries))


def token_host(gitea_url: str | None, source: str | None) -> str | None:
    """Whose credential the Gitea token is: the Gitea host, else the config repo URL's host."""
    for url in (gitea_url, source):
        if url and "://" in url:
            return url_host(url)[0] or None
    return None


def default_policy_path() -> Path:
    """`$XDG_CONFIG_HOME/reconciler/policy.yaml` (`~/.config/...`): read when `--policy` is not given."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "reconciler" / "policy.yaml"
