"""The daemon, built once from its settings and run until SIGTERM. Wiring only: no domain logic.

Start: take the state dir lock, then the instance's lease in the engine (a second reconciler on
the state dir, or with the same instance id on the engine, exits with a message naming the holder),
prune the journal, recover what a dead process left half-done, start the worker, the push hints, the PR reviewer, the
scheduler and the HTTP servers (uvicorn on their own threads, each with a connection limit; the
pages and the JSON API (`api.py`, `Control`) on a listener of their own with `--listen-pages`; the
main thread owns the signals).
SIGTERM/SIGINT: the current run stops after its current action and records itself interrupted,
the statuses kept while the forge was down get one more try, everything stops, exit 0.

Webhooks are hints (`on_trigger`): one for another repository is ignored (`webhook_app`), a push
makes the poller list the branch head at the remote, a pull request makes the reviewer list the
open PRs through the API; no SHA from a payload is ever applied or reviewed.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from typing import Any

import uvicorn
from pydantic import BaseModel, ConfigDict, Field, SecretBytes, SecretStr
from starlette.types import ASGIApp

from reconciler.backends.base import Lease
from reconciler.daemon.api import Control
from reconciler.daemon.apiapp import api_app
from reconciler.daemon.approval import ReviewApproval
from reconciler.daemon.cleanup import KEEP_REVIEWS, Needed, StateCleaner, needed
from reconciler.daemon.healing import UnhealthyClock
from reconciler.daemon.journal import Journal, JournalDeliveries
from reconciler.daemon.loop import Worker
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.posting import StatusPoster
from reconciler.daemon.reviews import Reviewer
from reconciler.daemon.runbase import RunDeps
from reconciler.daemon.runs import BranchRuns
from reconciler.daemon.scheduler import Poller, build_scheduler
from reconciler.daemon.steps import Steps, TrackedExecutor
from reconciler.daemon.web import build_apps
from reconciler.errors import AnotherWriter, ReconcilerError
from reconciler.forge.base import PullReviews
from reconciler.forge.webhooks import Trigger as Hook
from reconciler.forge.webhooks import repo_full_name, webhook_app
from reconciler.model.config import ReconcilerFile
from reconciler.pipeline.compose import build_forge, build_parts
from reconciler.pipeline.settings import Settings
from reconciler.pipeline.writer import StateLock, claim
from reconciler.source.mirror import GitMirror

log = logging.getLogger(__name__)
DAY_S = 86400.0
HTTP_MAX_CONNECTIONS = 64  # per listener; uvicorn answers 503 beyond it
DELIVERIES_KEEP_S = 30 * DAY_S
DELIVERIES_KEEP = 10_000
LEASE_RETRY_S = 5.0  # while the engine is away at start


class DaemonSettings(BaseModel):
    """The daemon's own choices; what it shares with `apply` lives in `settings`."""

    model_config = ConfigDict(frozen=True)

    source: str
    settings: Settings
    branch: str = "main"
    host: str = "127.0.0.1"
    port: int = 8080
    pages: tuple[str, int] | None = None  # a listener of their own for /runs, /runs/<id>, /metrics
    pages_token: SecretStr | None = None  # required by the pages (Bearer, or Basic auth's password)
    poll_interval_s: float = 60
    resync_interval_s: float = 600
    stuck_after_s: float = Field(default=900, ge=0)  # /healthz: 503 once one step lasts longer (0: never)
    git_timeout_s: float = Field(default=30, gt=0)  # the config repo's git calls (hard limits: 4x list, 10x fetch)
    heal_unhealthy_after_s: float = Field(default=300, ge=0)  # 0: an unhealthy workspace is never recreated
    webhook_secret: SecretBytes | None = None
    keep_runs_days: float = Field(default=30, ge=0)
    keep_runs: int = Field(default=5000, ge=1)
    keep_cache_days: float = Field(default=7, ge=0)


