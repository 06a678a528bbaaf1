"""The container image's HEALTHCHECK: `python3 -m reconciler.daemon.healthcheck` asks the daemon's
`/healthz` on the address it listens on, exit 0 when it answers 2xx, 1 otherwise (what Docker expects).

The address is the daemon's own: `--listen` on its command line (PID 1 in the container: the
entrypoint is `reconciler`), else `RECONCILER_LISTEN`, else the default 127.0.0.1:8080. A wildcard
host (`0.0.0.0`, `::`, empty) is asked on loopback. Standard library only: it runs every interval, so
it starts fast and needs nothing the daemon does not.
"""

from __future__ import annotations

import itertools
import os
import sys
import urllib.request
from collections.abc import Mapping, Sequence

DEFAULT = "127.0.0.1:8080"
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def listen_address(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """HOST:PORT the daemon listens on: its `--listen X` / `--listen=X`, else RECONCILER_LISTEN."""
    for flag, value in itertools.pairwise(argv):
        if flag == "--listen":
            return value
    for arg in argv:
        if arg.startswith("--listen="):
            return arg.removeprefix("--listen=")
    return env.get("RECONCILER_LISTEN") or DEFAULT


def healthz_url(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    host = _WILDCARDS.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"


def daemon_argv(pid: int = 1) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def main() -> int:
    url = healthz_url(listen_address(daemon_argv(), os.environ))
    try:
        with urllib.request.urlopen(url, timeout=4) as answer:
            return 0 if 200 <= answer.status < 300 else 1
    except Exception as exc:  # 503 (stuck), refused, timed out: unhealthy, and say why in `docker inspect`
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
