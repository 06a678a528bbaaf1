"""Credentials per host, and the one rule for offering them. Values; loading lives at the entry point.

A credential belongs to one host (`host[:port]`) and is offered only to that host, only over
https or ssh (plain http only on a loopback address, for tests), and never to a redirect target on
another host: the git layer asks `git_for(url)` with the URL it is actually talking to, every time.
The Gitea token is, by default, a credential for the Gitea host only. A pull request from a fork
is rendered with `NONE`: whatever its config names gets no credential at all.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GitCredential(_Frozen):
    host: str  # host[:port], lower case
    username: str = "oauth2"
    password: SecretStr | None = None  # a token or a password
    ssh_key: Path | None = None  # a deploy key (private key file; `<key>.pub` beside it)


class RegistryCredential(_Frozen):
    host: str
    username: str
    password: SecretStr


class Credentials(_Frozen):
    git: tuple[GitCredential, ...] = ()
    registries: tuple[RegistryCredential, ...] = ()
    withheld: str | None = None  # why there are none on purpose (a fork's pull request), for the error

    def git_for(self, url: str) -> GitCredential | None:
        """The credential for the host `url` names, if the scheme lets one be sent there at all."""
        host, scheme = url_host(url)
        if not host or not may_send_credentials(scheme, host):
            return None
        ssh = scheme == "ssh"
        return next((c for c in self.git if c.host == host and (c.ssh_key is not None) == ssh), None)

    def get(self, host: str) -> tuple[str, str] | None:
        """Registry credentials for `host` (the Mapping-like lookup the registry client uses)."""
        found = next((c for c in self.registries if c.host == host.lower()), None)
        return (found.username, found.password.get_secret_value()) if found else None

    def secret_values(self) -> list[str]:
        """Every secret held, for the log scrubber."""
        values = [c.password.get_secret_value() for c in self.git if c.password]
        return values + [c.password.get_secret_value() for c in self.registries]


NONE = Credentials()
FOR_FORKS = Credentials(withheld="credentials are not used for pull requests from forks")


# ---- the operator's credentials file (`--credentials FILE`; schemas/credentials.schema.json) ----------
HOST_PATTERN = r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:]+\](:[0-9]{1,5})?$"


class GitEntry(_Frozen):
    host: str = Field(pattern=HOST_PATTERN, description="host[:port] the credential belongs to")
    username: str = Field(default="oauth2", max_length=200)
    token_file: Path | None = Field(default=None, description="A token (sent as the password of `username`)")
    password_file: Path | None = None
    ssh_key_file: Path | None = Field(default=None, description="A deploy key; its public half at <file>.pub")


class RegistryEntry(_Frozen):
    host: str = Field(pattern=HOST_PATTERN)
    username: str = Field(max_length=200)
    password_file: Path


class CredentialsFile(_Frozen):
    """`--credentials FILE`: credentials per host, for git sources and image registries."""

    git: list[GitEntry] = Field(default_factory=list)
    registries: list[RegistryEntry] = Field(default_factory=list)


def url_host(url: str) -> tuple[str, str]:
    """(`host[:port]` lower case, scheme) of a git URL; scp-like `git@host:path` is ssh."""
    if "://" not in url:
        if "@" in url.split(":", 1)[0] and ":" in url:
            return url.split("@", 1)[1].split(":", 1)[0].lower(), "ssh"
        return "", "file"
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 address keeps its brackets, as `host[:port]` spells it
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return host, parts.scheme.lower()


def is_loopback(host: str) -> bool:
    """`127.0.0.1[:port]`, `[::1][:port]`, `localhost`: addresses that never leave this machine."""
    name = host.split(":")[0] if host.count(":") == 1 else host  # a port's colon; IPv6 has several
    name = name[1:name.find("]")] if name.startswith("[") else name
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def may_send_credentials(scheme: str, host: str) -> bool:
    """https and ssh anywhere; plain http only to a loopback address (tests)."""
    return scheme in ("https", "ssh") or (scheme == "http" and is_loopback(host))
