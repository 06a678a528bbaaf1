"""Benchmark: converge N workspaces (default 50) on the real engine, several ways, side by side.

Phases, each timed: (1) from scratch, (2) one workspace's env changed, (3) a no-op re-run.
Contenders create the same containers (same image digest, labels, env, a named /configs volume,
network none, restart unless-stopped):

  plain       a sequential docker-SDK loop: one list call, then stop/remove/create/start for each
              workspace whose spec-hash label differs (the floor: it verifies nothing)
  plain-x4    the same loop over a pool of `--concurrency` threads (the parallel floor)
  compose     `docker-compose -p <project> -f <file> up -d` of an equivalent compose file (1.29)
  reconciler  the library, one full pass per phase through the pipeline (`pipeline.passes.run_pass`:
              render the generated repo, list owned (DockerBackend), resolve pins (registry digest),
              plan, apply (concurrency 4 by default) with its health gate and commit); one `Parts`
              per contender, as in the daemon; no forge, no CLI start-up

Besides seconds it counts engine round trips (HTTP requests to the Docker API) per phase and
prints them per workspace: the SDK contenders through a counting wrapper on their own client's
`send`, docker-compose by running its Python entry point with the same wrapper (the
interpreter of /usr/bin/docker-compose). `--calls` prints the reconciler's calls by endpoint.

No-op-only mode (`--noop-only -n 1000`): creates N workspaces once through a fast path (the
backend's container spec on a thread pool, no gate, no commit, so the labels are exactly what a
pass would produce; the process is an idle `sleep`, see `create_fast`; `--agent`: the backend's
own create action and the image's demo agent), checks a pass plans nothing, then times the no-op
pass (prepare + plan, nothing applied; best of `--runs`), each stage apart (render, list, pins,
plan), its peak memory (tracemalloc, and the RSS high-water mark over the pass), and a profile of
one cold pass. Two
ways when the pipeline has a pass cache: cold (the cache emptied before each pass: render and pins
every time, as the CLI does) and warm (the same revision again, as the daemon's resync sees it).
While creating it watches MemAvailable and stops below `--min-free-gib` (the containers already
made are measured then, and the largest N that worked is printed).

Prints the issue's targets next to the figures (never asserted). Everything it creates carries a
unique run id and is removed at the end (also on failure, Ctrl-C or SIGTERM).

    python bench/converge.py [-n 50] [--concurrency 4] [--canaries 0] [--settle 0] [--rounds 1]
                             [--only plain,plain-x,compose,reconciler] [--calls]
    python bench/converge.py --noop-only [-n 1000] [--create-concurrency 16] [--runs 5] [--profile 25] [--agent]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import io
import itertools
import pstats
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from inspect import signature
from pathlib import Path
from typing import Any

import docker
import docker.errors
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.backends import labels as lb  # noqa: E402
from reconciler.backends.docker import DockerBackend  # noqa: E402
from reconciler.model.desired import DesiredWorkspace  # noqa: E402
from reconciler.model.enums import ActionKind  # noqa: E402
from reconciler.pipeline import stages  # noqa: E402
from reconciler.pipeline.compose import Parts, build_parts  # noqa: E402
from reconciler.pipeline.passes import PassOutcome, plan_revision, run_pass  # noqa: E402
from reconciler.pipeline.settings import Settings  # noqa: E402
from reconciler.render import render_repo  # noqa: E402
from reconciler.render.pins import resolve_pins  # noqa: E402
from reconciler.source.checkout import Checkout  # noqa: E402

IMAGE = "127.0.0.1:5000/workspace-template-claude-code:latest"
PHASES = ("from scratch", "one changed", "no-op")
TARGETS = {"from scratch": "<= 0.55x plain, <= 0.80x compose", "one changed": "1 container replaced",
           "no-op": "< 0.3 s (N=50)"}
NOOP_TARGET_S, NOOP_TARGET_N, NOOP_TARGET_MIB = 0.5, 1000, 200
REVISION = "b3" * 20  # the no-op mode's tree: a plain directory posing as one commit


def write_repo(root: Path, indices: list[int], canaries: int, settle: float, changed: int | None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    settings = {"mode": "reconcile",
                "health": {"timeout_seconds": 300, "settle_seconds": settle},
                "docker": {"network": "none", "restart_policy": "unless-stopped"}}
    (root / "reconciler.yaml").write_text(yaml.safe_dump(settings))
    (root / "images.yaml").write_text(yaml.safe_dump({"images": {"claude-code": IMAGE}}))
    workspaces = []
    for i in indices:
        ws: dict[str, object] = {"name": f"Worker {i}", "key": f"w{i:04d}",
                                 "tier": "canary" if i < canaries else "production", "env": {"SLOT": str(i)}}
        if i == changed:
            ws["env"] = {"SLOT": str(i), "ROUND": "2"}
        workspaces.append(ws)
    org = {"name": "Bench", "defaults": {"runtime": "claude-code", "model": "m1"}, "workspaces": workspaces}
    (root / "orgs" / "bench").mkdir(parents=True, exist_ok=True)
    (root / "orgs" / "bench" / "org.yaml").write_text(yaml.safe_dump(org, sort_keys=False))


# -- engine round trips -------------------------------------------------------------------------

_ROUTES = (
    (re.compile(r"^/(containers|volumes|images|networks)/(create|json|prune)$"), None),
    (re.compile(r"^/images/.+?/(json|push|tag|history)$"), r"/images/{ref}/\1"),
    (re.compile(r"^/(containers|volumes|networks)/[^/]+(/[a-z]+)?$"), r"/\1/{id}\2"),
)


def route(method: str, path_url: str) -> str:
    """`POST /containers/{id}/start`: the endpoint of a request, names and ids folded."""
    path = re.sub(r"^/v\d+\.\d+", "", path_url.split("?", 1)[0])
    for pattern, repl in _ROUTES:
        if pattern.match(path):
            path = path if repl is None else pattern.sub(repl, path)
            break
    return f"{method} {path}"


class RoundTrips:
    """Counts the HTTP requests a docker client sends to the engine (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.seconds: dict[str, float] = {}  # summed over threads: engine time, not wall time

    def attach(self, client: docker.DockerClient) -> docker.DockerClient:
        api = client.api
        send = api.send

        def counting(request: Any, **kwargs: Any) -> Any:
            endpoint = route(str(request.method), str(request.path_url))
            start = time.perf_counter()
            try:
                return send(request, **kwargs)
            finally:
                with self.lock:
                    self.calls[endpoint] += 1
                    self.seconds[endpoint] = self.seconds.get(endpoint, 0.0) + time.perf_counter() - start

        api.send = counting  # type: ignore[method-assign]
        return client

    def take(self) -> Counter[str]:
        with self.lock:
            taken, self.calls, self.seconds = self.calls, Counter(), {}
        return taken

    def take_timed(self) -> tuple[Counter[str], dict[str, float]]:
        with self.lock:
            taken, seconds, self.calls, self.seconds = self.calls, self.seconds, Counter(), {}
        return taken, seconds


# A docker-compose run whose engine requests are counted: its own interpreter runs this, then
# compose's entry point, with docker-py's APIClient.send wrapped (argv[1]: the file for the count).
COMPOSE_COUNTING = """
import atexit, itertools, sys
import docker.api.client as client
out = sys.argv.pop(1)
count = itertools.count()
send = client.APIClient.send
def counting(self, *args, **kwargs):
    next(count)
    return send(self, *args, **kwargs)
client.APIClient.send = counting
atexit.register(lambda: open(out, "w").write(str(next(count))))
from compose.cli.main import main
sys.argv[0] = "docker-compose"
main()
"""


def compose_python() -> str | None:
    """The interpreter of the docker-compose script, when it can import compose (else None)."""
    script = shutil.which("docker-compose")
    if not script:
        return None
    with contextlib.suppress(OSError, IndexError):
        first = Path(script).read_text(errors="replace").splitlines()[0]
        if first.startswith("#!"):
            python = first[2:].strip().split()[0]
            ok = subprocess.run([python, "-c", "import compose.cli.main, docker.api.client"],
                                capture_output=True, check=False)
            return python if ok.returncode == 0 else None
    return None


# -- contenders -----------------------------------------------------------------------------------

class Contender:
    name = ""
    key = ""

    def __init__(self, observer: docker.APIClient, run_id: str) -> None:
        self.observer, self.instance = observer, f"bench{run_id}{self.key or self.name[:1]}"
        self.trips = RoundTrips()
        self.client = self.trips.attach(docker.from_env(timeout=120))
        self.api = self.client.api

    def converge(self, phase: int, desired: list[DesiredWorkspace]) -> None:
        raise NotImplementedError

    def round_trips(self) -> tuple[Counter[str], dict[str, float]]:
        """Engine requests since the last call (the contender's own client only), and their seconds."""
        return self.trips.take_timed()

    def ids(self) -> dict[str, str]:
        rows = self.observer.containers(all=True, filters={"label": f"{lb.INSTANCE}={self.instance}"})
        return {r["Labels"].get(lb.WORKSPACE, r["Id"]): r["Id"] for r in rows if not r["Labels"].get(lb.ROLE)}

    def cleanup(self) -> None:
        remove_instance(self.observer, self.instance)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    def labels(self, ws: DesiredWorkspace) -> dict[str, str]:
        image = ws.image_digest or ws.image or IMAGE
        return lb.workload_labels(self.instance, ws, revision=None, image=image, configs_hash="")


def remove_instance(api: docker.APIClient, instance: str, workers: int = 8) -> int:
    """Remove every container, then every volume, labelled with `instance`; how many containers."""
    label = {"label": f"{lb.INSTANCE}={instance}"}

    def remove(fn: Callable[..., Any], ref: str, **kwargs: Any) -> None:
        with contextlib.suppress(docker.errors.APIError):
            fn(ref, force=True, **kwargs)

    rows = api.containers(all=True, filters=label)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda r: remove(api.remove_container, r["Id"], v=False), rows))
        volumes = api.volumes(filters=label).get("Volumes") or []
        list(pool.map(lambda v: remove(api.remove_volume, v["Name"]), volumes))
    return len(rows)


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

    key = "q"

    def __init__(self, observer: docker.APIClient, run_id: str, workers: int) -> None:
        super().__init__(observer, run_id)
        self.workers, self.name = workers, f"plain-x{workers}"