class Daemon:
    def __init__(self, daemon: DaemonSettings) -> None:
        s = self.settings = daemon
        opts = s.settings
        self.lock = StateLock(opts.state_dir, "reconciler run")
        self.lease: Lease | None = None
        self.lock.acquire()  # first: a second instance must touch nothing
        self.mirror = GitMirror(s.source, opts.state_dir, auth=opts.credentials, timeout_s=s.git_timeout_s)
        self.journal = Journal(opts.state_dir / "journal.sqlite")
        self.metrics = Metrics()
        forge = build_forge(opts, timeout=5, max_attempts=2)
        self.poster = StatusPoster(forge, self.journal) if forge is not None else None
        self.parts = build_parts(opts, forge=forge)
        self.unhealthy = UnhealthyClock(s.heal_unhealthy_after_s)
        self.steps = Steps()
        approval = ReviewApproval(forge, self.mirror, self.journal, s.branch) if isinstance(forge, PullReviews) \
            else None
        self.runs = BranchRuns(RunDeps(self.mirror, s.branch, self.journal, self.metrics, self.parts, self.poster,
                                       opts.public_url, unhealthy=self.unhealthy, steps=self.steps,
                                       approval=approval))
        self.worker = Worker(TrackedExecutor(self.runs, self.steps), self.journal.last_status)
        self.reviewer = Reviewer(self.mirror, s.branch, self.journal, self.metrics, self.poster, self.parts,
                                 opts.public_url) if self.poster is not None else None
        self.poller = Poller(self.mirror, s.branch, self.worker)
        self.cleaner = StateCleaner(opts.state_dir, self.mirror, self.needed, self.busy,
                                    cache_s=s.keep_cache_days * DAY_S)
        self.scheduler = build_scheduler(
            self.poller, poll_interval_s=s.poll_interval_s, resync_interval_s=s.resync_interval_s,
            review_sweep=self.reviewer.sweep if self.reviewer else None,
            flush_statuses=self.poster.flush if self.poster else None,
            housekeeping=self.housekeeping,
        )
        secret = s.webhook_secret.get_secret_value() if s.webhook_secret else b""
        self.repo = opts.gitea_repo or repo_full_name(s.source)
        hooks = webhook_app(secret, s.branch, self.on_trigger, repo=self.repo,
                            seen=JournalDeliveries(self.journal)) if secret else None
        token = s.pages_token.get_secret_value() if s.pages_token else None
        self.control = Control(self.worker, self.journal, self.mirror, s.branch, self.parts, self.health,
                               public_url=opts.public_url)
        self.app, self.pages_app = build_apps(self.journal, self.metrics, self.health, hooks,
                                              split=s.pages is not None, token=token, api=api_app(self.control))
        self._stop = threading.Event()

    def on_trigger(self, trigger: Hook) -> None:
        """A verified webhook about the watched repository: a hint to look at the remote (this runs in
        the HTTP event loop, so it only wakes the thread that looks)."""
        if trigger.kind == "push":
            self.poller.hint()
        elif trigger.kind == "review_approved":
            queued = self.control.approval_hint()
            log.info("approving review: a hint", extra={"context": f"#{trigger.pr_number}",
                                                         "revision": queued or None})
        elif self.reviewer is not None and trigger.action != "closed":
            self.reviewer.request_sweep()

    # ---- housekeeping ------------------------------------------------------------------------
    def needed(self) -> Needed:
        reviewing = self.reviewer.in_progress() if self.reviewer is not None else {}
        return needed(self.worker.wanted(), self.journal.last_good(), self.journal.recent_reviews(KEEP_REVIEWS),
                      reviewing)

    def busy(self) -> bool:
        return not self.worker.idle or bool(self.reviewer is not None and self.reviewer.in_progress())

    def prune_journal(self) -> None:
        s = self.settings
        try:
            runs = self.journal.prune_runs(s.keep_runs_days * DAY_S, s.keep_runs)
            self.journal.prune_deliveries(DELIVERIES_KEEP_S, DELIVERIES_KEEP)
        except Exception as exc:  # history only: never worth stopping for
            log.warning("could not prune the journal", extra={"error": str(exc)})
            return
        if runs:
            log.info("journal pruned", extra={"outcome": f"{runs} run(s)"})

    def housekeeping(self) -> None:
        self.prune_journal()
        try:
            self.cleaner.run()
        except Exception:
            log.exception("state dir cleanup crashed")

    def health(self) -> dict[str, Any]:
        current = self.worker.current
        last = max(filter(None, [self.worker.last_success, self.journal.last_success_at()]), default=None)
        step, stuck = self.steps.current(), self.steps.stuck(self.settings.stuck_after_s)
        status = "stalled" if not self.worker.alive else "stuck" if stuck is not None else "ok"
        return {"status": status, "loop_alive": self.worker.alive,
                "step": step.as_json() if step is not None else None,
                "stuck": {"step": stuck.step, "for_s": round(stuck.for_s), "after_s": self.settings.stuck_after_s}
                if stuck is not None else None,
                "branch": self.settings.branch, "head": self.worker.head,
                "running": current.sha if current else None, "last_success": last,
                "last_good": self.journal.last_good(),
                "last_poll_error": self.poller.last_error}

    # ---- lifecycle ---------------------------------------------------------------------------
    def _claim(self) -> Lease:
        """The instance's lease; while the engine cannot be reached, wait for it (a daemon started
        with dockerd must not crash-loop); another holder is final (AnotherWriter)."""
        backend = self.parts.backend(ReconcilerFile())
        while True:
            try:
                return claim(backend, self.settings.settings.state_dir, "reconciler run")
            except AnotherWriter:
                raise
            except ReconcilerError as exc:
                log.warning("waiting for the engine to take the instance lease", extra={"error": str(exc)})
                if self._stop.wait(LEASE_RETRY_S):
                    raise
    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit code (0 after a clean stop)."""
        s = self.settings
        try:  # one writer per instance: a second reconciler on this engine with this instance id stops here
            self.lease = self._claim()
        except BaseException:
            self.lock.release()
            raise
        listeners = [(s.host, s.port, self.app)]
        if self.pages_app is not None and s.pages is not None:
            listeners.append((*s.pages, self.pages_app))
        sockets: list[socket.socket] = []
        try:
            for host, port, _ in listeners:
                sockets.append(bind(host, port))
        except OSError:
            for sock in sockets:
                sock.close()
            self.lease.release()
            self.lock.release()
            raise
        servers = [http_server(app) for _, _, app in listeners]
        threads = [threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"http-{i}", daemon=True)
                   for i, (server, sock) in enumerate(zip(servers, sockets, strict=True))]
        previous = {sig: signal.signal(sig, lambda *_: self._stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.prune_journal()
            self.runs.recover_all()
            self.worker.start()
            self.poller.start()
            if self.reviewer is not None:
                self.reviewer.start()
            self.scheduler.start()
            for thread in threads:
                thread.start()
            urls = [f"http://{sock.getsockname()[0]}:{sock.getsockname()[1]}" for sock in sockets]
            log.info("daemon started", extra={"context": " ".join(urls)})
            self._stop.wait()
            log.info("stopping: the current run finishes its current action")
        finally:
            if self.scheduler.running:
                self.scheduler.shutdown(wait=False)
            self.poller.shutdown()
            self.worker.shutdown()
            if self.reviewer is not None:
                self.reviewer.shutdown(30)
            if self.poster is not None:
                self.poster.flush()
            for server in servers:
                server.should_exit = True
            for thread in threads:
                if thread.is_alive():
                    thread.join(10)
            for sock in sockets:
                sock.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.journal.close()
            if self.lease is not None:
                self.lease.release()
            self.lock.release()
            log.info("daemon stopped")
        return 0


def bind(host: str, port: int) -> socket.socket:
    """A listening socket of our own (so port 0 works and a busy port fails before anything starts)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def http_server(app: ASGIApp) -> uvicorn.Server:
    """uvicorn for one listener: bounded connections (503 beyond), short keep-alive, no access log."""
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                            limit_concurrency=HTTP_MAX_CONNECTIONS, timeout_keep_alive=5)
    return uvicorn.Server(config)
