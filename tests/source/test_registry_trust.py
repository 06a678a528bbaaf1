"""The registry client treats the image reference and every registry answer as hostile: the operator
policy first (no request for a registry it does not allow), no redirect to another host, token
realms only where trusted, credentials only to their own host, bounded and checked token bodies,
docker credential helpers run lazily. No Docker needed: httpx.MockTransport, and real loopback
`http.server`s for the cases that must hold on the wire."""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.errors import SourceError
from reconciler.model.policy import Policy
from reconciler.source.registry import DockerCredentials, RegistryClient, load_credentials

DIGEST = "sha256:" + "ab" * 32
SECRET = "s3cret-pw"
TOKEN = "tok.en-123"
Handler = Callable[[httpx.Request], httpx.Response]


class Net:
    """A MockTransport that records every request and answers per host."""

    def __init__(self, **hosts: Handler) -> None:
        self.hosts = {h.replace("_", "."): f for h, f in hosts.items()}
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        handler = self.hosts.get(request.url.host)
        return handler(request) if handler else httpx.Response(599)

    def on(self, host: str) -> list[httpx.Request]:
        return [r for r in self.seen if r.url.host == host]

    def client(self, **kwargs: Any) -> RegistryClient:
        return RegistryClient(transport=httpx.MockTransport(self), **kwargs)


