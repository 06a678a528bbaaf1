"""The engine goes away in the middle of an apply (as if dockerd restarted), then comes back.

The apply that lost it ends `error` (exit 2, `error` on both tier contexts, nothing torn down); the
next apply, with the engine back, recovers what the first left half-done and converges with the
chaos invariants (one container per workspace, no copy, helper or stray volume, /configs complete,
nothing older than the config).
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from reconciler.forge.gitea import GiteaClient
from tests.chaos.fleet import Chaos
from tests.e2e.engine_proxy import EngineProxy
from tests.e2e.fleet import REPO, ROOT, TOKEN

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("cut_on", [b"/rename", b"/archive"])
def test_the_engine_lost_mid_apply_ends_it_in_error_and_the_next_apply_converges(chaos: Chaos, cut_on: bytes) -> None:
    target = "B" if chaos.state == "A" else "A"
    if not chaos.specs:  # the specs each state converges to, from one plain switch each way
        chaos.push("A")
        assert chaos.apply()[0] == 0
        chaos.recorded("B")
        chaos.recorded("A")
        target = "B"
    sha = chaos.push(target)
    with EngineProxy(chaos.sock_dir / f"e{uuid.uuid4().hex[:6]}.sock", cut_on=cut_on) as proxy:
        env = chaos.cli.environment({"DOCKER_HOST": proxy.docker_host})
        lost = subprocess.run(chaos.cli.command(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
                              check=False)
        assert proxy.cut.is_set(), lost.stdout + lost.stderr
    assert lost.returncode == 2, lost.stdout + lost.stderr
    with GiteaClient(chaos.cli.emu.url, REPO, TOKEN, timeout=10) as forge:
        states = {s.context: str(s.state) for s in forge.combined_status(sha).statuses}
    assert states["reconciler/canary"] == "error", states  # both cut points are in the canary tier
    assert states["reconciler/production"] != "success", states

    code, out = chaos.apply(serial=False)  # the engine is back
    assert code == 0, out
    assert not chaos.invariants(plan=True)
