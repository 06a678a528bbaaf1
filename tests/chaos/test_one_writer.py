"""One writer per instance: two `apply` on one state dir, and two state dirs on one engine.

- two `reconciler apply` started together on the same state dir: one converges, the other exits 2
  at once naming the holder (its pid and command);
- an apply on another state dir with the same instance id, while the first holds the engine lease
  (paused with SIGSTOP after taking it): refused with exit 2 naming the holder; once the holder is
  killed, its lease is stale (its process is gone) and the next apply takes it over and converges.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.chaos.fleet import Chaos
from tests.e2e.fleet import ROOT

pytestmark = pytest.mark.docker


def _start(chaos: Chaos, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(chaos.cli.command(*extra), cwd=ROOT, env=chaos.cli.environment(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _lease_taken(chaos: Chaos) -> bool:
    name = f"reconciler-lease-{chaos.fleet.instance_id}"
    return any(v["Name"] == name for v in chaos.client.api.volumes(filters={"name": name})["Volumes"] or [])


def test_two_applies_on_one_state_dir_one_runs_the_other_exits_2_naming_the_holder(chaos: Chaos) -> None:
    chaos.push("A")
    first, second = _start(chaos), _start(chaos)
    outputs = [p.communicate(timeout=240)[0] for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    assert codes == [0, 2], outputs
    refused = outputs[[first.returncode, second.returncode].index(2)]
    assert "another reconciler is already running" in refused and "pid " in refused, refused
    assert "reconciler apply" in refused, refused
    assert not chaos.invariants(plan=True)


def test_a_second_state_dir_on_the_same_instance_is_refused_until_the_holder_is_gone(chaos: Chaos) -> None:
    chaos.push("B")
    holder = _start(chaos)
    deadline = time.monotonic() + 60
    while not _lease_taken(chaos) and holder.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holder.poll() is None, "the first apply ended before it could be paused"
    os.kill(holder.pid, signal.SIGSTOP)  # it holds the lease and does nothing
    other_state = chaos.cli.state_dir.parent / "other-state"
    try:
        refused = subprocess.run(chaos.cli.command("--state-dir", str(other_state)), cwd=ROOT,
                                 env=chaos.cli.environment(), capture_output=True, text=True, timeout=120, check=False)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"pid {holder.pid}" in refused.stderr and "held by another reconciler" in refused.stderr, refused.stderr

        os.kill(holder.pid, signal.SIGKILL)  # the holder is gone: its lease is stale
        holder.wait(30)
        taken = subprocess.run(chaos.cli.command("--state-dir", str(other_state)), cwd=ROOT,
                               env=chaos.cli.environment(), capture_output=True, text=True, timeout=240, check=False)
        assert taken.returncode == 0, taken.stdout + taken.stderr
        chaos.cli.state_dir, mine = other_state, chaos.cli.state_dir  # the plan reads the new holder's state
        try:
            assert not chaos.invariants(plan=True)
        finally:
            chaos.cli.state_dir = mine
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGKILL)
        shutil.rmtree(other_state, ignore_errors=True)
