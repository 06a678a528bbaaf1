"""The daemon's container image, built for tests from the real `Dockerfile` on a machine that reaches
no image registry and whose builds reach no package index:

- the base: `scripts/base-image.sh` (debootstrap of the host's Debian release, imported; cached);
- the runtime dependencies: wheels pip downloads on the host (pinned by constraints.txt, for the base
  image's Python and platform) into a wheelhouse cached in `$RECONCILER_CACHE_DIR`, served on
  loopback during the build (`PIP_NO_INDEX`, `PIP_FIND_LINKS`: the Dockerfile's build args);
- the build: the engine's classic builder, network host (so RUN steps reach that loopback server).

`build_daemon_image` keeps one image under `TAG` (and its build stage under `BUILD_STAGE`; the
previous ones are removed when they change), so the next build reuses the cached layers: only the
package's layers are rebuilt after a code change.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

ROOT = Path(__file__).resolve().parents[2]
TAG = "reconciler-test/daemon:latest"
BUILD_STAGE = "reconciler-test/daemon:build"


def cache_dir() -> Path:
    """Where scripts/base-image.sh keeps its tarball too: $RECONCILER_CACHE_DIR, else /var/cache/reconciler
    as root, else ~/.cache/reconciler."""
    if os.environ.get("RECONCILER_CACHE_DIR"):
        return Path(os.environ["RECONCILER_CACHE_DIR"])
    if os.geteuid() == 0:
        return Path("/var/cache/reconciler")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reconciler"


def base_image() -> str:
    """The local base image's tag (made by scripts/base-image.sh when missing; fails the test with why)."""
    started = time.monotonic()
    try:
        done = subprocess.run([str(ROOT / "scripts" / "base-image.sh")], capture_output=True, text=True,
                              timeout=1200, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("scripts/base-image.sh did not finish within 20 minutes", pytrace=False)
    if done.returncode != 0 or not done.stdout.strip():
        pytest.fail(f"scripts/base-image.sh could not make the base image (exit {done.returncode}):\n{done.stderr}",
                    pytrace=False)
    if done.stderr.strip():
        print(f"{done.stderr.strip()} ({time.monotonic() - started:.0f}s)", file=sys.stderr)
    return done.stdout.strip().splitlines()[-1]


def runtime_requirements() -> list[str]:
    """pyproject.toml's runtime dependencies (what the Dockerfile's dependency layer installs)."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)
    return list(project["project"]["dependencies"])


def build_requirements() -> list[str]:
    """What building this package needs (the Dockerfile's `pip install .` fetches it in isolation)."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["build-system"]["requires"])


def _target(client: docker.DockerClient, base: str) -> dict[str, str]:
    """The base image's Python (major.minor), C library version and machine, as pip needs them."""
    probe = ("import json, os, platform, sys; "
             "print(json.dumps({'python': '%d.%d' % sys.version_info[:2], 'machine': platform.machine(), "
             "'glibc': os.confstr('CS_GNU_LIBC_VERSION').split()[1]}))")
    out = client.containers.run(base, ["python3", "-c", probe], network_mode="none", remove=True)
    return dict(json.loads(out))


def _platforms(glibc: str, machine: str) -> list[str]:
    """Every manylinux tag that C library runs (this pip does not expand a --platform by itself)."""
    major, minor = (int(x) for x in glibc.split(".")[:2])
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{name}_{machine}" for m, name in legacy.items() if minor >= m]
    return tags


def wheelhouse(client: docker.DockerClient, base: str) -> Path:
    """A directory of wheels for the base image: the runtime dependencies at constraints.txt's pins,
    and what building the package needs. Downloaded once per (base, constraints, dependencies)."""
    constraints = ROOT / "constraints.txt"
    wanted = runtime_requirements() + build_requirements()
    key = hashlib.sha256("\n".join([base, constraints.read_text(), *wanted]).encode()).hexdigest()[:12]
    root = cache_dir()
    house = root / f"wheels-{key}"
    if (house / ".complete").exists():
        return house
    root.mkdir(parents=True, exist_ok=True)
    target = _target(client, base)
    partial = root / f".wheels-{key}.{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    platforms = [arg for tag in _platforms(target["glibc"], target["machine"]) for arg in ("--platform", tag)]
    python = target["python"]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
           "--python-version", python, "--implementation", "cp", "--abi", "cp" + python.replace(".", ""),
           *platforms, "-c", str(constraints), "-d", str(partial), *wanted]
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        pytest.fail(f"pip could not download the image's wheels ({' '.join(cmd)}):\n{done.stderr[-4000:]}",
                    pytrace=False)
    (partial / ".complete").write_text(" ".join(cmd) + "\n")
    if house.exists():  # another run made it meanwhile
        shutil.rmtree(partial)
    else:
        os.replace(partial, house)
    for old in root.glob("wheels-*"):  # one wheelhouse is enough
        if old != house:
            shutil.rmtree(old, ignore_errors=True)
    print(f"daemon image: downloaded {len(list(house.glob('*.whl')))} wheels for Python {python} into {house} "
          f"({time.monotonic() - started:.0f}s)", file=sys.stderr)
    return house


@contextlib.contextmanager
def served(directory: Path) -> Iterator[str]:
    """`directory` over HTTP on loopback (its listing is the page pip's --find-links reads). The port
    follows from the directory's name, so the URL, a build arg of the dependency step and thus part of
    its cache key, stays the same from one build to the next (another one when that port is taken)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    stable = 20000 + int(hashlib.sha256(directory.name.encode()).hexdigest(), 16) % 20000
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", stable), handler)
    except OSError:  # taken: this build's dependency step misses the cache, nothing worse
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _image_id(client: docker.DockerClient, ref: str) -> str | None:
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None


def build_daemon_image(client: docker.DockerClient) -> str:
    """Build the real Dockerfile on the local base with the local wheelhouse; returns TAG.

    The build stage's last image is tagged too (BUILD_STAGE), so that the next build can remove the
    one it replaces: the final image does not descend from it, and the engine would otherwise keep
    every earlier build's package layers."""
    base = base_image()
    house = wheelhouse(client, base)
    previous = {ref: _image_id(client, ref) for ref in (TAG, BUILD_STAGE)}
    started = time.monotonic()
    log: list[str] = []
    image_id = stage_tail = last = None
    with served(house) as url:
        stream = client.api.build(
            path=str(ROOT), dockerfile="Dockerfile", tag=TAG, rm=True, forcerm=True, pull=False,
            network_mode="host", decode=True, timeout=1200,
            buildargs={"BASE": base, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": url},
        )
        for chunk in stream:
            for line in chunk.get("stream", "").splitlines():
                log.append(line)
                if step := re.match(r"\s*---> ([0-9a-f]{12})$", line):
                    last = step[1]
                elif re.match(r"Step \d+/\d+ : FROM ", line) and last:
                    stage_tail = last  # the stage before this FROM ended there
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                pytest.fail(f"building the daemon image failed: {chunk['error']}\n" + "\n".join(log)[-6000:],
                            pytrace=False)
    if image_id is None:
        pytest.fail("the daemon image build ended without an image:\n" + "\n".join(log)[-6000:], pytrace=False)
    if stage_tail:
        client.images.get(stage_tail).tag(BUILD_STAGE)
    for ref, old in previous.items():
        if old and old != _image_id(client, ref):
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(old)
    cached = sum("---> Using cache" in line for line in log)
    steps = sum(line.startswith("Step ") for line in log)
    print(f"daemon image: built {TAG} from {base} in {time.monotonic() - started:.0f}s "
          f"({cached} of {steps} steps cached)", file=sys.stderr)
    return TAG
