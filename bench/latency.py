"""Benchmark: push-to-pending and push-to-converged latency of the real daemon, webhook vs polling.

Starts the Gitea emulator (real git over HTTP) and `python -m reconciler run` against the real
Docker engine (scripts/test-env.sh start), then pushes N commits one at a time, each changing
the env of a small fleet (so each run recreates it). The clock starts when the push is done
(webhook mode: when Gitea would deliver; poll mode: the daemon only polls) and stops when the
emulator stores the first `pending`, then when both tier contexts are `success`. Prints median
and p95 per mode; the issue's target is p95 push-to-pending under 0.25 s through the webhook.
    python bench/latency.py [--pushes 8] [--workspaces 1] [--poll-interval 1]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from tests.support.daemon import CONTEXTS, Fleet  # noqa: E402
from tests.support.engine import cleanup  # noqa: E402
from tests.support.git_cli import GIT_ENV  # noqa: E402
from tests.support.gitea_emulator import GiteaEmulator  # noqa: E402
from tests.support.gitea_hooks import ZERO  # noqa: E402
from tests.support.gitea_repo import HOOK_SECRET, NAME, OWNER, TOKEN  # noqa: E402
from tests.support.net import dead_port  # noqa: E402
from tests.support.policy import policy_file  # noqa: E402

POLL_S = 0.005


def first_seen(emu: GiteaEmulator, sha: str, want: str, t0: float, timeout: float) -> float:
    """Seconds from `t0` until the emulator holds `want` ("pending": any pending; "converged")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = emu.statuses(OWNER, NAME, sha)
        if want == "pending" and any(r["state"] == "pending" for r in rows):
            return time.monotonic() - t0
        latest = {r["context"]: r["state"] for r in rows}
        if want == "converged" and all(latest.get(c) == "success" for c in CONTEXTS):
            return time.monotonic() - t0
        time.sleep(POLL_S)
    raise SystemExit(f"timed out waiting for {want} on {sha[:12]}")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]


def measure(mode: str, args: argparse.Namespace, work: Path) -> tuple[list[float], list[float]]:
    instance = f"b{uuid.uuid4().hex[:8]}"
    with GiteaEmulator(work / f"gitea-{mode}", token=TOKEN) as emu:
        emu.create_repo(OWNER, NAME)
        fleet = Fleet(work / f"work-{mode}", emu.clone_url(OWNER, NAME))
        (work / "token").write_text(TOKEN)
        (work / "hook").write_bytes(HOOK_SECRET)
        (work / "secrets").mkdir(exist_ok=True)
        port = dead_port()
        url = f"http://127.0.0.1:{port}"
        poll = args.poll_interval if mode == "poll" else 3600
        cmd = [sys.executable, "-m", "reconciler", "run", "--source", emu.clone_url(OWNER, NAME),
               "--listen", f"127.0.0.1:{port}", "--state-dir", str(work / f"state-{mode}"),
               "--poll-interval", str(poll), "--resync-interval", "3600", "--webhook-secret-file",
               str(work / "hook"), "--gitea-url", emu.url, "--gitea-repo", f"{OWNER}/{NAME}",
               "--gitea-token-file", str(work / "token"), "--instance-id", instance,
               "--secrets-dir", str(work / "secrets"), "--log-level", "WARNING", "--public-url", url,
               "--policy", str(policy_file(work / f"policy-{mode}"))]
        log = (work / f"daemon-{mode}.log").open("wb")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, **GIT_ENV, "PYTHONPATH": str(ROOT)})
        pending: list[float] = []
        converged: list[float] = []
        try:
            import httpx

            for _ in range(300):
                try:
                    httpx.get(url + "/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            if mode == "webhook":
                emu.add_webhook(OWNER, NAME, url + "/hooks/gitea", secret=HOOK_SECRET.decode())
            before = ZERO
            for i in range(args.pushes + 1):  # the first push creates the fleet: not counted
                fleet.write(str(i), canary=min(1, args.workspaces), production=max(0, args.workspaces - 1))
                sha = fleet.commit(f"v{i}")
                fleet.push()
                t0 = time.monotonic()
                if mode == "webhook":
                    emu.deliver_push(OWNER, NAME, "refs/heads/main", before, sha)
                to_pending = first_seen(emu, sha, "pending", t0, 120)
                to_converged = first_seen(emu, sha, "converged", t0, 300)
                if i:
                    pending.append(to_pending)
                    converged.append(to_converged)
                before = sha
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
            log.close()
            cleanup(docker.from_env(), instance)
    return pending, converged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=8, help="measured pushes per mode (bounded: max 50)")
    parser.add_argument("--workspaces", type=int, default=1, help="fleet size (first is canary)")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="poll mode: the daemon's --poll-interval")
    parser.add_argument("--modes", default="webhook,poll")
    args = parser.parse_args()
    args.pushes = max(1, min(args.pushes, 50))
    print(f"{args.pushes} pushes per mode, {args.workspaces} workspace(s), poll interval {args.poll_interval}s")
    print(f"{'mode':8} {'to pending median':>18} {'p95':>8} {'to converged median':>20} {'p95':>8}")
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        results = {}
        for mode in args.modes.split(","):
            pending, converged = measure(mode, args, Path(tmp))
            results[mode] = (pending, converged)
            print(f"{mode:8} {statistics.median(pending):17.3f}s {p95(pending):7.3f}s "
                  f"{statistics.median(converged):19.3f}s {p95(converged):7.3f}s")
        if "webhook" in results:
            verdict = "meets" if p95(results["webhook"][0]) < 0.25 else "MISSES"
            print(f"webhook push-to-pending p95 {verdict} the 0.25 s target")
        if "webhook" in results and "poll" in results:
            ratio = statistics.median(results["poll"][0]) / max(statistics.median(results["webhook"][0]), 1e-9)
            print(f"polling is {ratio:.1f}x slower to pending than the webhook (median)")


if __name__ == "__main__":
    main()
