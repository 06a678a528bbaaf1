"""The demo forge: serves the example repo's plugin repositories over real smart-HTTP git.

`examples/org-repo/plugins.yaml` points at http://127.0.0.1:3000/agents/<plugin>.git. This creates
those repositories with fixed authors and dates, so every machine gets the same commit SHAs (the
example pins `memory` by SHA), and serves them until stopped.

    python3 scripts/demo_forge.py [--root DIR] [--port 3000] [--seed-only]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.git_http import GitHttpApp, ServedApp, init_bare_repo  # noqa: E402

FIXED = {
    "GIT_AUTHOR_NAME": "Demo",
    "GIT_AUTHOR_EMAIL": "demo@example.invalid",
    "GIT_COMMITTER_NAME": "Demo",
    "GIT_COMMITTER_EMAIL": "demo@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+0000",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+0000",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}
# plugin -> list of (files, tag or None, annotated?)
PLUGINS: dict[str, list[tuple[dict[str, str], str | None, bool]]] = {
    "github-tools": [
        (
            {"SKILL.md": "# GitHub tools\nOpen issues and pull requests.\n", "tool.json": '{"version": "1.0.0"}\n'},
            "v1.0.0",
            False,
        ),
        ({"tool.json": '{"version": "1.2.0"}\n'}, "v1.2.0", True),
    ],
    "web-search": [
        (
            {"SKILL.md": "# Web search\nSearch the web and cite.\n", "search.sh": "#!/bin/sh\necho search\n"},
            "v1.0.0",
            False,
        ),
        ({"search.sh": "#!/bin/sh\necho search v2\n"}, None, False),
    ],
    "memory": [({"SKILL.md": "# Memory\nRemember facts between sessions.\n"}, None, False)],
    "notes": [({"SKILL.md": "# Notes\nKeep notes in /configs/notes.\n"}, None, False)],
}


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **FIXED}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def seed(root: Path) -> dict[str, str]:
    """Create (or recreate identically) each plugin repo; returns plugin -> head SHA."""
    heads = {}
    for name, commits in PLUGINS.items():
        bare = root / "agents" / f"{name}.git"
        if not bare.exists():
            init_bare_repo(root, "agents", name)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            git("init", "-q", "-b", "main", cwd=work)
            for files, tag, annotated in commits:
                for rel, text in files.items():
                    (work / rel).write_text(text)
                git("add", "-A", cwd=work)
                git("commit", "-q", "-m", f"{name}: {tag or 'update'}", cwd=work)
                if tag:
                    git("tag", *(["-a", "-m", tag] if annotated else []), tag, cwd=work)
            git("push", "-q", "--force", "--tags", str(bare), "main", cwd=work)
            heads[name] = git("rev-parse", "HEAD", cwd=work)
    return heads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--root", type=Path, default=Path(os.environ.get("RECONCILER_DEMO_FORGE", "/tmp/reconciler-demo-forge"))
    )
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--seed-only", action="store_true")
    args = parser.parse_args()
    heads = seed(args.root)
    for name, sha in heads.items():
        print(f"demo-forge: agents/{name} at {sha}", file=sys.stderr)
    if args.seed_only:
        return 0
    with ServedApp(GitHttpApp(args.root), port=args.port) as served:
        print(f"demo-forge: serving {args.root} at {served.url}", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    raise SystemExit(main())
