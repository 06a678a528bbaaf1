"""Controlling a running daemon through its JSON API (`/api/v1`, served with the pages and their token):
`status`, `sync [--ref]`, `suspend [--org]`, `resume [--org]`, `release <hold>`, `retry`, `promote <sha>`.

`--url` (env `RECONCILER_URL`, default http://127.0.0.1:8080: the pages listener when the daemon
has `--listen-pages`), `--token-file` (the pages token; env `RECONCILER_TOKEN_FILE`, or the
daemon's own `RECONCILER_PAGES_TOKEN_FILE`). One line per answer by default, the daemon's JSON with
`--json`. Exit codes: 0 done, 1 the daemon refused (a bad request, nothing to retry, a wrong
token, ...), 2 the daemon could not be reached or could not do it (its own 5xx).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from reconciler.cli.options import read_secret_file

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT_S = 60.0
SYNC_REF_TIMEOUT_S = 330.0  # a sync to a ref fetches the config repo first (bounded at 10x --git-timeout)

Url = Annotated[str, typer.Option("--url", envvar="RECONCILER_URL",
                                  help="The daemon's pages address (where /runs is served)")]
TokenFile = Annotated[Path | None, typer.Option(
    "--token-file", envvar=["RECONCILER_TOKEN_FILE", "RECONCILER_PAGES_TOKEN_FILE"],
    help="The pages token (the daemon's --pages-token-file)")]
AsJson = Annotated[bool, typer.Option("--json", help="The daemon's answer as JSON")]
Org = Annotated[str | None, typer.Option("--org", help="Only this org (default: everything)")]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The token goes to `--url` only: a redirect is an answer (an error), never followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Api:
    def __init__(self, url: str, token_file: Path | None, timeout_s: float = TIMEOUT_S) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            fail(2, f"--url must be http://HOST:PORT or https://..., got {url!r}")
        self.base = url.rstrip("/")
        self.token = read_secret_file(token_file, "token file")
        self.timeout_s = timeout_s
        self.opener = urllib.request.build_opener(_NoRedirects)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The answer of `method /api/v1/<path>`; exits 1 when the daemon refuses, 2 when unreachable."""
        url = f"{self.base}/api/v1/{path}"
        data = json.dumps(body or {}).encode() if method == "POST" else None
        request = urllib.request.Request(url, data=data, method=method, headers={"Accept": "application/json"})
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self.opener.open(request, timeout=self.timeout_s) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            self._refused(url, exc.code, exc.read())
        except urllib.error.URLError as exc:
            fail(2, f"cannot reach the daemon at {self.base}: {_reason(exc.reason)}")
        except (TimeoutError, OSError) as exc:
            fail(2, f"cannot reach the daemon at {self.base}: {_reason(exc)}")
        except ValueError as exc:  # a URL urllib cannot use
            fail(2, f"cannot reach the daemon at {self.base}: {exc}")
        doc = _json(raw)
        if doc is None:
            fail(2, f"the daemon at {self.base} did not answer JSON (is --url the daemon's pages address?)")
        return doc

    def _refused(self, url: str, code: int, raw: bytes) -> NoReturn:
        doc = _json(raw)
        if code == 401:
            hint = "a wrong token" if self.token else "give --token-file, the pages token"
            fail(1, f"the daemon refused: authentication required ({hint})")
        if doc is None or "error" not in doc:
            if code == 404:
                fail(1, f"no API at {url} (with --listen-pages it is on the pages listener)")
            fail(2 if code >= 500 else 1, f"the daemon answered {code} to {url}")
        fail(2 if code >= 500 else 1, str(doc["error"]))


def fail(code: int, message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or type(reason).__name__


def _json(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _say(doc: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], str] | None = None) -> None:
    typer.echo(json.dumps(doc, indent=2) if as_json else (human(doc) if human else str(doc.get("message", ""))))


# ---- the commands ----------------------------------------------------------------------------------
def status_cmd(url: Url = DEFAULT_URL, token_file: TokenFile = None, as_json: AsJson = False) -> None:
    """What the daemon runs and is doing: the fleet by org and tier, each tier's current and last good
    revision, the holds, the run in progress and the one queued, what is suspended."""
    _say(Api(url, token_file).call("GET", "status"), as_json, render_status)


def sync_cmd(
    ref: Annotated[str | None, typer.Option("--ref", help="A commit (or tag) reachable from the watched "
                                                          "branch's head (default: the head)")] = None,
    url: Url = DEFAULT_URL, token_file: TokenFile = None, as_json: AsJson = False,
) -> None:
    """Converge now: the watched branch's head, or a commit of that branch given with --ref."""
    api = Api(url, token_file, SYNC_REF_TIMEOUT_S if ref else TIMEOUT_S)
    _say(api.call("POST", "sync", {"ref": ref} if ref else {}), as_json)


def suspend_cmd(org: Org = None, url: Url = DEFAULT_URL, token_file: TokenFile = None,
                as_json: AsJson = False) -> None:
    """Apply nothing (or nothing of --org) until `resume`; the run in progress finishes. Kept across restarts."""
    _say(Api(url, token_file).call("POST", "suspend", {"org": org} if org else {}), as_json)


