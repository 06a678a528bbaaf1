"""HTTP health checks the reconciler makes itself (`docker_probe.py`), on the real engine and alone.

The image under test has no shell and no wget: FROM scratch, one static binary serving HTTP on
127.0.0.1:8080 (busybox's httpd applet, copied out of the demo base image under the name `httpd`,
so nothing in the image answers to `sh` or `wget`) and a `/www/health` file. The in-image check
(a Docker HEALTHCHECK running wget) can only fail on it; the reconciler's probe passes its gate
when the endpoint answers, fails it when it does not (refused, 404, hung), and says UNKNOWN, never
UNHEALTHY, when it cannot probe at all. The verdict rules and the HTTP exchange are also tested on
their own, without an engine.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Iterator

import docker
import docker.errors
import pytest

from reconciler.apply.gate import GateSettings, wait_healthy
from reconciler.backends import labels as lb
from reconciler.backends.docker import DockerBackend
from reconciler.backends.docker_probe import MODE_ENV, PROBE_LABEL, HttpProbes
from reconciler.backends.docker_probe_http import ProbeConfig, ProbeResult, http_status, probe
from reconciler.backends.docker_probe_netns import CannotProbe, Target, netns_unsupported, socket_in
from reconciler.backends.docker_probe_verdicts import Verdicts
from reconciler.model.config import Health
from reconciler.model.enums import ActionKind, HealthState, Outcome, Tier
from reconciler.model.plan import Action
from tests.backends.conftest import make_desired
from tests.support.clock import FakeClock, wait_until

BASE = "local/busybox:latest"  # built by scripts/build-images.sh with the demo images
NO_SHELL_REPO = "reconciler-test/no-shell"
FAST = Health(port=8080, path="/health", interval_seconds=0.3, timeout_seconds=1, retries=2)


def _busybox_binary(client: docker.DockerClient) -> bytes:
    created = client.api.create_container(BASE, command=["true"], labels={"reconciler-test": "probe-image"})
    try:
        stream, _ = client.api.get_archive(created["Id"], "/bin/busybox")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile("busybox")
            assert member is not None
            return member.read()
    finally:
        client.api.remove_container(created["Id"], force=True)


@pytest.fixture(scope="session")
def no_shell_image(docker_client: docker.DockerClient, runtime_image: str) -> str:
    """FROM scratch: /httpd (a static binary) and /www/health; no /bin, no sh, no wget."""
    binary = _busybox_binary(docker_client)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode in (("httpd", binary, 0o755), ("www/health", b"ok\n", 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
        for name in ("www", "tmp"):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755, 0
            tar.addfile(info)
    data = buf.getvalue()
    tag = hashlib.sha256(data).hexdigest()[:12]
    ref = f"{NO_SHELL_REPO}:{tag}"
    try:
        docker_client.api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        docker_client.api.import_image_from_data(
            data, repository=NO_SHELL_REPO, tag=tag,
            changes=['ENTRYPOINT ["/httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"]'],
        )
    return ref


def _runs(client: docker.DockerClient, container_id: str, cmd: list[str]) -> bool:
    try:
        exec_id = client.api.exec_create(container_id, cmd)
        client.api.exec_start(exec_id)
    except docker.errors.APIError:
        return False
    return client.api.exec_inspect(exec_id)["ExitCode"] == 0


def create(backend: DockerBackend, workspace_id: str, health: Health | None, image: str) -> None:
    desired = make_desired(workspace_id, health=health, image=image)
    backend.apply(Action(kind=ActionKind.CREATE, workspace_id=desired.id, tier=desired.tier, reason="t",
                         desired=desired), {}, "rev-1")


def gate(backend: DockerBackend, ids: list[str], timeout: float = 30):
    return wait_healthy(backend, Tier.CANARY, ids, GateSettings(timeout_s=timeout, poll_s=0.2),
                        clock=time.monotonic, sleep=time.sleep, stop=threading.Event())


@pytest.fixture
def probing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODE_ENV, "reconciler")


def test_an_image_without_sh_or_wget_passes_its_gate_when_its_endpoint_answers(
    make_backend: Callable[..., DockerBackend], no_shell_image: str, docker_client: docker.DockerClient,
    instance_id: str, probing: None,
) -> None:
    backend = make_backend()
    create(backend, "acme/bare", FAST, no_shell_image)
    info = docker_client.api.inspect_container(lb.container_name(instance_id, "acme/bare"))
    assert info["Config"]["Healthcheck"]["Test"] == ["NONE"]  # no exec into the workload
    assert ProbeConfig.decode(info["Config"]["Labels"][PROBE_LABEL]) == ProbeConfig.of(FAST)
    assert not _runs(docker_client, info["Id"], ["/bin/sh", "-c", "true"])  # really no shell in there
    assert not _runs(docker_client, info["Id"], ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"])

    result = gate(backend, ["acme/bare"])
    assert result.outcome is Outcome.SUCCESS, result.message
    assert {w.id: w.health for w in backend.list_owned()} == {"acme/bare": HealthState.HEALTHY}


def test_an_image_without_sh_or_wget_fails_its_gate_when_its_endpoint_does_not_answer(
    make_backend: Callable[..., DockerBackend], no_shell_image: str, probing: None,
) -> None:
    backend = make_backend()
    create(backend, "acme/closed", FAST.model_copy(update={"port": 8081}), no_shell_image)  # nothing listens
    create(backend, "acme/notfound", FAST.model_copy(update={"path": "/missing"}), no_shell_image)  # 404
    result = gate(backend, ["acme/closed", "acme/notfound"])
    assert result.outcome is Outcome.FAILED, result.message
    assert set(result.unhealthy) == {"acme/closed", "acme/notfound"}
    assert backend.health("acme/closed") is HealthState.UNHEALTHY
    assert backend.health("acme/notfound") is HealthState.UNHEALTHY
    details = {backend.objects.probes.verdicts.detail(w.backend_ref) for w in backend.list_owned()}
    assert details == {"connection refused on port 8081", "HTTP 404"}


def test_a_hung_endpoint_turns_unhealthy_and_back(
    make_backend: Callable[..., DockerBackend], no_shell_image: str, docker_client: docker.DockerClient,
    instance_id: str, probing: None,
) -> None:
    backend = make_backend()
    create(backend, "acme/hang", FAST.model_copy(update={"timeout_seconds": 0.5}), no_shell_image)
    assert wait_until(lambda: backend.health("acme/hang") is HealthState.HEALTHY, timeout=30)
    pid = docker_client.api.inspect_container(lb.container_name(instance_id, "acme/hang"))["State"]["Pid"]
    os.kill(pid, signal.SIGSTOP)  # the server accepts (the kernel does) but never answers
    try:
        assert wait_until(lambda: backend.health("acme/hang") is HealthState.UNHEALTHY, timeout=30)
        assert "no answer within 0.5s" in backend.objects.probes.verdicts.detail(
            docker_client.api.inspect_container(lb.container_name(instance_id, "acme/hang"))["Id"])
    finally:
        os.kill(pid, signal.SIGCONT)
    assert wait_until(lambda: backend.health("acme/hang") is HealthState.HEALTHY, timeout=30)


def test_the_in_image_check_fails_that_image_which_is_why_the_reconciler_probes(
    make_backend: Callable[..., DockerBackend], no_shell_image: str, docker_client: docker.DockerClient,
    instance_id: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MODE_ENV, "image")  # the old way: a Docker HEALTHCHECK running wget in the image
    backend = make_backend()
    create(backend, "acme/legacy", FAST, no_shell_image)
    info = docker_client.api.inspect_container(lb.container_name(instance_id, "acme/legacy"))
    assert PROBE_LABEL not in info["Config"]["Labels"] and "wget" in info["Config"]["Healthcheck"]["Test"][1]
    assert wait_until(lambda: backend.health("acme/legacy") is HealthState.UNHEALTHY, timeout=30)


def test_a_probe_the_reconciler_cannot_make_is_unknown_never_unhealthy(
    make_backend: Callable[..., DockerBackend], no_shell_image: str, probing: None,
) -> None:
    backend = make_backend()

    def refuse(target: Target) -> socket.socket:
        raise CannotProbe("cannot enter /nowhere: Operation not permitted")

    backend.objects.probes = HttpProbes(backend.objects.probes._api, clock=time.monotonic, wall=time.time,
                                        mode="reconciler", opener=refuse)
    create(backend, "acme/blind", FAST, no_shell_image)
    assert wait_until(lambda: backend.health("acme/blind") is HealthState.UNKNOWN, timeout=10)
    for _ in range(5):
        time.sleep(0.3)
        assert backend.health("acme/blind") is HealthState.UNKNOWN
    assert [w.health for w in backend.list_owned()] == [HealthState.UNKNOWN]
    result = gate(backend, ["acme/blind"], timeout=2)
    assert result.outcome is Outcome.ERROR, result.message  # no rollback on a guess


def test_a_listing_probes_in_the_background_and_never_waits(
    make_backend: Callable[..., DockerBackend], no_shell_image: str, probing: None,
) -> None:
    backend = make_backend()
    create(backend, "acme/listed", FAST, no_shell_image)
    fresh = make_backend()  # another process's view: knows nothing of the container yet
    assert [w.health for w in fresh.list_owned()] == [HealthState.UNKNOWN]  # nothing known: not guessed
    assert wait_until(lambda: [w.health for w in fresh.list_owned()] == [HealthState.HEALTHY], timeout=30)


def test_the_namespace_is_found_through_the_process_when_the_sandbox_path_is_not_there(
    make_backend: Callable[..., DockerBackend], no_shell_image: str, docker_client: docker.DockerClient,
    instance_id: str, probing: None,
) -> None:
    backend = make_backend()
    create(backend, "acme/bypid", FAST, no_shell_image)
    info = docker_client.api.inspect_container(lb.container_name(instance_id, "acme/bypid"))
    target = Target.of(info)
    assert target.sandbox and target.pid > 0
    by_pid = Target(container_id=target.container_id, sandbox="/nonexistent", pid=target.pid,
                    started_at=target.started_at, restart_count=target.restart_count)
    assert wait_until(lambda: probe(by_pid, CONFIG, time.monotonic).ok is True, timeout=20)
    stranger = Target(container_id=target.container_id, sandbox="", pid=os.getpid(), started_at="", restart_count=0)
    with pytest.raises(CannotProbe, match="not this container's"):  # a pid that is not the container's
        socket_in(stranger)
    assert netns_unsupported(docker_client.api) is None  # root next to the engine (scripts/test-env.sh)


# -- without an engine ----------------------------------------------------------------------------

CONFIG = ProbeConfig(port=8080, path="/health", interval=2, timeout=1, retries=3, start_period=0)
START = ("2024-05-01T10:00:00.000000000Z", 0)
OK, FAIL, CANNOT = ProbeResult(True, "HTTP 200"), ProbeResult(False, "HTTP 500"), ProbeResult(None, "EPERM")


def test_verdicts_follow_dockers_rules() -> None:
    clock = FakeClock()
    v = Verdicts(clock, wall=lambda: 1714557600.0 + 5)  # 5 s after START
    assert v.look("c", START, CONFIG, HealthState.STARTING) == (HealthState.STARTING, True)
    assert v.look("c", START, CONFIG, HealthState.STARTING) == (HealthState.STARTING, False)  # claimed once
    assert v.record("c", START, CONFIG, FAIL) is HealthState.STARTING
    assert v.record("c", START, CONFIG, FAIL) is HealthState.STARTING
    assert v.record("c", START, CONFIG, FAIL) is HealthState.UNHEALTHY  # `retries` failures in a row
    assert v.record("c", START, CONFIG, OK) is HealthState.HEALTHY
    assert v.record("c", START, CONFIG, FAIL) is HealthState.HEALTHY  # one bad sample is not enough
    assert v.record("c", START, CONFIG, CANNOT) is HealthState.UNKNOWN  # could not look: not a failure
    assert v.look("c", START, CONFIG, HealthState.STARTING)[0] is HealthState.UNKNOWN
    assert v.record("c", START, CONFIG, FAIL) is HealthState.HEALTHY  # 2 failures so far
    assert v.record("c", START, CONFIG, FAIL) is HealthState.UNHEALTHY
    assert v.look("c", START, CONFIG, HealthState.STARTING) == (HealthState.UNHEALTHY, False)  # within interval
    clock.advance(2)
    assert v.look("c", START, CONFIG, HealthState.STARTING) == (HealthState.UNHEALTHY, True)
    again = ("2024-05-01T10:01:00.000000000Z", 1)  # restarted: starts over
    assert v.record("c", again, CONFIG, OK) is HealthState.UNHEALTHY  # a result about another start: dropped
    assert v.look("c", again, CONFIG, HealthState.STARTING) == (HealthState.STARTING, True)
    assert v.record("c", START, CONFIG, OK) is HealthState.UNKNOWN  # late result of the old start: dropped
    assert v.record("c", again, CONFIG, OK) is HealthState.HEALTHY


def test_failures_in_the_start_period_do_not_count_before_a_success() -> None:
    now = [1714557600.0 + 5]
    v = Verdicts(FakeClock(), wall=lambda: now[0])
    slow = ProbeConfig(port=1, path="/", interval=1, timeout=1, retries=1, start_period=30)
    v.look("c", START, slow, HealthState.STARTING)
    assert v.record("c", START, slow, FAIL) is HealthState.STARTING
    now[0] += 30
    assert v.record("c", START, slow, FAIL) is HealthState.UNHEALTHY


def test_a_listing_entry_adopts_the_start_a_probe_learns() -> None:
    v = Verdicts(FakeClock(), wall=time.time)
    assert v.look("c", None, CONFIG, HealthState.UNKNOWN) == (HealthState.UNKNOWN, True)
    assert v.record("c", START, CONFIG, OK) is HealthState.HEALTHY
    assert v.look("c", START, CONFIG, HealthState.STARTING)[0] is HealthState.HEALTHY
    assert v.look("c", None, CONFIG, HealthState.UNKNOWN)[0] is HealthState.HEALTHY
    v.keep_only([])
    assert v.look("c", None, CONFIG, HealthState.UNKNOWN)[0] is HealthState.UNKNOWN


def test_the_probe_config_label_round_trips_and_rejects_junk() -> None:
    health = Health(port=9000, path="/ready", interval_seconds=5, timeout_seconds=3, retries=4,
                    start_period_seconds=10)
    assert ProbeConfig.decode(ProbeConfig.of(health).encode()) == ProbeConfig.of(health)
    for junk in ("", "{", "[]", '{"port": 0, "path": "/", "interval": 1, "timeout": 1, "retries": 1}',
                 '{"port": 80, "path": "x", "interval": 1, "timeout": 1, "retries": 1}'):
        assert ProbeConfig.decode(junk) is None


@pytest.fixture
def server() -> Iterator[Callable[[bytes | None], int]]:
    """A loopback server answering each connection with the given bytes (None: never answers)."""
    socks: list[socket.socket] = []
    held: list[socket.socket] = []

    def start(answer: bytes | None) -> int:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        socks.append(srv)

        def serve() -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                conn.recv(4096)
                if answer is None:
                    held.append(conn)
                    continue
                conn.sendall(answer)
                conn.close()

        threading.Thread(target=serve, daemon=True).start()
        return int(srv.getsockname()[1])

    yield start
    for s in socks + held:
        s.close()


def _get(port: int, timeout: float = 1) -> ProbeResult:
    return http_status(socket.socket(), port, "/health", timeout, time.monotonic)


def test_http_status_passes_2xx_and_3xx_only(server: Callable[[bytes | None], int]) -> None:
    assert _get(server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) == ProbeResult(True, "HTTP 200")
    assert _get(server(b"HTTP/1.0 302 Found\r\n\r\n")).ok is True
    assert _get(server(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")) == ProbeResult(False, "HTTP 503")
    assert _get(server(b"SSH-2.0-OpenSSH\r\n")).ok is False
    assert _get(server(b"")) == ProbeResult(False, "closed without an answer")


def test_http_status_bounds_a_silent_server_and_a_closed_port(server: Callable[[bytes | None], int]) -> None:
    started = time.monotonic()
    assert _get(server(None), timeout=0.3) == ProbeResult(False, "no answer within 0.3s")
    assert time.monotonic() - started < 2
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    port = spare.getsockname()[1]
    spare.close()
    assert _get(port) == ProbeResult(False, f"connection refused on port {port}")


def test_probe_reports_what_it_could_not_do_as_unknown() -> None:
    def refuse(target: Target) -> socket.socket:
        raise CannotProbe("cannot enter /x: Operation not permitted")

    target = Target(container_id="c", sandbox="/x", pid=0, started_at="", restart_count=0)
    result = probe(target, CONFIG, time.monotonic, refuse)
    assert result == ProbeResult(None, "cannot enter /x: Operation not permitted")


def test_no_probes_for_an_engine_elsewhere() -> None:
    class Remote:
        base_url = "https://docker.example.com:2376"

    assert "not on a local unix socket" in (netns_unsupported(Remote()) or "")


def test_a_container_without_the_label_keeps_the_engines_status() -> None:
    probes = HttpProbes(lambda: None, clock=time.monotonic, wall=time.time, mode="reconciler")
    assert probes.state({"Id": "c", "State": {"Running": True}, "Config": {"Labels": {}}}) is None
