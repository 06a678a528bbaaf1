"""The daemon's unhealthy clock: running-but-unhealthy containers timed per container, in memory."""

from __future__ import annotations

from reconciler.daemon.healing import UnhealthyClock
from reconciler.model.enums import HealthState, Tier
from tests.plan.factory import observed, ws
from tests.support.clock import FakeClock

A = ws("a")
B = ws("b", tier=Tier.CANARY)


def test_the_unhealthy_clock_times_running_unhealthy_containers_and_restarts_after_a_recreate() -> None:
    clock = FakeClock()
    timer = UnhealthyClock(60, clock=clock)
    unwell = observed(A, health=HealthState.UNHEALTHY)
    timer.observe([unwell, observed(B, running=False, health=HealthState.UNHEALTHY)])
    assert timer.timing() == {"acme/a": 0.0}  # a stopped one is not timed: the plan restarts it
    clock.advance(59)
    assert timer.due([unwell]) == {}
    clock.advance(1)
    assert timer.due([unwell]) == {"acme/a": 60.0}
    timer.observe([observed(A, ref="other", health=HealthState.UNHEALTHY)])  # another container: from zero
    assert timer.due() == {}
    clock.advance(60)
    assert timer.due() == {"acme/a": 60.0}
    timer.restarted(["acme/a"])
    assert timer.due([unwell]) == {}
    timer.observe([observed(A, health=HealthState.HEALTHY)])
    assert timer.timing() == {}
    off = UnhealthyClock(0, clock=clock)
    off.observe([unwell])
    clock.advance(1000)
    assert not off.enabled and off.due([unwell]) == {}
