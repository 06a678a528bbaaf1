"""Registry v2 client: resolve an image tag to its digest without pulling it.

HEAD /v2/<name>/manifests/<tag> with the manifest-list and OCI accept headers; on 401 follow the
`WWW-Authenticate: Bearer realm=...,service=...,scope=...` challenge (GHCR, ECR-style, Harbor), or
retry with basic auth for `Basic` challenges.

The image reference comes from a config repo anyone with a pull request can write, and every byte
a registry answers is as hostile, so:
- the operator's `allowed` predicate (`Policy.registry_allowed`) is asked before any request;
- redirects are never followed to another scheme or host (one same-host hop at most);
- a bearer token realm is contacted only over https (plain http on loopback) and only on the
  registry's own host, a host the operator allowed, or Docker Hub's own `auth.docker.io`;
- credentials go only to the host they belong to (a realm on another host gets that host's own
  credentials, if any), only over https or loopback http;
- the token response is read up to `max_bytes` and every way it can be malformed is a SourceError;
- every request ends within `deadline` seconds (30 by default), even when the server sends its
  headers or body a byte at a time (`forge/http.py`'s `Deadline`, shared with the forge client);
- every error names the registry host and never a credential, token or header; no httpx exception
  (which holds the request and its headers) is chained to one.

Credentials come from a docker `config.json` (`load_credentials`): `auths`, `credHelpers` and
`credsStore`, helpers run only for a host actually asked for.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx

from reconciler.errors import SourceError
from reconciler.forge.http import Deadline, deadline_client, read_capped
from reconciler.model.credentials import may_send_credentials, url_host
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
HUB_NAMES = frozenset({"docker.io", "index.docker.io", DOCKER_HUB})
HUB_CREDENTIAL_HOSTS = HUB_NAMES | {"auth.docker.io"}  # one service, one credential
HUB_SERVER_URL = "https://index.docker.io/v1/"  # Docker Hub's key in config.json and for helpers
KNOWN_REALMS = {DOCKER_HUB: "auth.docker.io"}  # realms a registry may use on another host, unasked
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
REDIRECTS = frozenset({301, 302, 303, 307, 308})
HELPER_TIMEOUT_S = 30
REGISTRY_DEADLINE_S = 30.0  # one request, start to end, however slowly the registry answers

_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_TOKEN = re.compile(r"[\x21-\x7e]+")  # what may stand in an Authorization header


def parse_reference(ref: str) -> tuple[str, str, str]:
    """`host[:port]/name[:tag]` -> (host, name, tag); no host (or `docker.io`) means Docker Hub."""
    repo, tag, _ = split_reference(ref)
    first, _, rest = repo.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, name = first, rest
    else:
        host, name = DOCKER_HUB, repo if "/" in repo else f"library/{repo}"
    if host.lower() in HUB_NAMES:
        host, name = DOCKER_HUB, name if "/" in name else f"library/{name}"
    return host, name, tag or "latest"


def hostname(host: str) -> str:
    """`host[:port]` -> `host` (an IPv6 address keeps its brackets), lower case."""
    name = host.lower()
    if name.startswith("["):
        return name.partition("]")[0] + "]"
    return name.partition(":")[0] if name.count(":") == 1 else name


def safe_scheme(url: httpx.URL) -> bool:
    """https anywhere; plain http only to this machine (tests, a local registry)."""
    host, scheme = url_host(str(url))
    return may_send_credentials(scheme, host)


class CredentialLookup(Protocol):
    """Anything that answers `(username, password)` for a `host[:port]`: a dict, `DockerCredentials`."""

    def get(self, host: str, /) -> tuple[str, str] | None: ...


class DockerCredentials:
    """A docker `config.json`: `auths` entries, per-host `credHelpers` and the default `credsStore`.

    Like the docker CLI, a host with a helper (its own, else the store) asks that helper, falling back
    to its `auths` entry when the helper has nothing for it. Helpers run on first `get` of a host only.
    """

    def __init__(
        self,
        auths: Mapping[str, tuple[str, str]] | None = None,
        helpers: Mapping[str, str] | None = None,
        store: str | None = None,
    ) -> None:
        self.auths = {credential_key(k): v for k, v in (auths or {}).items()}
        self.helpers = {credential_key(k): v for k, v in (helpers or {}).items()}
        self.store = store or None
        self._asked: dict[str, tuple[str, str] | None] = {}

    def get(self, host: str, /) -> tuple[str, str] | None:
        key = credential_key(host)
        if key not in self._asked:
            helper = self.helpers.get(key, self.store)
            found = run_helper(helper, key) if helper else None
            self._asked[key] = found or self.auths.get(key)
        return self._asked[key]


def credential_key(server: str) -> str:
    """A config.json key (`https://index.docker.io/v1/`, `ghcr.io`, `http://host:5000`) -> `host[:port]`;
    every name of Docker Hub is `index.docker.io`."""
    host = server.strip().split("://", 1)[-1].split("/", 1)[0].lower()
    return "index.docker.io" if host in HUB_CREDENTIAL_HOSTS else host


def run_helper(helper: str, host: str) -> tuple[str, str] | None:
    """`docker-credential-<helper> get` for `host`: (Username, Secret), None when it has none."""
    program = f"docker-credential-{helper}"
    where = f"credential helper {program} for registry {host}"
    path = shutil.which(program) if re.fullmatch(r"[A-Za-z0-9_.-]+", helper) else None
    if path is None:
        raise SourceError(f"{where}: {program} not found on PATH (credsStore/credHelpers in the credentials file)")
    server = HUB_SERVER_URL if host == "index.docker.io" else host
    try:
        done = subprocess.run(
            [path, "get"], input=server, capture_output=True, text=True, timeout=HELPER_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        failure = f"timed out after {HELPER_TIMEOUT_S}s"
    except OSError as exc:
        failure = f"could not run ({type(exc).__name__})"
    else:
        if done.returncode == 0:
            return _helper_answer(done.stdout, where)
        if "credentials not found" in (done.stdout + done.stderr).lower():
            return None
        failure = f"failed (exit {done.returncode})"
    raise SourceError(f"{where} {failure}")


def _helper_answer(stdout: str, where: str) -> tuple[str, str] | None:
    try:
        answer = json.loads(stdout)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise SourceError(f"{where} answered something that is not a JSON object")
    user, secret = answer.get("Username"), answer.get("Secret")
    if not isinstance(user, str) or not isinstance(secret, str):
        raise SourceError(f"{where} answered without a string Username and Secret")
    return (user, secret) if secret else None


def load_credentials(path: Path | None) -> DockerCredentials:
    """A docker `config.json` (`auths` with `auth` base64 or `username`/`password`, `credHelpers`,
    `credsStore`); no file means no credentials. Helpers are not run here."""
    if path is None or not path.is_file():
        return DockerCredentials()
    try:
        config = json.loads(path.read_text())
        auths = {host: _auth_entry(entry) for host, entry in (config.get("auths") or {}).items()}
        helpers = {str(host): str(name) for host, name in (config.get("credHelpers") or {}).items()}
        store = config.get("credsStore")
        if store is not None and not isinstance(store, str):
            raise TypeError("credsStore")
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise SourceError(f"registry credentials file {path} is not valid ({type(exc).__name__})") from None
    return DockerCredentials({h: a for h, a in auths.items() if a}, helpers, store)


def _auth_entry(entry: dict[str, Any]) -> tuple[str, str] | None:
    if entry.get("auth"):
        user, _, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
        return user, password
    if entry.get("username") and entry.get("password"):
        return str(entry["username"]), str(entry["password"])
    return None  # an empty entry (`{}`), as docker writes beside a credsStore


class RegistryClient:
    def __init__(
        self,
        credentials: CredentialLookup | Mapping[str, tuple[str, str]] | None = None,
        *,
        allowed: Callable[[str], bool] | None = None,
        timeout: float = 10,
        deadline: float = REGISTRY_DEADLINE_S,
        max_bytes: int = 64 * 1024,
        transport: httpx.BaseTransport | None = None,
        insecure_hosts: tuple[str, ...] = LOOPBACK,
    ) -> None:
        """`allowed(image_ref)`: the operator policy (`Policy.registry_allowed`); None allows every
        registry. `timeout` bounds each socket operation, `deadline` each request as a whole.
        `insecure_hosts` are spoken to over plain http (credentials only if loopback)."""
        self.credentials: CredentialLookup | Mapping[str, tuple[str, str]] = credentials or {}
        self.allowed = allowed
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.deadline_s = deadline
        self.insecure_hosts = insecure_hosts
        self.client = deadline_client(timeout=timeout, transport=transport, follow_redirects=False)

    def _base(self, host: str) -> str:
        scheme = "http" if hostname(host) in self.insecure_hosts else "https"
        return f"{scheme}://{host}"

    def digest(self, ref: str) -> str:
        """The digest a tag points at now. Raises SourceError (never with credentials in it)."""
        host, name, tag = self._checked(ref)
        url = httpx.URL(f"{self._base(host)}/v2/{name}/manifests/{tag}")
        what = f"resolving {name}:{tag}"
        headers = {"Accept": ACCEPT}
        status, answer, _ = self._fetch(host, "HEAD", url, headers, what)
        if status == 401:
            headers["Authorization"] = self._authorize(host, url, answer.get("WWW-Authenticate", ""))
            status, answer, _ = self._fetch(host, "HEAD", url, headers, what)
        if status == 404:
            raise SourceError(f"image {host}/{name}:{tag} not found in the registry")
        if status == 401:
            raise SourceError(f"registry {host} answered 401 {what} (credentials missing or rejected)")
        if status != 200:
            raise SourceError(f"registry {host} answered {status} {what}")
        digest = answer.get("Docker-Content-Digest", "")
        if not _DIGEST.fullmatch(digest):
            raise SourceError(f"registry {host} gave no valid digest for {name}:{tag}")
        return digest

    def _checked(self, ref: str) -> tuple[str, str, str]:
        """(host, name, tag) of a well-formed reference whose registry the operator allows."""
        host, name, tag = parse_reference(ref)
        if not (_HOST.fullmatch(host) and _NAME.fullmatch(name) and _TAG.fullmatch(tag)):
            raise SourceError(f"image reference {ref[:200]!r} is not a valid registry reference")
        shown = "docker.io" if host == DOCKER_HUB else host  # as the policy spells Docker Hub
        if self.allowed is not None and not (self.allowed(ref) and self.allowed(f"{shown}/{name}:{tag}")):
            raise SourceError(
                f"registry {shown} is not allowed by the operator policy (image {shown}/{name}); "
                "add it to `registries` in the policy file"
            )
        return host, name, tag

    def _fetch(
        self,
        host: str,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        what: str,
        auth: httpx.Auth | None = None,
        kind: str = "response",
    ) -> tuple[int, httpx.Headers, bytes]:
        """One request, following at most one redirect on the same scheme and host; the body read
        up to `max_bytes`. In errors, `what` says what for (`resolving a/b:v1`), `kind` names the body."""
        for _ in range(2):
            status, answer, body = self._send(host, method, url, headers, (what, kind), auth)
            if status not in REDIRECTS:
                return status, answer, body
            try:
                target = url.join(answer.get("Location", "")).copy_with(username=None, password=None)
            except httpx.InvalidURL:
                raise SourceError(f"registry {host} sent an invalid redirect {what}") from None
            if (target.scheme, target.host, target.port) != (url.scheme, url.host, url.port):
                raise SourceError(f"registry {host} redirected to another host: refused ({what})")
            url = target
        raise SourceError(f"registry {host} redirected more than once: refused ({what})")

    def _send(
        self,
        host: str,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        label: tuple[str, str],
        auth: httpx.Auth | None,
    ) -> tuple[int, httpx.Headers, bytes]:
        what, kind = label
        try:
            with Deadline(self.deadline_s) as deadline, self.client.stream(
                method, url, headers=headers, auth=auth
            ) as resp:
                body = read_capped(resp, self.max_bytes)
                if body is None:
                    raise SourceError(f"registry {host}: {kind} over {self.max_bytes} bytes ({what})")
                return resp.status_code, resp.headers, body
        except httpx.TimeoutException:
            failure = "timed out"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            failure = type(exc).__name__
        if failure == "timed out" and deadline.passed:
            raise SourceError(f"registry {host} {what}: {deadline.passed_message()}")
        raise SourceError(f"registry {host} unreachable {what} ({failure})")

    def _authorize(self, host: str, url: httpx.URL, challenge: str) -> str:
        scheme, _, params = challenge.strip().partition(" ")
        if scheme.lower() == "basic":
            creds = self.credentials.get(host)
            if not creds:
                raise SourceError(f"registry {host} requires credentials; add them to the credentials file")
            if not safe_scheme(url):
                raise SourceError(f"registry {host} asks for basic auth over plain http: credentials not sent")
            return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        if scheme.lower() != "bearer":
            raise SourceError(f"registry {host} asked for unsupported auth scheme {scheme[:40]!r}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if "realm" not in fields:
            raise SourceError(f"registry {host} sent a bearer challenge without a realm")
        query = {k: v for k, v in fields.items() if k in ("service", "scope")}
        return f"Bearer {self._token(host, fields['realm'], query)}"

    def _realm(self, host: str, realm: str) -> tuple[httpx.URL, str]:
        """The token realm's URL and `host[:port]`, if it may be contacted at all."""
        try:
            url = httpx.URL(realm).copy_with(username=None, password=None, fragment=None)
            realm_host = url_host(str(url))[0]
        except (httpx.InvalidURL, TypeError):
            raise SourceError(f"registry {host} sent an invalid token realm") from None
        if not realm_host or url.scheme not in ("http", "https"):
            raise SourceError(f"registry {host} sent an invalid token realm")
        own = realm_host in (host.lower(), KNOWN_REALMS.get(host))
        if not own and self.allowed is not None and not self.allowed(f"{realm_host}/x"):
            raise SourceError(
                f"registry {host}: token realm {realm_host} is not allowed "
                "(add it to `registries` in the policy file to trust it)"
            )
        if not safe_scheme(url):
            raise SourceError(f"registry {host}: token realm {realm_host} is not https: refused")
        return url, realm_host

    def _token(self, host: str, realm: str, query: dict[str, str]) -> str:
        url, realm_host = self._realm(host, realm)
        url = url.copy_merge_params(query)
        # The registry's credentials go to its own realm (Docker Hub's is auth.docker.io); a realm on
        # another host gets only the credentials kept for that host.
        creds = self.credentials.get(host if realm_host == host.lower() else realm_host)
        auth = httpx.BasicAuth(*creds) if creds else None
        what = f"getting a token from {realm_host}"
        status, _, body = self._fetch(host, "GET", url, {"Accept": "application/json"}, what, auth, "token response")
        if status == 401 and creds:
            raise SourceError(f"registry {host}: token realm {realm_host} rejected the credentials (401)")
        if status != 200:
            raise SourceError(f"registry {host}: token realm {realm_host} answered {status}")
        try:
            answer = json.loads(body)
        except ValueError:
            raise SourceError(f"registry {host}: token response from {realm_host} is not valid JSON") from None
        if not isinstance(answer, dict):
            raise SourceError(f"registry {host}: token response from {realm_host} is not a JSON object")
        token = answer.get("token") or answer.get("access_token")
        if not token:
            raise SourceError(f"registry {host}: token response from {realm_host} has no token")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise SourceError(f"registry {host}: token response from {realm_host} has an invalid token")
        return token
