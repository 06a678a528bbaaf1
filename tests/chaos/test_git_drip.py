"""A stuck step: the config repo's server drips the fetch one byte at a time (its listing answers),
/healthz says 503 with the step while the fetch lasts past `--stuck-after`, the fetch ends at its
hard limit as an `error` run, and once the server behaves the retry converges."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.clock import wait_until
from tests.support.daemon import Fleet
from tests.support.git_drip import GitDripServer
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_repo import NAME, OWNER

GIT_TIMEOUT_S = 1  # per read (the drip, every 0.2 s, never trips it); a fetch ends after 10x that


def healthz(daemon: Any) -> tuple[int, dict[str, Any]]:
    try:
        answer = daemon.get("/healthz")
        return answer.status_code, dict(answer.json())
    except (httpx.HTTPError, ValueError):
        return 0, {}


def test_a_dripping_fetch_makes_healthz_say_stuck_then_ends_at_its_limit(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any
) -> None:
    fleet.write("1", canary=1, production=0)
    sha = fleet.commit("v1")
    fleet.push()
    with GitDripServer(upstream=("127.0.0.1", gitea.server.server_port), only_post=True) as relay:
        daemon = daemon_factory(hook=False, extra=("--source", relay.repo_url(OWNER, NAME),
                                                   "--git-timeout", str(GIT_TIMEOUT_S), "--stuck-after", "1"))
        seen: list[tuple[int, dict[str, Any]]] = []

        def stuck() -> bool:
            seen.append(healthz(daemon))
            return seen[-1][0] == 503 and bool(seen[-1][1].get("stuck"))

        assert wait_until(stuck, timeout=60, step=0.1), (seen[-3:], daemon.logs()[-3000:])
        code, state = seen[-1]
        assert state["status"] == "stuck" and state["loop_alive"] is True
        assert state["stuck"]["step"] == f"fetch {sha[:12]}" and state["stuck"]["for_s"] >= 1
        assert state["step"]["step"] == f"fetch {sha[:12]}" and state["step"]["within"] == [f"run {sha[:12]}"]
        assert relay.dripped >= 1

        def timed_out() -> bool:
            return any(r["status"] == "error" and "timed out after" in r["message"] for r in daemon.runs(sha))

        assert wait_until(timed_out, timeout=60), (daemon.runs(sha), daemon.logs()[-3000:])
        error = next(r["message"] for r in daemon.runs(sha) if r["status"] == "error")
        assert f"git: fetching {relay.repo_url(OWNER, NAME)} timed out after {10 * GIT_TIMEOUT_S} s" in error

        relay.stop_dripping()  # the server behaves again: the retry fetches and converges
        assert wait_until(lambda: any(r["status"] == "success" for r in daemon.runs(sha)), timeout=120), (
            daemon.runs(sha), daemon.logs()[-3000:])
        assert wait_until(lambda: healthz(daemon)[0] == 200, timeout=30)
        code, state = healthz(daemon)
        assert state["status"] == "ok" and state["stuck"] is None
