"""The JSON API for the people who run the daemon: `/api/v1/...`, next to the pages, with their token.

    GET  /api/v1/status    the fleet (by org, tier, revision, health), each tier's current and last
                           good revision, the holds, the worker (running, queued), what is suspended
    POST /api/v1/sync      {"ref": optional}: converge now. Without a ref, the branch head as the
                           remote lists it; with one, that commit, which must be reachable from the
                           watched branch's head (anything else is refused: 409). Planned against
                           what runs and applied only where something differs (a failed commit heals)
    POST /api/v1/suspend   {"org": optional}: no run applies anything (or nothing of that org) until
    POST /api/v1/resume    resumed; kept in the journal (a restart stays suspended). A resume
                           converges the head at once
    POST /api/v1/release   {"hold": id | value | label | subject}: clear one held version, then
                           converge the head (see `pipeline/holdrelease.py`)
    POST /api/v1/retry     run the head once more although its last run failed (or gave up on errors)
    POST /api/v1/promote   {"sha"}: with production manual (the policy's or an org's), let the head
                           whose canary passed go to production (its production status says "waiting
                           for approval"); journalled as approved by `operator` (`approval.py` for
                           approval by a review)

Answers are JSON objects: `message` says what happened in one line; an error is
`{"error": <message>, "status": <code>}` with 400 (a bad request), 404 (no such ref, hold or
endpoint), 409 (not now: suspended, nothing to retry or promote, an ambiguous hold, a ref off the
branch) or 502 (the config repository could not be reached). Requests only enqueue: a run happens on the
worker's thread as any other, journalled with trigger `operator`. The run in progress when an
operator suspends finishes (suspending never cuts a run half-way).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.daemon.journal import SUSPEND_ALL, Journal
from reconciler.daemon.loop import Request, Worker
from reconciler.daemon.runbase import OPERATOR_TRIGGER, run_url
from reconciler.daemon.suspension import APPROVAL, SUSPENDED
from reconciler.errors import SourceError
from reconciler.model.config import KEY_PATTERN
from reconciler.model.enums import TIER_ORDER, RunStatus, Trigger
from reconciler.model.observed import ObservedWorkspace, current_of
from reconciler.pipeline.compose import Parts
from reconciler.pipeline.holdrelease import hold_id, hold_json, matching, release
from reconciler.source.ancestry import reachable
from reconciler.source.mirror import GitMirror

log = logging.getLogger(__name__)
PREFIX = "/api/v1"
RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.ERROR})


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


@dataclass
class Control:
    """What the API acts on: the daemon's worker, journal, mirror and parts (wired by `service.py`)."""

    worker: Worker
    journal: Journal
    mirror: GitMirror
    branch: str
    parts: Parts
    health: Callable[[], dict[str, Any]]
    public_url: str = ""
    wall: Callable[[], float] = time.time

    # ---- GET /status -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        current, queued = self.worker.snapshot()
        head = self.worker.head
        last = self.journal.last_run(head) if head else None
        health = self.health()
        fleet, fleet_error = self._fleet()
        last_good = self.journal.last_good()
        tiers: dict[str, Any] = {}
        for tier in TIER_ORDER:
            mine = [w for w in fleet if w.tier is tier]
            revisions = Counter(w.revision or "" for w in mine if w.running)
            tiers[tier.value] = {
                "current": revisions.most_common(1)[0][0] or None if revisions else None,
                "last_good": last_good.get(tier.value),
                "workspaces": len(mine),
                "revisions": dict(revisions),
            }
        suspended = self.journal.suspended()
        return {
            "branch": self.branch,
            "head": {"sha": head, "status": last.status.value if last else None, "message": last.message if last
                     else None, "run_id": last.id if last else None,
                     "url": run_url(self.public_url, last.id) if last else None},
            "worker": {"alive": self.worker.alive, "running": _request(current), "queued": _request(queued),
                       "step": health.get("step"), "stuck": health.get("stuck"),
                       "last_success": health.get("last_success")},
            "suspended": {"everything": SUSPEND_ALL in suspended, "since": suspended.get(SUSPEND_ALL),
                          "orgs": {org: at for org, at in suspended.items() if org != SUSPEND_ALL}},
            "tiers": tiers,
            "production": {"mode": self.parts.settings.policy.production,
                           "waiting_for_approval": head if self._waiting_for_approval(head) else None},
            "fleet": {"error": fleet_error, "orgs": _by_org(fleet),
                      "workspaces": [_workspace(w) for w in sorted(fleet, key=lambda w: w.id)]},
            "holds": [hold_json(h) for h in sorted(self.parts.holds.current(self.wall()), key=lambda h: h.failed_at)],
            "last_poll_error": health.get("last_poll_error"),
        }

    def _fleet(self) -> tuple[list[ObservedWorkspace], str | None]:
        try:
            return list(current_of(self.parts.observer().list_owned()).values()), None
        except Exception as exc:  # the engine away: the rest of the status still answers
            return [], f"could not list the workspaces: {exc}"

    # ---- POST /sync ----------------------------------------------------------------------------
    def sync(self, ref: str | None) -> tuple[int, dict[str, Any]]:
        self._not_suspended("sync")
        if ref is None:
            try:
                heads = self.mirror.remote_heads()
            except SourceError as exc:
                raise ApiError(502, f"could not list the config repository's branches: {exc}") from None
            head = heads.get(f"refs/heads/{self.branch}")
            if head is None:
                raise ApiError(404, f"branch {self.branch!r} not found at the source")
            sha = head
        else:
            head, sha = self._resolve(ref)
        request = Request(sha, Trigger.POLL, resync=True, operator=True)
        if not self.worker.submit(request):
            raise ApiError(409, "the worker is stopping: nothing queued")
        if sha == head:
            message = f"converging {short(sha)}, the head of {self.branch}"
        else:
            message = (f"converging {short(sha)}, an older commit of {self.branch} (head {short(head)}); the daemon "
                       f"still follows {self.branch}: the next push or resync converges its head again")
        log.info("sync requested by an operator", extra={"revision": sha, "context": ref or self.branch})
        return 202, {"message": message, "queued": sha, "head": head, "ref": ref}

    def _resolve(self, ref: str) -> tuple[str, str]:
        """(the watched branch's head, `ref` resolved), fetched now; `ref` must be reachable from that head."""
        if not ref.strip() or len(ref) > 256 or any(c.isspace() or ord(c) < 32 for c in ref):
            raise ApiError(400, f"invalid ref {ref!r}")
        try:
            self.mirror.fetch()
        except SourceError as exc:
            raise ApiError(502, f"could not fetch the config repository: {exc}") from None
        try:
            head = self.mirror.resolve(f"refs/heads/{self.branch}")
        except SourceError:
            raise ApiError(404, f"branch {self.branch!r} not found at the source") from None
        try:
            sha = self.mirror.resolve(ref)
        except SourceError as exc:
            raise ApiError(404, str(exc)) from None
        try:
            on_branch = reachable(self.mirror, sha, head)
        except SourceError as exc:
            raise ApiError(502, str(exc)) from None
        if not on_branch:
            raise ApiError(409, f"{ref} ({short(sha)}) is not on {self.branch}: only commits reachable from its "
                                f"head {short(head)} are converged")
        return head, sha

    # ---- POST /suspend, /resume ------------------------------------------------------------------
    def suspend(self, org: str | None) -> tuple[int, dict[str, Any]]:
        _check_org(org)
        new = self.journal.suspend(org or SUSPEND_ALL)
        current, _ = self.worker.snapshot()
        what = f"org {org}" if org else "everything"
        message = (f"suspended {what}: nothing of it is applied until `reconciler resume"
                   f"{f' --org {org}' if org else ''}`" if new else f"{what} was already suspended")
        if new and current is not None:
            message += f"; the run in progress ({short(current.sha)}) finishes"
        if org and new and not any(w.id.startswith(f"{org}/") for w in self._fleet()[0]):
            message += f"; note: no workspace of org {org} runs now"
        if new:
            log.warning("suspended by an operator", extra={"context": what})
        return 200, {"message": message, "changed": new, "suspended": self.journal.suspended()}

    def resume(self, org: str | None) -> tuple[int, dict[str, Any]]:
        _check_org(org)
        gone = self.journal.resume(org)
        left = self.journal.suspended()
        if not gone:
            what = f"org {org} was" if org else "nothing was"
            return 200, {"message": f"{what} not suspended", "changed": False, "suspended": left, "queued": None}
        names = ", ".join("everything" if g == SUSPEND_ALL else f"org {g}" for g in gone)
        log.warning("resumed by an operator", extra={"context": names})
        queued = self._resync() if SUSPEND_ALL not in left else None
        message = f"resumed {names}"
        if SUSPEND_ALL in left:
            message += "; everything is still suspended (`reconciler resume` without --org resumes it)"
        elif queued:
            message += f"; converging {short(queued)}"
        return 200, {"message": message, "changed": True, "suspended": left, "queued": queued}

    # ---- POST /release -----------------------------------------------------------------------------
    def release(self, query: str) -> tuple[int, dict[str, Any]]:
        holds = self.parts.holds.current(self.wall())
        found = matching(holds, query)
        if not found:
            known = "; ".join(f"{hold_id(h)} ({h.label})" for h in holds) or "there are none"
            raise ApiError(404, f"no hold matches {query!r}; holds: {known}")
        if len(found) > 1:
            names = "; ".join(f"{hold_id(h)} ({h.label}, {h.subject})" for h in found)
            raise ApiError(409, f"{query!r} matches {len(found)} holds: {names}; give one id")
        hold = found[0]
        gone = release(self.parts.holds, {hold.key}, self.wall())
        if not gone:
            raise ApiError(409, f"hold {hold_id(hold)} went meanwhile (it expired or was released)")
        log.warning("hold released by an operator", extra={"pin": hold.label, "workspace": hold.workspace})
        message = f"released {hold_id(hold)}: {hold.label} ({hold.subject}) may be applied again"
        queued = None if SUSPEND_ALL in self.journal.suspended() else self._resync()
        head = self.worker.head
        if head and self.journal.last_status(head) is RunStatus.FAILED:
            message += f"; the head {short(head)} failed: `reconciler retry` runs it again"
        elif queued:
            message += f"; converging {short(queued)}"
        return 200, {"message": message, "released": hold_json(hold), "queued": queued}

    # ---- POST /retry -------------------------------------------------------------------------------
    def retry(self) -> tuple[int, dict[str, Any]]:
        self._not_suspended("retry")
        head = self.worker.head
        if head is None:
            raise ApiError(409, "no head yet: the daemon has not listed the branch")
        last = self.journal.last_run(head)
        if last is None or last.status not in RETRYABLE:
            said = f"its last run is {last.status.value}" if last is not None else "it has no finished run"
            raise ApiError(409, f"nothing to retry: the head {short(head)} did not fail ({said})")
        current, queued = self.worker.snapshot()
        busy = next((r for r in (current, queued) if r is not None and r.sha == head), None)
        if busy is not None or not self.worker.submit(Request(head, Trigger.RETRY, operator=True, force=True)):
            raise ApiError(409, f"a run of {short(head)} is already in progress or queued")
        held = [h for h in self.parts.holds.current(self.wall()) if h.revision == head]
        message = f"running {short(head)} again (its last run: {last.status.value})"
        if held:
            message += (f"; {len(held)} hold(s) from its failure keep that change back "
                        f"(`reconciler release` first): " + ", ".join(hold_id(h) for h in held))
        log.info("retry requested by an operator", extra={"revision": head})
        return 202, {"message": message, "queued": head, "holds": [hold_json(h) for h in held]}

    # ---- POST /promote -----------------------------------------------------------------------------
    def promote(self, sha: str) -> tuple[int, dict[str, Any]]:
        if not re.fullmatch(r"[0-9a-fA-F]{7,40}", sha):
            raise ApiError(400, f"invalid sha {sha!r}: give the commit's SHA (7 to 40 hex digits)")
        self._not_suspended("promotion")
        head = self.worker.head
        if head is None or not head.startswith(sha.lower()):
            raise ApiError(409, f"{sha} is not the head of {self.branch} ({short(head)}): only the head is promoted")
        if self.journal.approved(head):
            return 200, {"message": f"{short(head)} was already promoted", "changed": False, "queued": None}
        if not self._waiting_for_approval(head):
            if self.parts.settings.policy.production != "manual":
                raise ApiError(409, f"nothing to promote: {short(head)} does not wait for approval (production "
                                    "follows a passed canary unless the operator policy or an org's org.yaml says "
                                    "`production: manual`)")
            last = self.journal.last_run(head)
            said = f"its last run: {last.status.value}, {last.message}" if last is not None else "it has not run yet"
            raise ApiError(409, f"{short(head)} is not waiting for approval ({said}): production is promoted "
                                "after its canary passed")
        self.journal.approve(head, OPERATOR_TRIGGER)
        log.warning("promoted to production by an operator", extra={"revision": head})
        queued = self._resync()
        return 202, {"message": f"promoted {short(head)}: converging production", "changed": True, "queued": queued}

    def approval_hint(self) -> str | None:
        """A review was approved somewhere (a webhook): when the head waits for approval, resync it so the
        run asks the forge whether that review approves it; the head, or None when nothing was queued."""
        head = self.worker.head
        if head is None or not self._waiting_for_approval(head) or SUSPEND_ALL in self.journal.suspended():
            return None
        return self._resync()

    def _waiting_for_approval(self, head: str | None) -> bool:
        last = self.journal.last_run(head) if head else None
        return last is not None and APPROVAL in last.message and not self.journal.approved(last.revision or "")

    # ---- helpers -----------------------------------------------------------------------------------
    def _not_suspended(self, what: str) -> None:
        since = self.journal.suspended().get(SUSPEND_ALL)
        if since is not None:
            raise ApiError(409, f"{SUSPENDED} (everything, since {_when(since)}): no {what}; `reconciler resume` "
                                "first")

    def _resync(self) -> str | None:
        """Ask the worker to converge the head now; the head, or None when nothing was queued."""
        head = self.worker.head
        if head is None:
            return None
        accepted = self.worker.submit(Request(head, Trigger.POLL, resync=True, operator=True))
        return head if accepted else None


