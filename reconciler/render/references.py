"""Resolve `!include` and `!external`: where a workspace list reaches into another file or repository.

Kept apart from the org walk (`orgs.py`) because this is the only part of rendering that leaves the
tree: it confines paths, follows includes, and asks the operator policy before any network access.
A problem is a `ConfigError` (or a `PolicyRefusal`) for the caller to collect; an `!external` remote
that does not answer raises `SourceUnreachable` (the reconciler's trouble, not the change's).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from reconciler.errors import ConfigError, PolicyRefusal, SourceError, SourceUnreachable
from reconciler.model.config import source_allowed
from reconciler.model.policy import Policy
from reconciler.model.refs import REF_PATTERN, is_safe_ref
from reconciler.render.loader import ExternalRef, IncludeRef, TreeContext, confine, load_yaml

MAX_INCLUDE_DEPTH = 16
MAX_EXTERNAL_DEPTH = 4


class ExternalFetcher(Protocol):
    """Fetch `repo` (host/owner/name) at `ref`; return the root directory of that tree."""

    def fetch(self, repo: str, ref: str, url: str | None) -> Path: ...


def load_include(ref: IncludeRef, depth: int) -> Any:
    """The data of the file an `!include` names; raises ConfigError (too deep, a cycle, no such file)."""
    if depth >= MAX_INCLUDE_DEPTH or len(ref.chain) > MAX_INCLUDE_DEPTH:
        raise ConfigError(f"!include nested deeper than {MAX_INCLUDE_DEPTH} levels", ref.loc)
    target = confine(ref.ctx.root, ref.file.parent, ref.path, "!include", ref.loc)
    display = ref.ctx.display(target)
    if display in ref.chain:
        chain = " -> ".join((*ref.chain[ref.chain.index(display) :], display))
        raise ConfigError(f"!include cycle: {chain}", ref.loc)
    if not target.is_file():
        raise ConfigError(f"!include {ref.path!r}: no such file ({display})", ref.loc)
    return load_yaml(target, ref.ctx, ref.chain, ref.loc)


def load_external(
    ref: ExternalRef, policy: Policy, repo_allowed: list[str], fetcher: ExternalFetcher | None
) -> Any:
    """The data of the file an `!external` names, fetched through `fetcher` once the policy allows it.
    Raises ConfigError / PolicyRefusal for the change's problems, SourceUnreachable for the remote's."""
    check_external(ref, policy, repo_allowed)
    if ref.ctx.external_depth >= MAX_EXTERNAL_DEPTH:
        raise ConfigError(f"!external nested deeper than {MAX_EXTERNAL_DEPTH} levels", ref.loc)
    if fetcher is None:
        raise ConfigError("!external needs a fetcher (run against a git source or pass --state-dir)", ref.loc)
    try:
        fetched = Path(os.path.realpath(fetcher.fetch(ref.repo, ref.ref, ref.url)))
    except SourceUnreachable as exc:  # not the change's fault: the whole pass is an `error`
        raise SourceUnreachable(f"!external {ref.repo}@{ref.ref} ({ref.loc}): {exc}") from None
    except SourceError as exc:  # the remote answered: no such ref, no access, ...
        raise ConfigError(f"!external {ref.repo}@{ref.ref}: {exc}", ref.loc) from None
    inner = TreeContext(fetched, fetched, f"{ref.repo}@{ref.ref}:", ref.ctx.external_depth + 1)
    target = confine(fetched, fetched, ref.path, "!external path", ref.loc)
    if not target.is_file():
        raise ConfigError(f"!external path {ref.path!r} is not a file in {ref.repo}@{ref.ref}", ref.loc)
    inner = TreeContext(fetched, target.parent, inner.label, inner.external_depth)
    return load_yaml(target, inner, (), ref.loc)


def check_external(ref: ExternalRef, policy: Policy, repo_allowed: list[str]) -> None:
    """Allowlist, ref pattern and url checks, before any network access."""
    if not is_safe_ref(ref.ref):
        raise ConfigError(f"!external ref {ref.ref!r} must match {REF_PATTERN.pattern} and contain no '..'", ref.loc)
    why = source_refusal(ref.repo, policy, repo_allowed)
    if why:
        raise PolicyRefusal(f"!external repo {ref.repo!r} {why}", ref.loc)
    if ref.url is not None:
        parsed = urlparse(ref.url)
        if parsed.scheme not in ("http", "https") or parsed.username or parsed.password:
            raise ConfigError("!external url must be http(s) without credentials in it", ref.loc)
        if f"{parsed.netloc}{parsed.path}".removesuffix(".git").rstrip("/") != ref.repo.rstrip("/"):
            raise ConfigError(f"!external url {ref.url!r} does not point at repo {ref.repo!r}", ref.loc)


def source_refusal(repo: str, policy: Policy, repo_allowed: list[str]) -> str | None:
    """Why a git source may not be reached (None: it may): the operator policy first, then the
    narrower list the repo's reconciler.yaml may give."""
    if not policy.source_allowed(repo):
        shown = ", ".join(policy.sources) or "none"
        return (f"is not allowed by {policy.origin} (allowed sources: {shown}); only the operator can "
                "allow a source: add its host/owner/ prefix to `sources` in the policy file")
    if repo_allowed and not source_allowed(repo, policy.sources_for(repo_allowed)):
        return "is not in allowed_sources of reconciler.yaml, which narrows the operator policy; add it there"
    return None
