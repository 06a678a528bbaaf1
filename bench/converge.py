"""Benchmark: converge N workspaces (default 50) on the real engine, three ways, side by side.

Phases, each timed: (1) from scratch, (2) one workspace's env changed, (3) a no-op re-run.
Contenders create the same containers (same image digest, labels, env, a named /configs volume,
network none, restart unless-stopped):

  plain       a sequential docker-SDK loop: one list call, then stop/remove/create/start for each
              workspace whose spec-hash label differs (the floor: it verifies nothing)
  plain-x4    the same loop over a pool of `--concurrency` threads (the parallel floor)
  compose     `docker-compose -p <project> -f <file> up -d` of an equivalent compose file (1.29)
  reconciler  the library, one full pass per phase: `reconcile.run_pass` = render the generated
              repo, resolve pins (registry digest), list owned (DockerBackend), plan, apply_plan
              (concurrency 4 by default) with its health gate and commit; no forge, no CLI start-up

Prints seconds per phase, ratios to the plain loop, how many containers each phase replaced, and
the issue's targets next to the figures (never asserted). Everything it creates carries a unique
run id and is removed at the end (also on failure or Ctrl-C).

    python bench/converge.py [-n 50] [--concurrency 4] [--canaries 0] [--settle 0] [--rounds 1]
                             [--only plain,plain-x,compose,reconciler]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.backends import labels as lb  # noqa: E402
from reconciler.backends.docker import DockerBackend  # noqa: E402
from reconciler.model.config import ReconcilerFile  # noqa: E402
from reconciler.model.desired import DesiredWorkspace  # noqa: E402
from reconciler.plan import PlanPolicy  # noqa: E402
from reconciler.reconcile import PassInputs, run_pass  # noqa: E402
from reconciler.render import render_repo  # noqa: E402
from reconciler.render.pins import resolve_pins  # noqa: E402
from reconciler.secrets import SecretStore  # noqa: E402
from reconciler.source.checkout import Checkout  # noqa: E402
from reconciler.source.pins import LivePinResolver  # noqa: E402

IMAGE = "127.0.0.1:5000/workspace-template-claude-code:latest"
PHASES = ("from scratch", "one changed", "no-op")
TARGETS = {"from scratch": "<= 0.6x plain", "one changed": "1 container replaced", "no-op": "< 0.3 s (N=50)"}


def write_repo(root: Path, n: int, canaries: int, settle: float, changed: int | None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    settings = {"mode": "reconcile", "health": {"timeout_seconds": 120, "settle_seconds": settle},
                "docker": {"network": "none", "restart_policy": "unless-stopped"}}
    (root / "reconciler.yaml").write_text(yaml.safe_dump(settings))
    (root / "images.yaml").write_text(yaml.safe_dump({"images": {"claude-code": IMAGE}}))
    workspaces = []
    for i in range(n):
        ws: dict[str, object] = {"name": f"Worker {i}", "key": f"w{i:03d}",
                                 "tier": "canary" if i < canaries else "production", "env": {"SLOT": str(i)}}
        if i == changed:
            ws["env"] = {"SLOT": str(i), "ROUND": "2"}
        workspaces.append(ws)
    org = {"name": "Bench", "defaults": {"runtime": "claude-code", "model": "m1"}, "workspaces": workspaces}
    (root / "orgs" / "bench").mkdir(parents=True, exist_ok=True)
    (root / "orgs" / "bench" / "org.yaml").write_text(yaml.safe_dump(org, sort_keys=False))


class Contender:
    name = ""

    def __init__(self, api: docker.APIClient, run_id: str) -> None:
        self.api, self.instance = api, f"bench{run_id}{self.name[:1]}"

    def converge(self, phase: int, desired: list[DesiredWorkspace]) -> None:
        raise NotImplementedError

    def ids(self) -> dict[str, str]:
        rows = self.api.containers(all=True, filters={"label": f"{lb.INSTANCE}={self.instance}"})
        return {r["Labels"].get(lb.WORKSPACE, r["Id"]): r["Id"] for r in rows}

    def cleanup(self) -> None:
        for row in self.api.containers(all=True, filters={"label": f"{lb.INSTANCE}={self.instance}"}):
            with contextlib.suppress(docker.errors.APIError):
                self.api.remove_container(row["Id"], force=True)
        for vol in self.api.volumes(filters={"label": f"{lb.INSTANCE}={self.instance}"}).get("Volumes") or []:
            with contextlib.suppress(docker.errors.APIError):
                self.api.remove_volume(vol["Name"], force=True)

    def labels(self, ws: DesiredWorkspace) -> dict[str, str]:
        image = ws.image_digest or ws.image or IMAGE
        return lb.workload_labels(self.instance, ws, revision=None, image=image, configs_hash="")


class Plain(Contender):
    name = "plain"
    workers = 1

    def converge(self, phase: int, desired: list[DesiredWorkspace]) -> None:
        rows = self.api.containers(all=True, filters={"label": f"{lb.INSTANCE}={self.instance}"})
        have = {r["Labels"][lb.WORKSPACE]: r for r in rows}
        todo = [(ws, have.get(ws.id)) for ws in desired
                if ws.id not in have or have[ws.id]["Labels"].get(lb.SPEC_HASH) != ws.spec_hash]
        if self.workers == 1:
            for ws, row in todo:
                self.replace(ws, row)
        else:
            with ThreadPoolExecutor(self.workers) as pool:
                list(pool.map(lambda pair: self.replace(*pair), todo))

    def replace(self, ws: DesiredWorkspace, row: dict[str, Any] | None) -> None:
        name, volume = lb.container_name(self.instance, ws.id), lb.volume_name(self.instance, ws.id)
        if row:
            self.api.stop(row["Id"], timeout=10)
            self.api.remove_container(row["Id"])
        else:
            self.api.create_volume(volume, labels=lb.auxiliary_labels(self.instance, ws.id))
        host = self.api.create_host_config(binds={volume: {"bind": "/configs", "mode": "rw"}},
                                           network_mode="none", restart_policy={"Name": "unless-stopped"})
        cid = self.api.create_container(ws.image_digest, name=name, environment=dict(ws.env),
                                        labels=self.labels(ws), host_config=host)["Id"]
        self.api.start(cid)


class PlainParallel(Plain):
    """The same loop with the per-container work spread over a thread pool: the parallel floor."""

    name = "plain-x4"

    def __init__(self, api: docker.APIClient, run_id: str, workers: int) -> None:
        super().__init__(api, run_id)
        self.instance, self.workers, self.name = f"bench{run_id}q", workers, f"plain-x{workers}"


class Compose(Contender):
    name = "compose"

    def __init__(self, api: docker.APIClient, run_id: str, work: Path) -> None:
        super().__init__(api, run_id)
        self.file = work / "docker-compose.yml"

    def converge(self, phase: int, desired: list[DesiredWorkspace]) -> None:
        services, volumes = {}, {}
        for ws in desired:
            volume = lb.volume_name(self.instance, ws.id)
            volumes[volume] = {"name": volume, "labels": lb.auxiliary_labels(self.instance, ws.id)}
            services[ws.key] = {
                "image": ws.image_digest,
                "environment": {k: str(v).replace("$", "$$") for k, v in ws.env.items()},
                "labels": self.labels(ws),
                "volumes": [f"{volume}:/configs"],
                "network_mode": "none",
                "restart": "unless-stopped",
            }
        self.file.write_text(yaml.safe_dump({"version": "2.4", "services": services, "volumes": volumes}))
        self.compose("up", "-d", "--remove-orphans")

    def compose(self, *args: str) -> None:
        done = subprocess.run(["docker-compose", "-p", self.instance, "-f", str(self.file), *args],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"docker-compose {' '.join(args)} failed: {done.stderr[-2000:]}")

    def cleanup(self) -> None:
        if self.file.exists():
            with contextlib.suppress(RuntimeError):
                self.compose("down", "-v", "--remove-orphans")
        super().cleanup()


class Reconciler(Contender):
    name = "reconciler"

    def __init__(self, api: docker.APIClient, run_id: str, work: Path, repos: list[Path], concurrency: int) -> None:
        super().__init__(api, run_id)
        self.work, self.repos, self.concurrency = work, repos, concurrency
        self.last_message = ""

    def converge(self, phase: int, desired: list[DesiredWorkspace]) -> None:
        state = self.work / "state"

        def make_backend(settings: ReconcilerFile) -> DockerBackend:
            return DockerBackend(self.instance, network=settings.docker.network,
                                 restart_policy=settings.docker.restart_policy,
                                 settle_seconds=settings.health.settle_seconds, state_dir=state)

        inputs = PassInputs(
            make_backend=make_backend,
            resolver=LivePinResolver(state),
            secrets=SecretStore.open(self.work / "secrets", state),
            policy=lambda s: PlanPolicy(mode=s.mode, max_delete=s.max_delete),
            concurrency=self.concurrency,
        )
        result = run_pass(Checkout(self.repos[phase], None, None), inputs)
        self.last_message = result.message
        if result.exit_code:
            raise RuntimeError(f"reconciler pass failed (exit {result.exit_code}): {result.message}")


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--workspaces", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--canaries", type=int, default=0, help="workspaces in the canary tier (gated first)")
    parser.add_argument("--settle", type=float, default=0.0, help="reconciler.yaml health.settle_seconds")
    parser.add_argument("--only", default="plain,plain-x,compose,reconciler", help="contenders to run")
    parser.add_argument("--rounds", type=int, default=1, help="repeat all contenders; report medians")
    args = parser.parse_args()
    n, run_id = args.workspaces, uuid.uuid4().hex[:6]
    client = docker.from_env(timeout=120)
    client.ping()
    api = client.api
    compose_ok = subprocess.run(["docker-compose", "version", "--short"], capture_output=True, text=True, check=False)
    compose_version = compose_ok.stdout.strip() if compose_ok.returncode == 0 else None
    print(f"docker engine {client.version()['Version']} (API {api.api_version}); "
          f"docker-compose {compose_version or 'NOT WORKING: ' + compose_ok.stderr.strip()[:200]}")
    work = Path(tempfile.mkdtemp(prefix="bench-converge-"))
    changed = n // 2
    repos = [work / "repo-1", work / "repo-2", work / "repo-2"]
    write_repo(repos[0], n, args.canaries, args.settle, None)
    write_repo(repos[1], n, args.canaries, args.settle, changed)
    state = work / "render-state"
    resolver = LivePinResolver(state)
    secrets = SecretStore.open(work / "secrets", state)
    desired = [list(resolve_pins(render_repo(r, secrets=secrets), resolver).workspaces) for r in repos]
    image = desired[0][0].image_digest
    print(f"N={n} workspaces ({args.canaries} canary), image {image}, network none, "
          f"reconciler concurrency {args.concurrency}, settle {args.settle}s; run id {run_id}")
    client.images.get(image)

    contenders: list[Contender] = []
    wanted = set(args.only.split(","))
    if "plain" in wanted:
        contenders.append(Plain(api, run_id))
    if "plain-x" in wanted:
        contenders.append(PlainParallel(api, run_id, args.concurrency))
    if "compose" in wanted and compose_version:
        contenders.append(Compose(api, run_id, work))
    if "reconciler" in wanted:
        contenders.append(Reconciler(api, run_id, work, repos, args.concurrency))
    times: dict[str, list[list[float]]] = {c.name: [[] for _ in PHASES] for c in contenders}
    touched: dict[str, list[int]] = {c.name: [0] * len(PHASES) for c in contenders}
    try:
        for round_no in range(1, args.rounds + 1):  # contenders interleaved, so load drift hits them alike
            for contender in contenders:
                for phase, name in enumerate(PHASES):
                    before = contender.ids()
                    seconds = timed(lambda c=contender, p=phase: c.converge(p, desired[p]))
                    replaced = sum(1 for ws, cid in contender.ids().items() if before.get(ws) != cid)
                    times[contender.name][phase].append(seconds)
                    touched[contender.name][phase] = max(touched[contender.name][phase], replaced)
                    print(f"  round {round_no} {contender.name:<10} {name:<12} {seconds:7.2f} s  "
                          f"{replaced:3d} container(s) created")
                if len(contender.ids()) != n:
                    raise RuntimeError(f"{contender.name}: expected {n} containers, found {len(contender.ids())}")
                contender.cleanup()
    finally:
        for contender in contenders:
            contender.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    report(n, {k: [statistics.median(v) for v in rows] for k, rows in times.items()}, touched, args.rounds)
    return 0


def report(n: int, times: dict[str, list[float]], touched: dict[str, list[int]], rounds: int) -> None:
    floor = times.get("plain")
    width = 24
    print(f"\nmedian of {rounds} round(s); each cell: seconds (ratio to plain) containers created")
    header = f"{'phase':<13}" + "".join(f"{name:>{width}}" for name in times) + "   target (reconciler)"
    print(header)
    print("-" * len(header))
    for i, phase in enumerate(PHASES):
        cells = []
        for name, row in times.items():
            ratio = f"({row[i] / floor[i]:.2f}x)" if floor and floor[i] > 0 else ""
            cells.append(f"{row[i]:.2f} s {ratio:>9} {touched[name][i]:>3}")
        print(f"{phase:<13}" + "".join(f"{c:>{width}}" for c in cells) + f"   {TARGETS[phase]}")
    rec = times.get("reconciler")
    if rec and floor:
        print(f"\nreconciler vs targets: from scratch {rec[0] / floor[0]:.2f}x plain (target <= 0.6x), "
              f"one change replaced {touched['reconciler'][1]} container(s) (target 1), "
              f"no-op {rec[2]:.3f} s (target < 0.3 s for 50)")
    print("per container from scratch: " + ", ".join(f"{k} {v[0] / n * 1000:.0f} ms" for k, v in times.items()))


if __name__ == "__main__":
    sys.exit(main())