def resume_cmd(org: Org = None, url: Url = DEFAULT_URL, token_file: TokenFile = None,
               as_json: AsJson = False) -> None:
    """Resume everything (or --org only) and converge the head now."""
    _say(Api(url, token_file).call("POST", "resume", {"org": org} if org else {}), as_json)


def release_cmd(
    hold: Annotated[str, typer.Argument(help="The hold's id (see `reconciler status`), its value (a digest, a "
                                             "commit, a spec hash, or a prefix of 7+ characters) or its subject")],
    url: Url = DEFAULT_URL, token_file: TokenFile = None, as_json: AsJson = False,
) -> None:
    """Clear a held version: it may be applied again (and the head is converged now)."""
    _say(Api(url, token_file).call("POST", "release", {"hold": hold}), as_json)


def retry_cmd(url: Url = DEFAULT_URL, token_file: TokenFile = None, as_json: AsJson = False) -> None:
    """Run the head once more although its last run failed (holds from that failure still apply)."""
    _say(Api(url, token_file).call("POST", "retry"), as_json)


def promote_cmd(
    sha: Annotated[str, typer.Argument(help="The head's SHA (7 to 40 hex digits), as its production status names it")],
    url: Url = DEFAULT_URL, token_file: TokenFile = None, as_json: AsJson = False,
) -> None:
    """With the policy's `production: manual`: let the head, whose canary passed, go to production."""
    _say(Api(url, token_file).call("POST", "promote", {"sha": sha}), as_json)


COMMANDS: dict[str, Callable[..., None]] = {
    "status": status_cmd, "sync": sync_cmd, "suspend": suspend_cmd, "resume": resume_cmd,
    "release": release_cmd, "retry": retry_cmd, "promote": promote_cmd,
}


def register(app: typer.Typer) -> None:
    for name, command in COMMANDS.items():
        app.command(name)(command)


# ---- `status` for a person ---------------------------------------------------------------------------
def _short(sha: object) -> str:
    return str(sha)[:12] if sha else "-"


def _ago(at: object) -> str:
    if not isinstance(at, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at))


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{_short(key) if len(key) == 40 else key or '?'} ×{n}" for key, n in counts.items()) or "-"


def _request(request: dict[str, Any] | None) -> str:
    return f"{_short(request.get('sha'))} ({request.get('trigger')})" if request else "nothing"


def render_status(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    head = doc.get("head") or {}
    said = f": {head.get('status')}" + (f" (run #{head.get('run_id')})" if head.get("run_id") else "")
    lines.append(f"branch {doc.get('branch')}: head {_short(head.get('sha'))}"
                 + (said if head.get("status") else ": no finished run"))
    if head.get("message"):
        lines.append(f"  {head['message']}")
    suspended = doc.get("suspended") or {}
    if suspended.get("everything"):
        lines.append(f"SUSPENDED by an operator since {_ago(suspended.get('since'))}: nothing is applied")
    for org, since in (suspended.get("orgs") or {}).items():
        lines.append(f"org {org} SUSPENDED by an operator since {_ago(since)}")
    worker = doc.get("worker") or {}
    state = "alive" if worker.get("alive") else "NOT RUNNING"
    lines.append(f"worker: {state}; running {_request(worker.get('running'))}; queued {_request(worker.get('queued'))}")
    if worker.get("stuck"):
        stuck = worker["stuck"]
        lines.append(f"  STUCK in {stuck.get('step')} for {stuck.get('for_s')}s")
    production = doc.get("production") or {}
    if production.get("mode") == "manual":
        waiting = production.get("waiting_for_approval")
        lines.append("production: manual; " + (f"{_short(waiting)} waits for approval (reconciler promote "
                                                f"{_short(waiting)})" if waiting else "nothing waits for approval"))
    for tier, t in (doc.get("tiers") or {}).items():
        lines.append(f"{tier + ':':<12} current {_short(t.get('current'))}, last good {_short(t.get('last_good'))}; "
                     f"{t.get('workspaces', 0)} workspace(s)")
    fleet = doc.get("fleet") or {}
    if fleet.get("error"):
        lines.append(f"fleet: {fleet['error']}")
    orgs = fleet.get("orgs") or {}
    if orgs:
        lines.append("fleet:")
        for org, tiers in orgs.items():
            for tier, row in tiers.items():
                lines.append(f"  {org:<16} {tier:<11} {row.get('workspaces', 0):>3}  at "
                             f"{_counts(row.get('revisions', {}))}  health {_counts(row.get('health', {}))}")
    elif not fleet.get("error"):
        lines.append("fleet: no workspace")
    holds = doc.get("holds") or []
    lines.append(f"holds: {len(holds) or 'none'}")
    for hold in holds:
        lines.append(f"  {hold.get('id')}  {hold.get('kind'):<6} {hold.get('reason')}")
    if doc.get("last_poll_error"):
        lines.append(f"last poll error: {doc['last_poll_error']}")
    return "\n".join(lines)
