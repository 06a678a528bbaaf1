"""The daemon, built once from its settings and run until SIGTERM. Wiring only: no domain logic.

Start: take the state dir lock (a second instance exits with a clear message), recover what a dead
process left half-done, start the worker, the PR reviewer, the scheduler and the HTTP server
(uvicorn on its own thread; the main thread owns the signals). SIGTERM/SIGINT: the current run
stops after its current action and records itself interrupted, the statuses kept while the forge
was down get one more try, everything stops, exit 0.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from typing import Any

import uvicorn
from pydantic import BaseModel, ConfigDict, SecretBytes

from reconciler.daemon.journal import Journal
from reconciler.daemon.lock import StateDirLock
from reconciler.daemon.loop import Request, Worker
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.posting import StatusPoster
from reconciler.daemon.reviews import Reviewer
from reconciler.daemon.runs import BranchRuns, RunDeps
from reconciler.daemon.scheduler import Poller, build_scheduler
from reconciler.daemon.web import build_app
from reconciler.forge.webhooks import Trigger as Hook
from reconciler.forge.webhooks import webhook_app
from reconciler.model.enums import Trigger
from reconciler.pipeline.compose import build_forge, build_parts
from reconciler.pipeline.settings import Settings
from reconciler.source.mirror import GitMirror

log = logging.getLogger(__name__)


class DaemonSettings(BaseModel):
    """The daemon's own choices; what it shares with `apply` lives in `settings`."""

    model_config = ConfigDict(frozen=True)

    source: str
    settings: Settings
    branch: str = "main"
    host: str = "127.0.0.1"
    port: int = 8080
    poll_interval_s: float = 60
    resync_interval_s: float = 600
    webhook_secret: SecretBytes | None = None


class Daemon:
    def __init__(self, daemon: DaemonSettings) -> None:
        s = self.settings = daemon
        opts = s.settings
        self.lock = StateDirLock(opts.state_dir)
        self.lock.acquire()  # first: a second instance must touch nothing
        self.mirror = GitMirror(s.source, opts.state_dir, auth=opts.credentials)
        self.journal = Journal(opts.state_dir / "journal.sqlite")
        self.metrics = Metrics()
        forge = build_forge(opts, timeout=5, max_attempts=2)
        self.poster = StatusPoster(forge, self.journal) if forge is not None else None
        self.parts = build_parts(opts, forge=forge)
        self.runs = BranchRuns(RunDeps(self.mirror, s.branch, self.journal, self.metrics, self.parts, self.poster,
                                       opts.public_url))
        self.worker = Worker(self.runs, self.journal.last_status)
        self.reviewer = Reviewer(self.mirror, s.branch, self.journal, self.metrics, self.poster, self.parts,
                                 opts.public_url) if self.poster is not None else None
        self.poller = Poller(self.mirror, s.branch, self.worker)
        self.scheduler = build_scheduler(
            self.poller, poll_interval_s=s.poll_interval_s, resync_interval_s=s.resync_interval_s,
            review_sweep=self.reviewer.sweep if self.reviewer else None,
            flush_statuses=self.poster.flush if self.poster else None,
        )
        secret = s.webhook_secret.get_secret_value() if s.webhook_secret else b""
        hooks = webhook_app(secret, s.branch, self.on_trigger) if secret else None
        self.app = build_app(self.journal, self.metrics, self.health, hooks)
        self._stop = threading.Event()

    def on_trigger(self, trigger: Hook) -> None:
        """A verified webhook: enqueue only (this runs in the HTTP event loop)."""
        repo = self.settings.settings.gitea_repo
        if repo and trigger.repo.lower() != repo.lower():
            log.warning("webhook for another repository ignored", extra={"context": trigger.repo})
            return
        if trigger.kind == "push":
            self.worker.submit(Request(trigger.sha, Trigger.PUSH, delivery=trigger.delivery))
        elif self.reviewer is not None and trigger.pr_number is not None and trigger.action != "closed":
            self.reviewer.request_sweep()

    def health(self) -> dict[str, Any]:
        current = self.worker.current
        last = max(filter(None, [self.worker.last_success, self.journal.last_success_at()]), default=None)
        return {"status": "ok" if self.worker.alive else "stalled", "loop_alive": self.worker.alive,
                "branch": self.settings.branch, "head": self.worker.head,
                "running": current.sha if current else None, "last_success": last,
                "last_good": self.journal.last_good(),
                "last_poll_error": self.poller.last_error}

    # ---- lifecycle ---------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit code (0 after a clean stop)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.settings.host, self.settings.port))
        except OSError as exc:
            sock.close()
            self.lock.release()
            raise OSError(f"cannot listen on {self.settings.host}:{self.settings.port}: {exc.strerror}") from None
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        http = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="http", daemon=True)
        previous = {sig: signal.signal(sig, lambda *_: self._stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.runs.recover_all()
            self.worker.start()
            if self.reviewer is not None:
                self.reviewer.start()
            self.scheduler.start()
            http.start()
            port = sock.getsockname()[1]
            log.info("daemon started", extra={"context": f"http://{self.settings.host}:{port}"})
            self._stop.wait()
            log.info("stopping: the current run finishes its current action")
        finally:
            if self.scheduler.running:
                self.scheduler.shutdown(wait=False)
            self.worker.shutdown()
            if self.reviewer is not None:
                self.reviewer.shutdown(30)
            if self.poster is not None:
                self.poster.flush()
            server.should_exit = True
            if http.is_alive():
                http.join(10)
            sock.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.journal.close()
            self.lock.release()
            log.info("daemon stopped")
        return 0