class Compose(Contender):
    name = "compose"

    def __init__(self, observer: docker.APIClient, run_id: str, work: Path, python: str | None) -> None:
        super().__init__(observer, run_id)
        self.file, self.python, self.count_file = work / "docker-compose.yml", python, work / "compose-calls"
        self.counted: Counter[str] = Counter()

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

    def compose(self, *args: str, count: bool = True) -> None:
        base = ["-p", self.instance, "-f", str(self.file), *args]
        if count and self.python:
            self.count_file.unlink(missing_ok=True)
            cmd = [self.python, "-c", COMPOSE_COUNTING, str(self.count_file), *base]
        else:
            cmd = ["docker-compose", *base]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if count and self.python and self.count_file.exists():
            self.counted["(docker-compose, all endpoints)"] += int(self.count_file.read_text() or 0)
        if done.returncode:
            raise RuntimeError(f"docker-compose {' '.join(args)} failed: {done.stderr[-2000:]}")

    def round_trips(self) -> tuple[Counter[str], dict[str, float]]:
        taken, self.counted = self.counted, Counter()
        return taken, {}

    def cleanup(self) -> None:
        if self.file.exists():
            with contextlib.suppress(RuntimeError):
                self.compose("down", "-v", "--remove-orphans", count=False)
        super().cleanup()