def registry(realm: str = "https://reg.example/token", token_body: bytes | None = None) -> Handler:
    """A registry that asks for a bearer token at `realm` and serves it itself when the realm is its own."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, content=token_body or json.dumps({"token": TOKEN}).encode())
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            challenge = f'Bearer realm="{realm}",service="reg",scope="repository:team/app:pull"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})

    return handle


def token_service(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"token": TOKEN})


def basic_user(request: httpx.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    return base64.b64decode(value.removeprefix("Basic ")).decode() if value.startswith("Basic ") else None


def only(*prefixes: str) -> Callable[[str], bool]:
    return Policy(registries=list(prefixes)).registry_allowed


# -- the operator policy, before any request ---------------------------------------------------------


@pytest.mark.parametrize(("ref", "named"), [
    ("evil.example/team/app:v1", "evil.example"),
    ("alpine:3", "docker.io"),
    ("reg.example.evil/team/app:v1", "reg.example.evil"),  # a prefix only on a segment boundary
])
def test_a_registry_the_policy_does_not_allow_gets_no_request(ref: str, named: str) -> None:
    net = Net()
    with pytest.raises(SourceError) as err:
        net.client(allowed=only("reg.example")).digest(ref)
    assert net.seen == []
    assert f"registry {named} is not allowed by the operator policy" in str(err.value)
    assert "add it to `registries` in the policy file" in str(err.value)


def test_an_allowed_registry_resolves_with_a_token_from_its_own_realm() -> None:
    net = Net(reg_example=registry())
    client = net.client(credentials={"reg.example": ("me", SECRET)}, allowed=only("reg.example/team"))
    assert client.digest("reg.example/team/app:v1") == DIGEST
    token_call = next(r for r in net.seen if r.url.path == "/token")
    assert basic_user(token_call) == f"me:{SECRET}"  # its own realm: its own credentials
    assert dict(token_call.url.params) == {"service": "reg", "scope": "repository:team/app:pull"}
    assert net.seen[-1].headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_malformed_reference_gets_no_request() -> None:
    net = Net()
    for ref in ("reg.example/../admin:v1", "reg.example/a b:v1", "reg.example#x/a:v1", "reg.example/a:v1/x"):
        with pytest.raises(SourceError, match="not a valid registry reference"):
            net.client().digest(ref)
    assert net.seen == []


# -- redirects ------------------------------------------------------------------------------------


def test_a_redirect_to_another_host_is_refused_and_that_host_never_contacted() -> None:
    def moved(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"Location": "https://other.example/v2/team/app/manifests/v1"})

    net = Net(reg_example=moved, other_example=registry())
    with pytest.raises(SourceError, match=r"registry reg\.example redirected to another host: refused"):
        net.client().digest("reg.example/team/app:v1")
    assert net.on("other.example") == []


@pytest.mark.parametrize("location", ["http://reg.example/v2/x", "https://reg.example:8443/v2/x"])
def test_a_redirect_to_another_scheme_or_port_is_refused(location: str) -> None:
    net = Net(reg_example=lambda r: httpx.Response(302, headers={"Location": location}))
    with pytest.raises(SourceError, match="redirected to another host: refused"):
        net.client().digest("reg.example/team/app:v1")
    assert len(net.seen) == 1


def test_one_redirect_on_the_same_host_is_followed_and_a_second_is_not() -> None:
    def once(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/team/app/manifests/v1":
            return httpx.Response(307, headers={"Location": "/moved"})
        return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})

    assert Net(reg_example=once).client().digest("reg.example/team/app:v1") == DIGEST

    loop = Net(reg_example=lambda r: httpx.Response(307, headers={"Location": "/again"}))
    with pytest.raises(SourceError, match=r"registry reg\.example redirected more than once: refused"):
        loop.client().digest("reg.example/team/app:v1")
    assert len(loop.seen) == 2


# -- token realms and credentials -----------------------------------------------------------------


def test_a_realm_on_a_host_the_policy_does_not_allow_is_never_contacted() -> None:
    net = Net(reg_example=registry("https://tokens.evil/token"), tokens_evil=token_service)
    client = net.client(credentials={"reg.example": ("me", SECRET)}, allowed=only("reg.example"))
    with pytest.raises(SourceError) as err:
        client.digest("reg.example/team/app:v1")
    assert str(err.value).startswith("registry reg.example: token realm tokens.evil is not allowed")
    assert net.on("tokens.evil") == []
    assert all("Authorization" not in r.headers for r in net.seen)


def test_a_realm_over_plain_http_is_refused() -> None:
    net = Net(reg_example=registry("http://reg.example/token"))
    with pytest.raises(SourceError, match=r"token realm reg\.example is not https: refused"):
        net.client(credentials={"reg.example": ("me", SECRET)}).digest("reg.example/team/app:v1")
    assert [r.url.path for r in net.seen] == ["/v2/team/app/manifests/v1"]


def test_a_realm_on_another_allowed_host_gets_its_own_credentials_never_the_registrys() -> None:
    allowed = only("reg.example", "auth.example")
    net = Net(reg_example=registry("https://auth.example/token"), auth_example=token_service)
    net.client(credentials={"reg.example": ("me", SECRET)}, allowed=allowed).digest("reg.example/team/app:v1")
    assert [basic_user(r) for r in net.on("auth.example")] == [None]

    net = Net(reg_example=registry("https://auth.example/token"), auth_example=token_service)
    creds = {"reg.example": ("me", SECRET), "auth.example": ("auth-user", "auth-pw")}
    assert net.client(credentials=creds, allowed=allowed).digest("reg.example/team/app:v1") == DIGEST
    assert [basic_user(r) for r in net.on("auth.example")] == ["auth-user:auth-pw"]


def test_docker_hub_uses_auth_docker_io_with_the_hub_credentials() -> None:
    net = Net(**{"registry-1.docker.io": registry("https://auth.docker.io/token"), "auth.docker.io": token_service})
    creds = DockerCredentials({"https://index.docker.io/v1/": ("hubber", SECRET)})
    assert net.client(credentials=creds, allowed=only("docker.io/library")).digest("alpine:3") == DIGEST
    assert [basic_user(r) for r in net.on("auth.docker.io")] == [f"hubber:{SECRET}"]


def test_basic_credentials_go_only_to_their_own_host_and_never_over_plain_http() -> None:
    def basic(request: httpx.Request) -> httpx.Response:
        if basic_user(request) is None:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="reg"'})
        return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})

    net = Net(reg_example=basic)
    with pytest.raises(SourceError, match=r"registry reg\.example requires credentials"):
        net.client(credentials={"other.example": ("me", SECRET)}).digest("reg.example/team/app:v1")
    assert all(basic_user(r) is None for r in net.seen)

    net = Net(reg_example=basic)
    assert net.client(credentials={"reg.example": ("me", SECRET)}).digest("reg.example/team/app:v1") == DIGEST
    assert basic_user(net.seen[-1]) == f"me:{SECRET}"

    net = Net(reg_internal=basic)  # spoken to over http, but not loopback: no password in clear text
    client = net.client(credentials={"reg.internal": ("me", SECRET)}, insecure_hosts=("reg.internal",))
    with pytest.raises(SourceError, match="basic auth over plain http: credentials not sent"):
        client.digest("reg.internal/team/app:v1")
    assert all(basic_user(r) is None for r in net.seen)


# -- hostile answers ------------------------------------------------------------------------------


def test_a_huge_token_response_is_refused_declared_or_streamed() -> None:
    huge = json.dumps({"token": "x" * 100_000}).encode()

    def streamed(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":  # no Content-Length: refused while reading
            return httpx.Response(200, content=iter([huge[i:i + 4096] for i in range(0, len(huge), 4096)]))
        return registry()(request)

    for handler in (registry(token_body=huge), streamed):
        with pytest.raises(SourceError, match=r"registry reg\.example: token response over 65536 bytes"):
            Net(reg_example=handler).client().digest("reg.example/team/app:v1")


@pytest.mark.parametrize(("body", "problem"), [
    (b"<html>not json", "is not valid JSON"),
    (b"\xff\xfe", "is not valid JSON"),
    (b'["token"]', "is not a JSON object"),
    (b'{"expires_in": 60}', "has no token"),
    (b'{"token": 12345}', "has an invalid token"),
    (b'{"token": {"a": 1}}', "has an invalid token"),
    (b'{"token": "two words\\r\\nX-Injected: 1"}', "has an invalid token"),
])
def test_a_malformed_token_response_is_a_source_error_naming_the_registry(body: bytes, problem: str) -> None:
    with pytest.raises(SourceError) as err:
        Net(reg_example=registry(token_body=body)).client().digest("reg.example/team/app:v1")
    assert str(err.value) == f"registry reg.example: token response from reg.example {problem}"


@pytest.mark.parametrize("header", ["", "sha256:abc", "md5:" + "a" * 32, DIGEST + "\nx", DIGEST.upper()])
def test_a_digest_header_that_is_not_sha256_hex_is_refused(header: str) -> None:
    net = Net(reg_example=lambda r: httpx.Response(200, headers={"Docker-Content-Digest": header}))
    with pytest.raises(SourceError, match=r"registry reg\.example gave no valid digest for team/app:v1"):
        net.client().digest("reg.example/team/app:v1")


def test_transport_failures_are_source_errors_that_carry_no_httpx_exception() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(SourceError) as err:
        Net(reg_example=timeout).client().digest("reg.example/team/app:v1")
    assert str(err.value) == "registry reg.example unreachable resolving team/app:v1 (timed out)"
    assert err.value.__cause__ is None and err.value.__context__ is None

    def token_down(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            raise httpx.ConnectError("refused", request=request)
        return registry()(request)

    with pytest.raises(SourceError) as err:
        client = Net(reg_example=token_down).client(credentials={"reg.example": ("me", SECRET)})
        client.digest("reg.example/team/app:v1")
    assert str(err.value) == "registry reg.example unreachable getting a token from reg.example (ConnectError)"
    assert err.value.__context__ is None and SECRET not in str(err.value)


def test_errors_never_carry_a_credential_or_the_token() -> None:
    def rejects(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": TOKEN})
        if "Authorization" in request.headers:
            return httpx.Response(401, text=f"bad {request.headers['Authorization']}")
        return registry()(request)

    with pytest.raises(SourceError) as err:
        Net(reg_example=rejects).client(credentials={"reg.example": ("me", SECRET)}).digest("reg.example/team/app:v1")
    message = str(err.value)
    assert "reg.example" in message and "401" in message
    assert SECRET not in message and TOKEN not in message and "Authorization" not in message


# -- credentials file and helpers -----------------------------------------------------------------


@pytest.fixture
def helper_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`docker-credential-test` (logs each server URL it is asked for), `-broken` (fails, printing a
    secret) and `-empty` (has nothing), on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "helper.log"
    scripts = {
        "test": f"""