def _check_org(org: str | None) -> None:
    if org is not None and not re.fullmatch(KEY_PATTERN, org):
        raise ApiError(400, f"invalid org {org!r}: an org is a lowercase slug (its directory under orgs/)")


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _request(request: Request | None) -> dict[str, Any] | None:
    if request is None:
        return None
    return {"sha": request.sha, "trigger": "operator" if request.operator else request.trigger.value,
            "resync": request.resync}


def _workspace(w: ObservedWorkspace) -> dict[str, Any]:
    return {"id": w.id, "org": w.id.partition("/")[0], "tier": w.tier.value, "revision": w.revision,
            "running": w.running, "health": w.health.value, "image": w.image}


def _by_org(fleet: list[ObservedWorkspace]) -> dict[str, dict[str, Any]]:
    """org -> tier -> {workspaces, revisions: {sha: n}, health: {state: n}}."""
    out: dict[str, dict[str, Any]] = {}
    for w in fleet:
        tier = out.setdefault(w.id.partition("/")[0], {}).setdefault(
            w.tier.value, {"workspaces": 0, "revisions": Counter(), "health": Counter()})
        tier["workspaces"] += 1
        tier["revisions"][w.revision or ""] += 1
        tier["health"][w.health.value if w.running else "stopped"] += 1
    return {org: {t: {**v, "revisions": dict(v["revisions"]), "health": dict(v["health"])} for t, v in tiers.items()}
            for org, tiers in sorted(out.items())}
