"""`reconciler apply` (the real CLI process) killed with SIGKILL at exact engine calls, then run again.

Two configs, A and B, whose switch exercises every kind of step at once: an in-place update of
/configs (lead), a recreate (triage: env), a create on a fresh volume with plugins (newbie), a
plugin removal and install (scout), a delete (research or newbie), each with its health gate and
commit, canary first. One uninterrupted switch each way is recorded through `KillProxy` to learn
the engine calls in order; then, alternating A->B and B->A, the apply is killed before or after
one chosen call (plus a few kills after a random delay), and one more plain `apply` must:
exit 0; leave exactly one container per workspace (no `.prev-*`, `.new-*` or helper); no volume
but each workspace's /configs (no snapshot, no volume of a deleted workspace); every /configs
complete (its files and installed plugins); and nothing older than the config (a fresh `plan`
finds nothing to change). The table of kill points and outcomes is printed.
"""

from __future__ import annotations

import random
import time
import uuid

import pytest

from tests.chaos.fleet import Chaos
from tests.chaos.kill_proxy import KillProxy

pytestmark = pytest.mark.docker

def kill_points(calls: list[str]) -> list[tuple[int, str, str]]:
    """(call number, before|after, the call): after the first call of each kind (every kind of step
    the switch makes), after every stop, rename (the two-phase markers: old to `.prev-*`, `.new-*`
    to its name) and archive (a helper's and a fresh create's), and before the first create of a
    `.new-*` container and the first rename."""
    points: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    for n, call in enumerate(calls, start=1):
        first = call not in seen
        seen.add(call)
        if first or call.endswith(("/rename", "/stop", "/archive")):
            points.append((n, "after", call))
        if first and (call.endswith("/rename") or ".new-" in call):
            points.append((n, "before", call))
    return points


@pytest.mark.timeout(1800)
def test_apply_killed_at_every_step_then_run_again_converges_with_nothing_left_behind(
    chaos: Chaos, capsys: pytest.CaptureFixture[str]
) -> None:
    chaos.push("A")
    code, out = chaos.apply()
    assert code == 0, out
    steps = {"B": chaos.recorded("B"), "A": chaos.recorded("A")}  # ends at A
    assert steps["A"] == steps["B"], "the two switches should make the same kinds of call in the same order"
    schedule: list[tuple[str, tuple[int, str, str] | float]] = []
    for i, step in enumerate(kill_points(steps["B"])):  # alternate: each run switches the other way
        schedule.append(("B" if i % 2 == 0 else "A", step))
    rng = random.Random(20261130)
    schedule += [("B" if len(schedule) % 2 == 0 else "A", rng.uniform(2.0, 8.0)) for _ in range(2)]

    rows: list[tuple[str, str, str, str]] = []
    began = time.monotonic()
    failures: list[str] = []
    for target, point in schedule:
        if chaos.state == target:  # alternate: always switch
            continue_from = "B" if target == "A" else "A"
            chaos.push(continue_from)
            code, out = chaos.apply(serial=False)
            assert code == 0, out
        chaos.push(target)
        if isinstance(point, tuple):
            label = f"{point[1]} #{point[0]} {point[2]}"
            with KillProxy(chaos.sock_dir / f"k{uuid.uuid4().hex[:6]}.sock", kill_at=(point[0], point[1])) as proxy:
                code, _ = chaos.apply(proxy)
            how = "killed" if proxy.killed else f"not reached (exit {code})"
        else:
            label = f"after {point:.1f} s (random)"
            started = time.monotonic()
            code, _ = chaos.apply(delay=point, serial=False)
            how = "killed" if code == -9 else f"finished first (exit {code}, {time.monotonic() - started:.1f} s)"
        code, out = chaos.apply(serial=False)
        last = len(rows) == len(schedule) - 1
        problems = chaos.invariants(plan=last) if code == 0 else [f"recovery apply exited {code}: {out[-800:]}"]
        rows.append((f"->{target}", label, how, "ok" if not problems else "; ".join(problems)))
        with capsys.disabled():  # progress: this test takes minutes
            print(f"chaos {len(rows):2}/{len(schedule)} {time.monotonic() - began:5.0f} s  " + "  ".join(rows[-1]))
        if problems:
            failures.append(f"{label}: {problems}")

    width = max(len(r[1]) for r in rows)
    table = [f"{'to':4} {'kill point':{width}}  {'run':40}  after one more apply"]
    table += [f"{r[0]:4} {r[1]:{width}}  {r[2]:40}  {r[3]}" for r in rows]
    with capsys.disabled():
        print("\n" + "\n".join(table))
    killed = sum(1 for r in rows if r[2] == "killed")
    assert killed >= 20, f"only {killed} runs were really killed:\n" + "\n".join(table)
    assert not failures, "\n".join(table)
