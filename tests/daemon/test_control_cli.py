"""`reconciler status|sync|suspend|resume|release|retry`: the real CLI process against a REAL daemon
whose pages (and API) are on a listener of their own behind a token.

Exit codes: 0 done, 1 refused (no token, nothing to retry, no such hold), 2 unreachable (one line).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.clock import wait_until
from tests.support.daemon import ROOT, Fleet, push
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_hooks import ZERO
from tests.support.net import dead_port

TOKEN = "cli-token-3"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, timeout=120,
                          env={**clean, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=ROOT)


def test_the_cli_controls_a_daemon_through_its_api(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, tmp_path: Path
) -> None:
    token = tmp_path / "pages-token"
    token.write_text(TOKEN)
    pages = f"http://127.0.0.1:{dead_port()}"
    daemon = daemon_factory(extra=("--listen-pages", pages.removeprefix("http://"), "--pages-token-file", str(token)))
    fleet.write("1")
    sha = fleet.commit("v1")
    push(gitea, fleet, ZERO, sha)
    assert wait_until(lambda: [r["status"] for r in daemon.runs(sha)] == ["success"], timeout=90), daemon.logs()
    auth = ("--url", pages, "--token-file", str(token))

    shown = cli("status", *auth)
    assert shown.returncode == 0, shown.stderr
    assert f"branch main: head {sha[:12]}: success" in shown.stdout
    assert "acme" in shown.stdout and "holds: none" in shown.stdout and "worker: alive" in shown.stdout
    doc = json.loads(cli("status", "--json", *auth).stdout)
    assert doc["tiers"]["production"]["last_good"] == sha and doc["head"]["sha"] == sha
    by_env = cli("status", "--json", env={"RECONCILER_URL": pages, "RECONCILER_PAGES_TOKEN_FILE": str(token)})
    assert by_env.returncode == 0 and json.loads(by_env.stdout)["branch"] == "main"

    denied = cli("status", "--url", pages)
    assert denied.returncode == 1 and denied.stderr.strip() == (
        "error: the daemon refused: authentication required (give --token-file, the pages token)")
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    assert cli("status", "--url", pages, "--token-file", str(wrong)).returncode == 1
    main_listener = cli("status", "--url", daemon.url, "--token-file", str(token))
    assert main_listener.returncode == 1 and "pages listener" in main_listener.stderr
    unreachable = cli("status", "--url", f"http://127.0.0.1:{dead_port()}")
    assert unreachable.returncode == 2 and len(unreachable.stderr.strip().splitlines()) == 1
    assert "cannot reach the daemon" in unreachable.stderr and unreachable.stdout == ""

    suspended = cli("suspend", "--org", "acme", *auth)
    assert suspended.returncode == 0 and "suspended org acme" in suspended.stdout, suspended.stderr
    assert json.loads(cli("status", "--json", *auth).stdout)["suspended"]["orgs"].keys() == {"acme"}
    assert "org acme SUSPENDED" in cli("status", *auth).stdout
    resumed = cli("resume", "--org", "acme", "--json", *auth)
    assert resumed.returncode == 0 and json.loads(resumed.stdout)["changed"] is True

    synced = cli("sync", *auth)
    assert synced.returncode == 0 and f"converging {sha[:12]}" in synced.stdout, synced.stderr
    off = cli("sync", "--ref", "no-such-ref", *auth)
    assert off.returncode == 1 and "not found" in off.stderr
    nothing = cli("retry", *auth)
    assert nothing.returncode == 1 and "nothing to retry" in nothing.stderr
    no_hold = cli("release", "abc1234", *auth)
    assert no_hold.returncode == 1 and "no hold matches 'abc1234'" in no_hold.stderr
    assert wait_until(lambda: daemon.health().get("running") is None, timeout=60)
