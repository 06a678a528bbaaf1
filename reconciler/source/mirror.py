"""A local bare mirror per git repository, and immutable exports of its trees at exact commits.

Owns every pygit2 network call of the reconciler. A mirror lives at
`state_dir/mirrors/<sha256(url)[:16]>-<name>.git`: created once, then fetched incrementally with
force refspecs (force-pushes update it) and pruning (deleted branches disappear, and are remembered
so `resolve` can say "no longer exists"). An `fcntl` lock per mirror keeps two fetchers (threads or
processes) out of one mirror. Trees are exported to their own directories, written to a temporary
directory, renamed into place and trusted only once a completion marker sits beside them, so renders
of two SHAs never share a mutable checkout.

Credentials go only through credential callbacks, asked per URL (`Credentials.git_for`: its own
host, https/ssh only): never into a URL, `config`, a log line or an error (`mask` scrubs every
text that could carry one).

Every network call has a hard wall-clock limit, whatever the server does (`limits.py`): it runs on
a worker thread and the caller stops waiting at `timeout_s * LIST_LIMIT` (a ref listing) or
`timeout_s * FETCH_LIMIT` (a fetch) with "git: fetching <url> timed out after N s". libgit2's
server timeouts (process-wide, `timeout_s` per read or connect) and the deadline checked in every
callback make a call given up on end soon after; until it does, it keeps the mirror lock (nothing
else writes into the mirror) and a new call on the same mirror or URL is refused at once. Waiting
for a mirror lock is bounded by the same limit, and says so when it times out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
from base64 import b64encode
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import pygit2
from pygit2.enums import CredentialType, FetchPrune, RepositoryOpenFlag

from reconciler.errors import SourceError
from reconciler.fsutil import is_complete, materialize
from reconciler.model.credentials import Credentials, url_host
from reconciler.model.refs import FULL_SHA
from reconciler.source.limits import GitCall, bounded_lock, run_bounded
from reconciler.source.trees import TreeWriter

log = logging.getLogger(__name__)
MAX_FETCH_BYTES = 512 * 2**20  # one fetch may not fill the disk, however large the remote repository
LIST_LIMIT = 4  # a ref listing ends after timeout_s * LIST_LIMIT seconds, whatever the server does
FETCH_LIMIT = 10  # a fetch after timeout_s * FETCH_LIMIT
T = TypeVar("T")

REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
DELETED_FILE = "reconciler-deleted-branches.json"


# ---- small helpers shared by the whole source package -------------------------------------------
def mask(text: str, *secrets: str) -> str:
    """`text` with every secret (raw, URL-encoded, or inside a Basic auth header) replaced by `***`."""
    for secret in secrets:
        if secret:
            for form in (secret, quote(secret, safe=""), b64encode(f"oauth2:{secret}".encode()).decode()):
                text = text.replace(form, "***")
            text = re.sub(r"(?i)(authorization:\s*basic\s+)[A-Za-z0-9+/=]+", r"\1***", text)
    return re.sub(r"(://)[^/@\s]+@", r"\1", text)


def safe_url(url: str) -> str:
    """The URL without any user:password part."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


class _Callbacks(pygit2.RemoteCallbacks):
    """The credential for the host libgit2 is talking to (asked per URL, so a redirect to another host
    gets nothing), and the call's deadline (or its being given up on) checked at every callback."""

    def __init__(self, display: str, auth: Credentials | None, call: GitCall) -> None:
        super().__init__()
        self.display = display
        self.auth = auth
        self.call = call
        self.attempts = 0

    def credentials(self, url: str, username_from_url: str | None, allowed_types: CredentialType) -> Any:
        self.call.check()
        self.attempts += 1
        cred = self.auth.git_for(url) if self.auth is not None else None
        if cred is None and self.auth is not None and self.auth.withheld:
            raise SourceError(f"{self.display} needs credentials; {self.auth.withheld}")
        if cred is None:
            host = url_host(url)[0] or url
            raise SourceError(f"{self.display} requires authentication and no credential is configured for "
                              f"{host} (a credential is only offered to its own host, over https or ssh)")
        if self.attempts > 1:
            raise SourceError(f"{self.display} rejected the configured credential (authentication failed)")
        if cred.ssh_key is not None and allowed_types & CredentialType.SSH_KEY:
            user = username_from_url or cred.username
            return pygit2.Keypair(user, f"{cred.ssh_key}.pub", str(cred.ssh_key), "")
        if cred.password is None or not allowed_types & CredentialType.USERPASS_PLAINTEXT:
            raise SourceError(f"{self.display} asks for a credential type the configured one is not")
        return pygit2.UserPass(cred.username, cred.password.get_secret_value())

    def transfer_progress(self, stats: Any) -> None:
        self.call.check()
        if stats.received_bytes > MAX_FETCH_BYTES:
            raise SourceError(f"fetch from {self.display} exceeded {MAX_FETCH_BYTES // 2**20} MiB; refused")

    def sideband_progress(self, string: str) -> None:
        self.call.check()

    def update_tips(self, refname: str, old: Any, new: Any) -> None:
        self.call.check()


