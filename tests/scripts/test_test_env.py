"""`scripts/test-env.sh stop` stops only what `start` started: the process it recorded (pid and start
time), never another engine or registry that happens to run, and never a new process that reuses a
recorded pid. Run as the real script, against processes made for the test."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "test-env.sh"


def start_time(pid: int) -> str:
    """The process's start time in ticks since boot, as the script records it."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(") ", 1)[1].split()[19]


def alive(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None


def stop(state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RECONCILER_TEST_ENV_DIR": str(state)}
    return subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def named(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start long sleeps under the names `dockerd` and `docker-registry` (what a workstation runs)."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if alive(proc):
            proc.send_signal(signal.SIGKILL)
        proc.wait()


def spawn(tmp_path: Path, name: str, procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    binary = tmp_path / "bin" / name
    binary.parent.mkdir(exist_ok=True)
    shutil.copy(shutil.which("sleep") or "/bin/sleep", binary)
    proc = subprocess.Popen([str(binary), "300"])
    procs.append(proc)
    deadline = time.monotonic() + 5
    while not Path(f"/proc/{proc.pid}/stat").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


def test_stop_leaves_an_engine_and_a_registry_it_did_not_start_alone(
    tmp_path: Path, named: list[subprocess.Popen[bytes]]
) -> None:
    engine, registry = spawn(tmp_path, "dockerd", named), spawn(tmp_path, "docker-registry", named)
    state = tmp_path / "state"
    state.mkdir()

    result = stop(state)

    assert result.returncode == 0, result.stderr
    assert alive(engine) and alive(registry)
    assert "no dockerd started by this script" in result.stderr and "left alone" in result.stderr


def test_stop_stops_the_process_it_recorded(tmp_path: Path, named: list[subprocess.Popen[bytes]]) -> None:
    ours, other = spawn(tmp_path, "docker-registry", named), spawn(tmp_path, "dockerd", named)
    state = tmp_path / "state"
    state.mkdir()
    (state / "registry.pid").write_text(f"{ours.pid} {start_time(ours.pid)}\n")

    result = stop(state)

    assert result.returncode == 0, result.stderr
    ours.wait(timeout=10)
    assert not alive(ours) and alive(other)
    assert f"stopped the registry it had started (pid {ours.pid})" in result.stderr
    assert not (state / "registry.pid").exists()


def test_a_recorded_pid_now_used_by_another_process_is_not_signalled(
    tmp_path: Path, named: list[subprocess.Popen[bytes]]
) -> None:
    """The pid was recorded for a process that has gone; the same number now names another one."""
    stranger = spawn(tmp_path, "dockerd", named)
    state = tmp_path / "state"
    state.mkdir()
    (state / "dockerd.pid").write_text(f"{stranger.pid} 1\n")  # started at another time: not that process

    result = stop(state)

    assert result.returncode == 0, result.stderr
    assert alive(stranger)
    assert "has already exited" in result.stderr and not (state / "dockerd.pid").exists()