@dataclass
class BenchParts(Parts):
    """`Parts` whose Docker backends talk through the bench's (counted) client; timers optional."""

    client: docker.DockerClient | None = None
    timers: Timers | None = None

    def new_backend(self, network: str, restart_policy: str, settle_seconds: float) -> DockerBackend:
        return TimedDockerBackend(self.settings.instance_id, network=network, restart_policy=restart_policy,
                                  settle_seconds=settle_seconds, state_dir=self.settings.state_dir,
                                  client=self.client, timers=self.timers)


class TimedDockerBackend(DockerBackend):
    def __init__(self, *args: Any, timers: Timers | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timers = timers

    def list_owned(self) -> list[Any]:
        if self.timers is None:
            return super().list_owned()
        with self.timers.stage("list"):
            return super().list_owned()


def bench_settings(**values: Any) -> Settings:
    """The operator's settings of a bench pass; where the pipeline has an operator policy (deny-all
    without one), it allows the bench's registry."""
    if "policy" in Settings.model_fields:
        from reconciler.model import policy

        values["policy"] = policy.Policy(registries=[IMAGE.split("/", 1)[0]])
    return Settings(secrets_dir=None, **values)


def bench_parts(instance: str, state: Path, concurrency: int, client: docker.DockerClient,
                timers: Timers | None = None) -> BenchParts:
    settings = bench_settings(instance_id=instance, state_dir=state, max_delete=10_000, concurrency=concurrency)
    return BenchParts(**vars(build_parts(settings)), client=client, timers=timers)


class Reconciler(Contender):
    name = "reconciler"

    def __init__(self, observer: docker.APIClient, run_id: str, work: Path, repos: list[Path],
                 concurrency: int) -> None:
        super().__init__(observer, run_id)
        self.repos = repos
        self.parts = bench_parts(self.instance, work / "state", concurrency, self.client)
        self.last: PassOutcome | None = None
        self.timelines: list[tuple[str, dict[str, float]]] = []

    def converge(self, phase: int, desired: list[DesiredWorkspace]) -> None:
        marks: list[tuple[str, float]] = [("start", time.perf_counter())]

        def mark(event: object) -> None:
            marks.append((type(event).__name__, time.perf_counter()))

        self.last = outcome = run_pass(Checkout(self.repos[phase], None, None), self.parts, on_event=mark)
        marks.append(("end", time.perf_counter()))
        self.timelines.append((PHASES[phase], split_timeline(marks)))
        if outcome.exit_code:
            raise RuntimeError(f"reconciler pass {outcome.status} (exit {outcome.exit_code}): {outcome.message}")


def split_timeline(marks: list[tuple[str, float]]) -> dict[str, float]:
    """Seconds of a pass per step, from its apply events: plan (render, list, pins, plan), actions
    (first tier start to its gate), gate, commit (and deletes), the rest (between tiers, report)."""
    steps = {"plan": 0.0, "actions": 0.0, "gate": 0.0, "commit+deletes": 0.0, "other": 0.0}
    step_after = {"start": "plan", "TierStarted": "actions", "ActionDone": "actions", "GateStarted": "gate",
                  "GateProgress": "gate", "GateDone": "commit+deletes", "TierDone": "other"}
    for (name, at), (_, until) in itertools.pairwise(marks):
        steps[step_after.get(name, "other")] += until - at
    return steps


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so the `finally` that cleans the engine runs."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def converge_main(args: argparse.Namespace) -> int:
    n, run_id = args.workspaces, uuid.uuid4().hex[:6]
    client = docker.from_env(timeout=120)
    client.ping()
    observer = client.api
    compose_ok = subprocess.run(["docker-compose", "version", "--short"], capture_output=True, text=True, check=False)
    compose_version = compose_ok.stdout.strip() if compose_ok.returncode == 0 else None
    python = compose_python() if compose_version else None
    print(f"docker engine {client.version()['Version']} (API {observer.api_version}); "
          f"docker-compose {compose_version or 'NOT WORKING: ' + compose_ok.stderr.strip()[:200]}"
          f"{'' if python or not compose_version else ' (its engine requests are not counted)'}")
    work = Path(tempfile.mkdtemp(prefix="bench-converge-"))
    contenders: list[Contender] = []
    try:
        changed = n // 2
        repos = [work / "repo-1", work / "repo-2", work / "repo-2"]
        write_repo(repos[0], list(range(n)), args.canaries, args.settle, None)
        write_repo(repos[1], list(range(n)), args.canaries, args.settle, changed)
        plain_settings = bench_settings(state_dir=work / "render-state")
        resolver = build_parts(plain_settings).resolver()
        options: dict[str, Any] = {}
        if "policy" in signature(render_repo).parameters:  # the pipeline's operator policy, where it has one
            options["policy"] = plain_settings.policy
        desired = [list(resolve_pins(render_repo(r, **options), resolver).workspaces) for r in repos]
        image = desired[0][0].image_digest
        print(f"N={n} workspaces ({args.canaries} canary), image {image}, network none, "
              f"reconciler concurrency {args.concurrency}, settle {args.settle}s; run id {run_id}")
        client.images.get(image)

        wanted = set(args.only.split(","))
        if "plain" in wanted:
            contenders.append(Plain(observer, run_id))
        if "plain-x" in wanted:
            contenders.append(PlainParallel(observer, run_id, args.concurrency))
        if "compose" in wanted and compose_version:
            contenders.append(Compose(observer, run_id, work, python))
        if "reconciler" in wanted:
            contenders.append(Reconciler(observer, run_id, work, repos, args.concurrency))
        times: dict[str, list[list[float]]] = {c.name: [[] for _ in PHASES] for c in contenders}
        trips: dict[str, list[list[int]]] = {c.name: [[] for _ in PHASES] for c in contenders}
        touched: dict[str, list[int]] = {c.name: [0] * len(PHASES) for c in contenders}
        by_route: dict[str, tuple[Counter[str], dict[str, float]]] = {}
        for round_no in range(1, args.rounds + 1):  # contenders interleaved, so load drift hits them alike
            for contender in contenders:
                contender.round_trips()
                for phase, name in enumerate(PHASES):
                    before = contender.ids()
                    seconds = timed(functools.partial(contender.converge, phase, desired[phase]))
                    calls, engine_s = contender.round_trips()
                    replaced = sum(1 for ws, cid in contender.ids().items() if before.get(ws) != cid)
                    times[contender.name][phase].append(seconds)
                    trips[contender.name][phase].append(sum(calls.values()))
                    touched[contender.name][phase] = max(touched[contender.name][phase], replaced)
                    if round_no == 1:
                        by_route[f"{contender.name} {name}"] = calls, engine_s
                    print(f"  round {round_no} {contender.name:<10} {name:<12} {seconds:7.2f} s  "
                          f"{replaced:3d} container(s) created  {sum(calls.values()):5d} engine round trips")
                if len(contender.ids()) != n:
                    raise RuntimeError(f"{contender.name}: expected {n} containers, found {len(contender.ids())}")
                contender.cleanup()
    finally:
        for contender in contenders:
            contender.cleanup()
            contender.close()
        shutil.rmtree(work, ignore_errors=True)
    report(n, {k: [statistics.median(v) for v in rows] for k, rows in times.items()}, touched, args.rounds,
           {k: [statistics.median(v) for v in rows] for k, rows in trips.items()})
    if args.calls:
        for contender in contenders:
            if isinstance(contender, Reconciler):
                print("\nreconciler passes, seconds per step (plan = render, list, pins, plan; from apply events):")
                for name, steps in contender.timelines:
                    print(f"  {name:<13}" + "  ".join(f"{k} {v:6.2f}" for k, v in steps.items()))
        for key, (calls, engine_s) in by_route.items():
            if not engine_s:
                continue
            print(f"\nengine calls of {key} (round 1): per workspace, count, seconds (summed over threads), mean")
            for endpoint, count in sorted(calls.items(), key=lambda kv: (-kv[1], kv[0])):
                spent = engine_s.get(endpoint, 0.0)
                print(f"  {count / n:6.2f} {count:5d} {spent:8.2f} s {spent / count * 1000:7.1f} ms  {endpoint}")
    return 0


def report(n: int, times: dict[str, list[float]], touched: dict[str, list[int]], rounds: int,
           trips: dict[str, list[float]]) -> None:
    floor, compose = times.get("plain"), times.get("compose")
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
    print(f"\nengine round trips per workspace (median of {rounds} round(s); total / N={n})")
    print(f"{'phase':<13}" + "".join(f"{name:>{width}}" for name in trips))
    for i, phase in enumerate(PHASES):
        print(f"{phase:<13}" + "".join(f"{row[i] / n:>{width}.2f}" for row in trips.values()))
    rec = times.get("reconciler")
    if rec and floor:
        vs_compose = (f", {rec[0] / compose[0]:.2f}x compose (target <= 0.80x)" if compose and compose[0] > 0
                      else "")
        print(f"\nreconciler vs targets: from scratch {rec[0] / floor[0]:.2f}x plain (target <= 0.55x){vs_compose}, "
              f"one change replaced {touched['reconciler'][1]} container(s) (target 1), "
              f"no-op {rec[2]:.3f} s (target < 0.3 s for 50)")
    print("per container from scratch: " + ", ".join(f"{k} {v[0] / n * 1000:.0f} ms" for k, v in times.items()))


# -- no-op only -----------------------------------------------------------------------------------

@dataclass
class Timers:
    """Seconds per stage of the pass being timed (the stages are wrapped while it runs)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed_fn(*args: Any, **kwargs: Any) -> Any:
            with self.stage(name):
                return fn(*args, **kwargs)

        return timed_fn


# what `pipeline.stages` calls, by stage (whichever of these it imports; the list call is timed by
# the backend): the names of the pipeline moved while this was written, so unknown ones are skipped
STAGE_OF = {"load_settings": "settings", "render_repo": "render", "resolve_pins": "pins",
            "resolve_upstream": "pins", "apply_resolution": "pins", "plan": "plan"}
STAGES = ("render", "list", "pins", "plan", "settings")


@contextlib.contextmanager
def stage_timers(timers: Timers) -> Iterator[None]:
    """Time each stage of a pass by wrapping what `pipeline.stages` calls while it runs."""
    saved = {attr: getattr(stages, attr) for attr in STAGE_OF if callable(getattr(stages, attr, None))}
    try:
        for attr, fn in saved.items():
            setattr(stages, attr, timers.wrap(STAGE_OF[attr], fn))
        yield
    finally:
        for attr, fn in saved.items():
            setattr(stages, attr, fn)


def mem_available_gib() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return float("inf")


def rss_mib(field_name: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> bool:
    """Reset VmHWM (the RSS high-water mark) so it covers only what comes next."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


IDLE = ["sleep", "2147483647"]  # the workload process of --noop-only containers (see create_fast)


def create_fast(parts: BenchParts, checkout: Checkout, workers: int, min_free_gib: float,
                idle: bool) -> tuple[int, str]:
    """Create every workspace the plan wants, `workers` at a time, no gate, no commit: the
    reconciler's own create action, or with `idle` the same calls with the same spec (labels,
    volume, env, host config from the backend's `container_spec`) but an idle `sleep` as the
    process instead of the image's demo agent loop, which forks every second (1,000 of them keep
    2 cores busy; the plan never looks at the process). Stops early under `min_free_gib`."""
    planned = plan_revision(checkout, parts)
    if isinstance(planned, PassOutcome):
        raise RuntimeError(f"planning failed: {planned.message}")
    backend = planned.prepared.backend
    assert isinstance(backend, DockerBackend)
    creates = [a for a in planned.plan.changes() if a.kind is ActionKind.CREATE]
    api = backend._api()

    def apply_idle(action: Any) -> None:
        ws = action.desired
        image = ws.image_digest or ws.image
        backend.objects.ensure_volume(ws.id, lb.volume_name(backend.instance_id, ws.id))
        spec = backend.objects.container_spec(ws, {}, checkout.revision, image)
        api.start(api.create_container(**spec, entrypoint=IDLE, command=[])["Id"])
    stop, why = threading.Event(), ""
    lowest = [mem_available_gib()]

    def create(action: Any) -> bool:
        if stop.is_set():
            return False
        free = mem_available_gib()
        lowest[0] = min(lowest[0], free)
        if free < min_free_gib:
            stop.set()
            return False
        if idle:
            apply_idle(action)
        else:
            backend.apply(action, {}, checkout.revision)
        return True

    done = 0
    with ThreadPoolExecutor(workers) as pool:
        try:
            for i, ok in enumerate(pool.map(create, creates), 1):
                done += ok
                if i % 100 == 0:
                    print(f"    {i}/{len(creates)} created, MemAvailable {mem_available_gib():.1f} GiB", flush=True)
        except BaseException:  # Ctrl-C, SIGTERM, a failed create: start no more (the pool waits for the rest)
            stop.set()
            raise
    if stop.is_set():
        why = f"stopped: MemAvailable under {min_free_gib} GiB"
    return done, f"{why + '; ' if why else ''}lowest MemAvailable while creating {lowest[0]:.1f} GiB"


def noop_main(args: argparse.Namespace) -> int:
    n, run_id = args.workspaces, uuid.uuid4().hex[:6]
    instance = f"bench{run_id}n"
    client = docker.from_env(timeout=300)
    client.ping()
    work = Path(tempfile.mkdtemp(prefix="bench-noop-"))
    root = work / "repo"
    trips = RoundTrips()
    counted = trips.attach(docker.from_env(timeout=300))
    print(f"no-op only: N={n}, run id {run_id}, MemAvailable {mem_available_gib():.1f} GiB")
    try:
        write_repo(root, list(range(n)), 0, 0.0, None)
        maker = bench_parts(instance, work / "state", args.create_concurrency, client)
        checkout = Checkout(root, REVISION, None)  # a revision, so a pass cache (if any) keeps its render
        start = time.perf_counter()
        created, note = create_fast(maker, checkout, args.create_concurrency, args.min_free_gib, not args.agent)
        print(f"  created {created} workspace(s) in {time.perf_counter() - start:.1f} s "
              f"({args.create_concurrency} threads, {'demo agent' if args.agent else 'idle'} process; {note})")
        if created < n:
            n = created
            rows = client.api.containers(all=True, filters={"label": lb.owner_filters(instance)})
            indices = sorted(int(r["Labels"][lb.WORKSPACE].rsplit("/w", 1)[1]) for r in rows)
            write_repo(root, indices, 0, 0.0, None)
            print(f"  measuring the {n} that were created (the largest N that worked)")

        timers = Timers()
        parts = bench_parts(instance, work / "state", args.concurrency, counted, timers)
        cache = getattr(parts, "cache", None)  # the pass cache (render and pins per revision), if any

        def one_pass(cold: bool) -> tuple[float, dict[str, float], int]:
            if cold and cache is not None:
                parts.cache = type(cache)()  # type: ignore[attr-defined]
            timers.seconds.clear()
            trips.take()
            start = time.perf_counter()
            with stage_timers(timers):
                planned = plan_revision(checkout, parts)
            total = time.perf_counter() - start
            if isinstance(planned, PassOutcome):
                raise RuntimeError(f"no-op pass failed: {planned.message}")
            if planned.plan.changes():
                raise RuntimeError(f"not a no-op: {planned.plan.summary()} "
                                   f"(first: {planned.plan.changes()[0].reason})")
            calls, engine_s = trips.take_timed()
            seconds = dict(timers.seconds)
            seconds["list: engine"] = sum(engine_s.values())
            return total, seconds, sum(calls.values())

        one_pass(True)  # imports, the first client connection
        modes = [("cold", True)] + ([("warm", False)] if cache is not None else [])
        best: dict[str, tuple[float, dict[str, float], int]] = {}
        for mode, cold in modes:
            runs = [one_pass(cold) for _ in range(args.runs)]
            best[mode] = top = min(runs, key=lambda r: r[0])
            what = ("render and pins every time, as without a pass cache (the CLI)" if cold else
                    "the same revision again: render and pins from the pass cache (the daemon)")
            print(f"\nno-op pass, {mode}: {what}; prepare + plan, nothing applied; N={n}, {args.runs} runs: "
                  f"best {top[0]:.3f} s, median {statistics.median(r[0] for r in runs):.3f} s; "
                  f"engine round trips per pass: {top[2]}")
            print("  stage      best-run s   min s    share of best run")
            for name in STAGES:
                low = min(r[1].get(name, 0.0) for r in runs)
                print(f"  {name:<10} {top[1].get(name, 0.0):9.3f} {low:8.3f}    {top[1].get(name, 0.0) / top[0]:6.1%}")
                if name == "list":  # the request itself (engine and transfer), then decode and observe
                    engine = top[1]["list: engine"]
                    print(f"    engine   {engine:9.3f} {min(r[1]['list: engine'] for r in runs):8.3f}    "
                          f"{engine / top[0]:6.1%}   (the list request; the rest: JSON decode, observe)")
            other = top[0] - sum(top[1].get(name, 0.0) for name in STAGES)
            print(f"  {'other':<10} {other:9.3f}             {other / top[0]:6.1%}   (holds, cache keys, glue)")

        for mode, cold in modes:
            before = rss_mib("VmRSS")
            reset = reset_peak_rss()
            one_pass(cold)
            hwm = rss_mib("VmHWM")
            tracemalloc.start()
            one_pass(cold)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rss_note = (f"RSS high-water mark {hwm:.0f} MiB ({hwm - before:+.0f} MiB over the {before:.0f} MiB "
                        "before the pass)" if reset else f"process peak RSS {hwm:.0f} MiB (could not reset it)")
            grew = max(peak / 2**20, hwm - before if reset else hwm)
            verdict = "meets" if best[mode][0] < NOOP_TARGET_S else "MISSES"
            print(f"\n{mode}: memory of one pass: tracemalloc peak {peak / 2**20:.1f} MiB; {rss_note}")
            print(f"{mode}: target no-op pass for {NOOP_TARGET_N} < {NOOP_TARGET_S} s: {verdict} at N={n} "
                  f"({best[mode][0] / NOOP_TARGET_S:.2f}x the target); peak memory < {NOOP_TARGET_MIB} MB: "
                  f"{'meets' if grew < NOOP_TARGET_MIB else 'MISSES'} ({grew:.0f} MiB)")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            one_pass(True)
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
            stats.print_stats(args.profile)
            print("\nprofile of one cold no-op pass, by own time (tottime):")
            print("\n".join(line for line in out.getvalue().splitlines()[5:] if line.strip()))
    finally:
        start = time.perf_counter()
        removed = remove_instance(client.api, instance, workers=8)
        print(f"\ncleanup: removed {removed} container(s) and their volumes in {time.perf_counter() - start:.1f} s")
        with contextlib.suppress(Exception):
            counted.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--workspaces", type=int, default=None, help="50; 1000 with --noop-only")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--canaries", type=int, default=0, help="workspaces in the canary tier (gated first)")
    parser.add_argument("--settle", type=float, default=0.0, help="reconciler.yaml health.settle_seconds")
    parser.add_argument("--only", default="plain,plain-x,compose,reconciler", help="contenders to run")
    parser.add_argument("--rounds", type=int, default=1, help="repeat all contenders; report medians")
    parser.add_argument("--calls", action="store_true", help="print the reconciler's engine calls by endpoint")
    parser.add_argument("--noop-only", action="store_true", help="time the no-op pass over N existing workspaces")
    parser.add_argument("--create-concurrency", type=int, default=16, help="--noop-only: threads creating them")
    parser.add_argument("--runs", type=int, default=5, help="--noop-only: timed no-op passes (best is reported)")
    parser.add_argument("--profile", type=int, default=25, help="--noop-only: profile rows to print (0: none)")
    parser.add_argument("--agent", action="store_true",
                        help="--noop-only: create through the backend's apply, running the image's demo agent")
    parser.add_argument("--min-free-gib", type=float, default=4.0, help="--noop-only: stop creating below this")
    args = parser.parse_args()
    if args.workspaces is None:
        args.workspaces = 1000 if args.noop_only else 50
    with terminate_as_interrupt():
        return noop_main(args) if args.noop_only else converge_main(args)


if __name__ == "__main__":
    sys.exit(main())