def _set_timeouts(timeout_s: float) -> None:
    # libgit2 keeps these process-wide; every network call sets them again before it starts.
    ms = max(1, int(timeout_s * 1000))
    pygit2.settings.server_connect_timeout = ms
    pygit2.settings.server_timeout = ms


def _peel_heads(heads: list[Any]) -> dict[str, str]:
    """ref name -> sha; an annotated tag maps to the commit it points at (its `^{}` entry)."""
    out: dict[str, str] = {}
    for head in heads:
        if not head.name.endswith("^{}"):
            out.setdefault(head.name, str(head.oid))
    for head in heads:
        if head.name.endswith("^{}"):
            out[head.name[:-3]] = str(head.oid)
    return out


def _location(url: str) -> str:
    """A URL stays as given (credentials stripped); anything else is a local path made absolute."""
    if "://" in url:
        return safe_url(url)
    path = Path(url).expanduser().resolve()
    try:
        _open_exact(path)
    except pygit2.GitError:
        raise SourceError(f"{path} is not a git repository (give the repository's top directory)") from None
    return str(path)


def _open_exact(path: Path) -> pygit2.Repository:
    """Open the repository at exactly `path`: never one found by searching parent directories."""
    return pygit2.Repository(str(path), RepositoryOpenFlag.NO_SEARCH)


def list_remote_heads(url: str, auth: Credentials | None = None, timeout_s: float = 30) -> dict[str, str]:
    """Remote refs (name -> sha, tags peeled, `HEAD` included) without fetching or any state on disk.

    Ends within `timeout_s * LIST_LIMIT` seconds, with a SourceError if the server has not answered.
    """
    location = _location(url)

    def work(call: GitCall) -> dict[str, str]:
        with tempfile.TemporaryDirectory(prefix="reconciler-ls-") as scratch:
            repo = pygit2.init_repository(scratch, bare=True)
            return _list(repo.remotes.create_anonymous(location), location, auth, timeout_s, call)

    return run_bounded(f"list {location}", f"listing refs of {location}", timeout_s * LIST_LIMIT, work)


def _list(remote: Any, display: str, auth: Credentials | None, timeout_s: float, call: GitCall) -> dict[str, str]:
    _set_timeouts(timeout_s)
    callbacks = _Callbacks(display, auth, call)
    heads = _git_call(lambda: remote.list_heads(callbacks=callbacks), f"listing refs of {display}", auth)
    return _peel_heads(heads)


def _git_call(call: Callable[[], T], what: str, auth: Credentials | None) -> T:
    """Run a pygit2 network call; its GitError becomes a SourceError with every credential masked.

    The SourceError is raised outside the `except` block so it carries no `__context__` holding the
    original (unmasked) libgit2 text.
    """
    try:
        return call()
    except pygit2.GitError as exc:
        text = str(exc)
    hint = " (does the repository exist, and may the credential read it?)" if "404" in text else ""
    message = f"{what} failed: {text}{hint}"
    for secret in auth.secret_values() if auth is not None else ():
        message = mask(message, secret)
    raise SourceError(message)