import json, sys
server = sys.stdin.read().strip()
open({str(log)!r}, "a").write(server + "\\n")
assert sys.argv[1:] == ["get"]
print(json.dumps({{"ServerURL": server, "Username": "helper-user", "Secret": "helper-{SECRET}"}}))
""",
        "broken": f"import sys\nprint('boom helper-{SECRET}')\nsys.exit(3)\n",
        "empty": "import sys\nprint('credentials not found in native keychain')\nsys.exit(1)\n",
    }
    for name, body in scripts.items():
        script = bin_dir / f"docker-credential-{name}"
        script.write_text(f"#!{sys.executable}\n{body}")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def write_config(tmp_path: Path, config: dict[str, object]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_cred_helpers_run_lazily_for_the_host_asked_only(tmp_path: Path, helper_bin: Path) -> None:
    creds = load_credentials(write_config(tmp_path, {
        "credHelpers": {"reg.example": "test", "unused.example": "test"},
        "credsStore": "test",
        "auths": {"plain.example": {"auth": base64.b64encode(b"plain:pw").decode()}},
    }))
    assert not helper_bin.exists()  # loading runs nothing
    assert creds.get("reg.example") == ("helper-user", f"helper-{SECRET}")
    assert creds.get("reg.example") == ("helper-user", f"helper-{SECRET}")  # asked once per host
    assert creds.get("registry-1.docker.io") == ("helper-user", f"helper-{SECRET}")  # the store, as docker does
    assert helper_bin.read_text().splitlines() == ["reg.example", "https://index.docker.io/v1/"]


def test_a_helper_token_is_used_through_the_client(tmp_path: Path, helper_bin: Path) -> None:
    creds = load_credentials(write_config(tmp_path, {"credHelpers": {"reg.example": "test"}}))
    net = Net(reg_example=registry())
    assert net.client(credentials=creds).digest("reg.example/team/app:v1") == DIGEST
    token_call = next(r for r in net.seen if r.url.path == "/token")
    assert basic_user(token_call) == f"helper-user:helper-{SECRET}"


def test_helper_failures_name_the_helper_and_host_never_the_secret(tmp_path: Path, helper_bin: Path) -> None:
    auths = {"reg.example": {"username": "file-user", "password": "file-pw"}}
    creds = load_credentials(write_config(tmp_path, {"auths": auths, "credHelpers": {
        "missing.example": "absent", "broken.example": "broken", "reg.example": "empty"}}))
    with pytest.raises(SourceError) as err:
        creds.get("missing.example")
    assert str(err.value).startswith(
        "credential helper docker-credential-absent for registry missing.example: docker-credential-absent "
        "not found on PATH")
    with pytest.raises(SourceError) as err:
        creds.get("broken.example")
    assert str(err.value) == "credential helper docker-credential-broken for registry broken.example failed (exit 3)"
    assert SECRET not in str(err.value)
    assert creds.get("reg.example") == ("file-user", "file-pw")  # the helper has none: the file's entry


def test_load_credentials_reads_auths_and_refuses_a_broken_file(tmp_path: Path) -> None:
    creds = load_credentials(write_config(tmp_path, {"auths": {
        "https://ghcr.io": {"auth": base64.b64encode(b"gh:tok:with:colons").decode()},
        "127.0.0.1:5000": {"username": "u", "password": "p"},
        "https://index.docker.io/v1/": {},
    }}))
    assert creds.get("ghcr.io") == ("gh", "tok:with:colons")
    assert creds.get("127.0.0.1:5000") == ("u", "p")
    assert creds.get("registry-1.docker.io") is None
    assert load_credentials(None).get("ghcr.io") is None
    for broken in ('{"auths": {"x": {"auth": "%%%"}}}', "[1]", '{"credHelpers": ["reg.example"]}', "{"):
        (tmp_path / "bad.json").write_text(broken)
        with pytest.raises(SourceError, match="bad.json is not valid"):
            load_credentials(tmp_path / "bad.json")


# -- on the wire: real loopback servers ------------------------------------------------------------


class Server:
    """A loopback HTTP server answering with `respond(path, headers) -> (status, headers, body)`."""

    def __init__(self, respond: Callable[[str, dict[str, str]], tuple[int, dict[str, str], bytes]]) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                headers = dict(self.headers.items())
                outer.requests.append((self.command, self.path, headers))
                status, extra, body = respond(self.path, headers)
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **extra}.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(respond: Callable[[str, dict[str, str]], tuple[int, dict[str, str], bytes]]) -> Server:
        started.append(Server(respond))
        return started[-1]

    yield start
    for server in started:
        server.close()


def token_server(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps({"token": TOKEN}).encode()


def bearer_registry(realm: Callable[[], str]) -> Callable[[str, dict[str, str]], tuple[int, dict[str, str], bytes]]:
    def respond(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/token"):
            return token_server(path, headers)
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"WWW-Authenticate": f'Bearer realm="{realm()}",service="reg"'}, b""
        return 200, {"Docker-Content-Digest": DIGEST}, b""

    return respond


def test_on_loopback_a_realm_on_another_server_is_not_contacted_and_gets_no_credentials(
    servers: Callable[..., Server],
) -> None:
    other = servers(token_server)
    reg = servers(bearer_registry(lambda: f"http://{other.host}/token"))
    client = RegistryClient({reg.host: ("me", SECRET)}, allowed=only(reg.host))
    with pytest.raises(SourceError) as err:
        client.digest(f"{reg.host}/team/app:v1")
    assert str(err.value).startswith(f"registry {reg.host}: token realm {other.host} is not allowed")
    assert other.requests == []
    assert [h.get("Authorization") for _, _, h in reg.requests] == [None]


def test_on_loopback_a_redirect_to_another_server_is_refused(servers: Callable[..., Server]) -> None:
    other = servers(lambda path, headers: (200, {"Docker-Content-Digest": DIGEST}, b""))
    reg = servers(lambda path, headers: (307, {"Location": f"http://{other.host}{path}"}, b""))
    with pytest.raises(SourceError, match=f"registry {reg.host} redirected to another host: refused"):
        RegistryClient().digest(f"{reg.host}/team/app:v1")
    assert other.requests == [] and len(reg.requests) == 1


def test_on_loopback_the_own_realm_gets_the_credentials_and_the_digest_resolves(
    servers: Callable[..., Server],
) -> None:
    holder: list[Server] = []
    reg = servers(bearer_registry(lambda: f"http://{holder[0].host}/token"))
    holder.append(reg)
    client = RegistryClient({reg.host: ("me", SECRET)}, allowed=only(reg.host))
    assert client.digest(f"{reg.host}/team/app:v1") == DIGEST
    token_calls = [h for method, path, h in reg.requests if path.startswith("/token")]
    expected = "Basic " + base64.b64encode(f"me:{SECRET}".encode()).decode()
    assert [h.get("Authorization") for h in token_calls] == [expected]


def test_a_token_response_that_trickles_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(0, 1000, 4))
    monkeypatch.setattr("reconciler.forge.http.monotonic", lambda: next(clock))  # 4 s a look

    def trickle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, content=iter([b" "] * 100 + [b'{"token": "t"}']))
        return registry()(request)

    with pytest.raises(SourceError, match=r"registry reg\.example getting a token from reg\.example: timed out "
                                          r"after 30 s \(the server kept the connection open\)"):
        Net(reg_example=trickle).client().digest("reg.example/team/app:v1")
