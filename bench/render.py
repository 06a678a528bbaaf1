"""Benchmark: render an org repo of N workspaces (default 2,000) spread over includes.

Prints render time (best and median of several runs) and peak memory. Target: < 0.5 s for 2,000.
    python bench/render.py [--workspaces 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.render import render_repo  # noqa: E402

TARGET_S, TARGET_N = 0.5, 2000
REGISTRY = "127.0.0.1:5000"


def render_options() -> dict[str, Any]:
    """Where render takes the operator's policy (deny-all without one), one allowing the registry."""
    if "policy" not in inspect.signature(render_repo).parameters:
        return {}
    from reconciler.model.policy import Policy

    return {"policy": Policy(registries=[REGISTRY])}


def generate(root: Path, workspaces: int, orgs: int = 4, per_file: int = 25) -> None:
    (root / "images.yaml").write_text(f"images:\n  claude-code: {REGISTRY}/ws:latest\n")
    per_org = workspaces // orgs
    for o in range(orgs):
        org_dir = root / "orgs" / f"org{o}"
        (org_dir / "teams").mkdir(parents=True)
        (org_dir / "files").mkdir()
        (org_dir / "files" / "system-prompt.md").write_text("You are an agent.\n" * 20)
        leads = per_org // per_file
        lines = [f"name: Org {o}", "defaults:", "  runtime: claude-code", "  env: {LOG_LEVEL: info}", "workspaces:"]
        for t in range(leads):
            lines += [
                f"  - name: Lead {t}",
                "    files_dir: files",
                "    tier: canary" if t == 0 else "    tier: production",
                f"    children: !include teams/team{t}.yaml",
            ]
            team = []
            for w in range(per_file - 1):
                team += [
                    f"- name: Worker {t}-{w}",
                    f"  env: {{SLOT: '{w}', TEAM: '{t}'}}",
                    "  resources: {cpus: 0.5, memory: 256m}",
                ]
            (org_dir / "teams" / f"team{t}.yaml").write_text("\n".join(team) + "\n")
        (org_dir / "org.yaml").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspaces", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    options = render_options()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root, args.workspaces)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            state = render_repo(root, **options)
            times.append(time.perf_counter() - start)
        tracemalloc.start()
        render_repo(root, **options)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    n = len(state.workspaces)
    best, median = min(times), statistics.median(times)
    print(
        f"render: {n} workspaces  best {best:.3f}s  median {median:.3f}s  "
        f"({best / n * 1e6:.0f} us/workspace)  peak traced memory {peak / 2**20:.1f} MiB"
    )
    verdict = "meets" if best < TARGET_S else "MISSES"
    print(f"target < {TARGET_S:.3f}s for {TARGET_N}: best is {best / TARGET_S:.2f}x the target ({verdict})"
          + ("" if n == TARGET_N else f" (rendered {n}, not {TARGET_N})"))


if __name__ == "__main__":
    main()
