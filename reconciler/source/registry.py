"""Registry v2 client: resolve an image tag to its digest without pulling it.

HEAD /v2/<name>/manifests/<tag> with the manifest-list and OCI accept headers; on 401 follow the
`WWW-Authenticate: Bearer realm=...,service=...,scope=...` challenge (GHCR, ECR-style, Harbor), or
retry with basic auth for `Basic` challenges. Credentials come from a docker-style config file
(`{"auths": {"host": {"auth": base64(user:pass)}}}`) and never appear in errors or logs.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import httpx

from reconciler.errors import SourceError
from reconciler.render.images import split_reference

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
DOCKER_HUB = "registry-1.docker.io"


def parse_reference(ref: str) -> tuple[str, str, str]:
    """`host[:port]/name[:tag]` -> (host, name, tag); no host means Docker Hub."""
    repo, tag, _ = split_reference(ref)
    first, _, rest = repo.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, name = first, rest
    else:
        host, name = DOCKER_HUB, repo if "/" in repo else f"library/{repo}"
    return host, name, tag or "latest"


def load_credentials(path: Path | None) -> dict[str, tuple[str, str]]:
    if path is None or not path.is_file():
        return {}
    try:
        auths = json.loads(path.read_text()).get("auths", {})
        out = {}
        for host, entry in auths.items():
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            out[host.removeprefix("https://").removeprefix("http://").rstrip("/")] = (user, password)
        return out
    except (ValueError, KeyError, OSError) as exc:
        raise SourceError(f"registry credentials file {path} is not valid ({type(exc).__name__})") from None


class RegistryClient:
    def __init__(
        self,
        credentials: dict[str, tuple[str, str]] | None = None,
        timeout: float = 10,
        insecure_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "[::1]"),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.credentials = credentials or {}
        self.insecure_hosts = insecure_hosts
        self.client = httpx.Client(timeout=timeout, transport=transport, follow_redirects=True)

    def _base(self, host: str) -> str:
        scheme = "http" if host.split(":")[0] in self.insecure_hosts else "https"
        return f"{scheme}://{host}"

    def digest(self, ref: str) -> str:
        """The digest a tag points at now. Raises SourceError (never with credentials in it)."""
        host, name, tag = parse_reference(ref)
        url = f"{self._base(host)}/v2/{name}/manifests/{tag}"
        headers = {"Accept": ACCEPT}
        try:
            resp = self.client.head(url, headers=headers)
            if resp.status_code == 401:
                headers["Authorization"] = self._authorize(host, resp.headers.get("WWW-Authenticate", ""))
                resp = self.client.head(url, headers=headers)
        except httpx.HTTPError as exc:
            raise SourceError(f"registry {host} unreachable resolving {name}:{tag} ({type(exc).__name__})") from None
        if resp.status_code == 404:
            raise SourceError(f"image {host}/{name}:{tag} not found in the registry")
        if resp.status_code != 200:
            raise SourceError(f"registry {host} answered {resp.status_code} resolving {name}:{tag}")
        digest = resp.headers.get("Docker-Content-Digest", "")
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise SourceError(f"registry {host} gave no digest for {name}:{tag}")
        return digest

    def _authorize(self, host: str, challenge: str) -> str:
        creds = self.credentials.get(host)
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if not creds:
                raise SourceError(f"registry {host} requires credentials; add them to the credentials file")
            return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        if scheme.lower() != "bearer":
            raise SourceError(f"registry {host} asked for unsupported auth scheme {scheme!r}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if "realm" not in fields:
            raise SourceError(f"registry {host} sent a bearer challenge without a realm")
        query = {k: v for k, v in fields.items() if k in ("service", "scope")}
        auth = httpx.BasicAuth(*creds) if creds else None
        try:
            token_resp = self.client.get(fields["realm"], params=query, auth=auth)
        except httpx.HTTPError as exc:
            raise SourceError(f"registry token service for {host} unreachable ({type(exc).__name__})") from None
        if token_resp.status_code != 200:
            raise SourceError(f"registry token service for {host} answered {token_resp.status_code}")
        body = token_resp.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise SourceError(f"registry token service for {host} returned no token")
        return f"Bearer {token}"
