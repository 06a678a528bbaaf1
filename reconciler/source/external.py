"""The `!external` fetcher: another repository's tree at a ref, cached by (repo, resolved SHA).

Everything that can be checked without the network is checked first, in this order: the repo
name's shape, the allowlist of host/org prefixes (matched on path-segment boundaries, so `acme/`
never admits `acme-evil/`), the ref's characters, and that an explicit URL really points at that
repo. Only then is the remote asked which commit the ref names (a listing, not a fetch). The tree
of that commit lives at `state_dir/external/<sha256(repo)[:16]>/<sha>`, written through a temp
dir + rename and trusted only with its completion marker; a complete cache entry is served without
touching the network when the ref is a full SHA, and without fetching when the ref moved nowhere.

Two kinds of failure, because they mean different things to a pass: `SourceUnreachable` when the
remote did not answer (connection refused, DNS, TLS, a timeout or deadline, a 5xx) — the
reconciler's trouble, retried, never blamed on the config; a plain `SourceError` when it answered
and the answer is no (no such repository or ref, credentials missing or refused, over a limit) or
the request was refused before any network — the config names something it cannot have, reported
at the `!external` line.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from reconciler.errors import SourceError, SourceUnreachable
from reconciler.fsutil import is_complete
from reconciler.model.config import source_allowed
from reconciler.model.credentials import Credentials
from reconciler.model.refs import FULL_SHA, is_safe_ref
from reconciler.source.mirror import GitMirror

log = logging.getLogger(__name__)

REPO_PATTERN = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9_.-]+){2,}$")
# The remote answered, and the answer is no: a 4xx, a credential problem (the mirror's credential
# callback), a size limit. Any other failure of a network call means it could not be asked.
ANSWERED = re.compile(r"status code: 4\d\d|credential|MiB; refused", re.IGNORECASE)
T = TypeVar("T")


def over_network(call: Callable[[], T]) -> T:
    """Run one network call of the mirror; a failure that is not the remote's answer is `SourceUnreachable`."""
    try:
        return call()
    except SourceUnreachable:
        raise
    except SourceError as exc:
        if ANSWERED.search(str(exc)):
            raise
        raise SourceUnreachable(str(exc)) from None


def check_repo(repo: str, allowed: list[str]) -> str:
    if not REPO_PATTERN.fullmatch(repo) or any(seg in (".", "..") for seg in repo.split("/")):
        raise SourceError(f"repo {repo!r} is not of the form host/owner/name")
    if not source_allowed(repo, allowed):
        shown = ", ".join(allowed) if allowed else "none configured"
        raise SourceError(f"repo {repo!r} is not in allowed_sources ({shown})")
    return repo


def check_ref(ref: str) -> str:
    if not is_safe_ref(ref):
        raise SourceError(f"ref {ref!r} is not allowed: use letters, digits and _ . / - only, without '..'")
    return ref


def external_url(repo: str, url: str | None) -> str:
    """`https://<repo>.git` by default; an explicit http(s) URL must name the same host and path."""
    if url is None:
        return f"https://{repo}.git"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise SourceError(f"url for {repo!r} must be http or https, got scheme {parts.scheme!r}")
    if "@" in parts.netloc:
        raise SourceError(f"url for {repo!r} must not carry credentials; configure a credential for its host instead")
    if parts.query or parts.fragment:
        raise SourceError(f"url for {repo!r} must not have a query or fragment")
    named = f"{parts.netloc.lower()}{parts.path.removesuffix('/').removesuffix('.git')}"
    host, _, path = repo.partition("/")
    if named != f"{host.lower()}/{path}":
        raise SourceError(f"url {url!r} does not point at repo {repo!r}")
    return url


class GitExternalFetcher:
    """Implements the renderer's `ExternalFetcher` protocol on top of `GitMirror`."""

    def __init__(
        self,
        state_dir: Path,
        allowed_sources: list[str],
        auth: Credentials | None = None,
        timeout_s: float = 30,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.allowed_sources = list(allowed_sources)
        self.auth = auth
        self.timeout_s = timeout_s

    def fetch(self, repo: str, ref: str, url: str | None) -> Path:
        """Root directory of `repo`'s tree at `ref` (resolved to a commit SHA)."""
        repo = check_repo(repo, self.allowed_sources)
        check_ref(ref)
        url = external_url(repo, url)
        cache_dir = self.state_dir / "external" / hashlib.sha256(repo.encode()).hexdigest()[:16]
        if FULL_SHA.fullmatch(ref.lower()) and is_complete(cache_dir / ref.lower()):
            return cache_dir / ref.lower()
        mirror = GitMirror(url, self.state_dir, auth=self.auth, timeout_s=self.timeout_s)
        sha = self._resolve(mirror, ref)
        target = cache_dir / sha
        if is_complete(target):
            return target
        if not mirror.has_commit(sha):
            over_network(mirror.fetch)
            if not mirror.has_commit(sha):  # the remote answered without it: the config's ref is wrong
                raise SourceError(f"commit {sha} is not at {mirror.display} (force-pushed away?)")
        log.info("exporting external tree", extra={"source": mirror.display, "ref": ref, "revision": sha})
        return mirror.export_tree(sha, target)

    @staticmethod
    def _resolve(mirror: GitMirror, ref: str) -> str:
        if FULL_SHA.fullmatch(ref.lower()):
            return ref.lower()
        heads = over_network(mirror.remote_heads)
        names = [ref] if ref.startswith("refs/") else [f"refs/heads/{ref}", f"refs/tags/{ref}"]
        for name in names:
            if name in heads:
                return heads[name]
        # A short SHA, or a ref that does not exist: the mirror answers (and names what is missing).
        over_network(mirror.fetch)
        return mirror.resolve(ref)