class GitMirror:
    """The local bare mirror of one repository (URL or local path)."""

    def __init__(self, url: str, state_dir: Path, auth: Credentials | None = None, timeout_s: float = 30) -> None:
        self.url = _location(url)
        self.display = self.url
        self.auth = auth
        self.timeout_s = timeout_s
        self.state_dir = Path(state_dir)
        key = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", self.url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git"))
        self.path = self.state_dir / "mirrors" / f"{key}-{name.strip('.-')[:40] or 'repo'}.git"
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    # ---- network -----------------------------------------------------------------------------
    def remote_heads(self) -> dict[str, str]:
        """Remote refs (name -> sha, annotated tags peeled, `HEAD` included), without fetching.

        Ends within `timeout_s * LIST_LIMIT` seconds. An existing mirror is listed without its lock,
        so a poll never waits for a fetch in progress.
        """
        what = f"listing refs of {self.display}"

        def work(call: GitCall) -> dict[str, str]:
            repo = self._existing()
            if repo is None:
                with bounded_lock(self._lock_path, call):
                    repo = self._open()
            return _list(repo.remotes["origin"], self.display, self.auth, self.timeout_s, call)

        return run_bounded(f"list {self.display}", what, self.timeout_s * LIST_LIMIT, work)

    def fetch(self, extra_refspecs: tuple[str, ...] = ()) -> None:
        """Bring the mirror up to date: force-updated branches and tags, deleted branches pruned.

        `extra_refspecs` (e.g. `+refs/pull/7/head:refs/pull/7/head`) are fetched in the same call.
        Ends within `timeout_s * FETCH_LIMIT` seconds, lock wait included.
        """
        what = f"fetching {self.display}"

        def work(call: GitCall) -> tuple[Any, dict[str, str], dict[str, str]]:
            with bounded_lock(self._lock_path, call):  # held until the fetch really ends, given up on or not
                repo = self._open()
                before = self._branches(repo)
                remote = repo.remotes["origin"]
                _set_timeouts(self.timeout_s)
                callbacks = _Callbacks(self.display, self.auth, call)
                prune = FetchPrune.PRUNE
                specs = [*REFSPECS, *extra_refspecs] if extra_refspecs else None
                stats = _git_call(lambda: remote.fetch(specs, callbacks=callbacks, prune=prune), what, self.auth)
                advertised = _git_call(lambda: remote.list_heads(connect=False), what, self.auth)
                after = self._branches(repo)
                self._point_head(repo, advertised)
                self._remember_deleted(before, after)
                return stats, before, after

        stats, before, after = run_bounded(f"fetch {self.path}", what, self.timeout_s * FETCH_LIMIT, work)
        log.info(
            "fetched source",
            extra={"source": self.display, "received_objects": stats.received_objects,
                   "branches": len(after), "deleted_branches": sorted(set(before) - set(after))},
        )

    # ---- local reads -------------------------------------------------------------------------
    def resolve(self, ref: str) -> str:
        """A branch, `refs/...` name, tag, `HEAD`, or a full/short SHA present locally -> full commit SHA."""
        if not ref or any(c.isspace() or ord(c) < 32 for c in ref):
            raise SourceError(f"invalid ref {ref!r} for {self.display}")
        repo = self._repo()
        full = ref == "HEAD" or ref.startswith("refs/")
        for name in [ref] if full else [f"refs/heads/{ref}", f"refs/tags/{ref}"]:
            try:
                found = repo.references.get(name)
                oid = found.resolve().target if found is not None else None
            except (KeyError, pygit2.GitError):
                oid = None  # a dangling symbolic ref (an unborn HEAD): treated as missing
            if oid is not None:
                return self._commit_of(repo, oid, ref)
        if re.fullmatch(r"[0-9a-fA-F]{4,40}", ref):
            try:
                return str(repo.revparse_single(ref.lower()).peel(pygit2.Commit).id)
            except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
                raise SourceError(f"commit {ref!r} not found at {self.display}") from None
        branch = ref.removeprefix("refs/heads/")
        if branch in self._deleted():
            raise SourceError(f"branch {branch!r} no longer exists at {self.display}")
        raise SourceError(f"ref {ref!r} not found at {self.display} (no such branch or tag)")

    def has_commit(self, sha: str) -> bool:
        if not (self.path / "HEAD").exists():
            return False
        try:
            return isinstance(self._repo()[sha], pygit2.Commit)
        except (KeyError, ValueError):
            return False

    def ensure_commit(self, sha: str, extra_refspecs: tuple[str, ...] = ()) -> None:
        """Fetch (with `extra_refspecs`) only when the mirror does not have commit `sha` yet."""
        if self.has_commit(sha):
            return
        self.fetch(extra_refspecs)
        if not self.has_commit(sha):
            raise SourceError(f"commit {sha} is not at {self.display} (force-pushed away?)")

    def export_tree(self, sha: str, dest: Path | None = None) -> Path:
        """Write the tree of commit `sha` to `dest` (default `state_dir/trees/<sha>`); immutable once done."""
        sha = sha.lower()
        if not FULL_SHA.fullmatch(sha):
            raise SourceError(f"export needs a full 40-hex commit SHA, got {sha!r}")
        target = dest if dest is not None else self.state_dir / "trees" / sha
        if is_complete(target):
            return target
        if not self.has_commit(sha):
            raise SourceError(f"commit {sha} is not in the mirror of {self.display}; fetch first")
        repo = self._repo()
        tree = repo[sha].peel(pygit2.Tree)
        return materialize(target, lambda tmp: TreeWriter(repo).write(tree, tmp))

    # ---- cleanup -----------------------------------------------------------------------------
    def prune_pull_refs(self, keep: Collection[int]) -> list[int]:
        """Delete `refs/pull/<N>/...` (fetched for reviews) except those of PRs in `keep`; the PRs dropped."""
        if not (self.path / "HEAD").exists():
            return []
        dropped: set[int] = set()
        with bounded_lock(self._lock_path, GitCall(f"pruning pull request refs of {self.display}", self.timeout_s)):
            repo = self._repo()
            for name in list(repo.references):
                found = re.fullmatch(r"refs/pull/(\d+)/.+", name)
                if found and int(found.group(1)) not in keep:
                    repo.references.delete(name)
                    dropped.add(int(found.group(1)))
        return sorted(dropped)

    # ---- internals ---------------------------------------------------------------------------
    def _repo(self) -> pygit2.Repository:
        try:
            return _open_exact(self.path)
        except pygit2.GitError:
            raise SourceError(f"no mirror of {self.display} yet; fetch first") from None

    def _existing(self) -> pygit2.Repository | None:
        """The mirror as it is, if it exists with the right `origin` (read without the lock), else None."""
        try:
            repo = _open_exact(self.path)
            return repo if repo.remotes["origin"].url == self.url else None
        except (pygit2.GitError, KeyError):
            return None

    def _open(self) -> pygit2.Repository:
        """Open the mirror, creating it (bare, `origin` with force refspecs) on first use. Caller locks."""
        try:
            repo = _open_exact(self.path)
            if repo.remotes["origin"].url == self.url:
                return repo
        except (pygit2.GitError, KeyError):
            pass
        shutil.rmtree(self.path, ignore_errors=True)
        repo = pygit2.init_repository(str(self.path), bare=True)
        repo.remotes.create("origin", self.url, REFSPECS[0])
        repo.remotes.add_fetch("origin", REFSPECS[1])
        log.info("created mirror", extra={"source": self.display, "mirror": str(self.path)})
        return repo

    @staticmethod
    def _branches(repo: pygit2.Repository) -> dict[str, str]:
        return {
            name.removeprefix("refs/heads/"): str(repo.references[name].target)
            for name in repo.references
            if name.startswith("refs/heads/")
        }

    @staticmethod
    def _point_head(repo: pygit2.Repository, advertised: list[Any]) -> None:
        for head in advertised:
            target = getattr(head, "symref_target", None)
            if head.name == "HEAD" and target and repo.references.get(target) is not None:
                repo.references.create("HEAD", target, force=True)

    def _deleted(self) -> dict[str, str]:
        try:
            return dict(json.loads((self.path / DELETED_FILE).read_text()))
        except (OSError, ValueError):
            return {}

    def _remember_deleted(self, before: dict[str, str], after: dict[str, str]) -> None:
        deleted = {**self._deleted(), **{b: sha for b, sha in before.items() if b not in after}}
        deleted = {b: sha for b, sha in deleted.items() if b not in after}
        (self.path / DELETED_FILE).write_text(json.dumps(deleted, sort_keys=True))

    def _commit_of(self, repo: pygit2.Repository, oid: Any, ref: str) -> str:
        try:
            return str(repo[oid].peel(pygit2.Commit).id)
        except (KeyError, ValueError, pygit2.InvalidSpecError):
            raise SourceError(f"ref {ref!r} at {self.display} does not point at a commit") from None
