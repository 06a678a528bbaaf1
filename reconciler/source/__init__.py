"""Upstream truth from git: mirrors of repositories, trees at exact commits, `!external` and plugin pins.

The only package that imports pygit2. Every failure surfaces as `reconciler.errors.SourceError`
with a message scrubbed of credentials.
"""

from reconciler.source.external import GitExternalFetcher
from reconciler.source.mirror import GitMirror, list_remote_heads, mask, safe_url
from reconciler.source.refs import plugin_checkout, resolve_track

__all__ = [
    "GitExternalFetcher",
    "GitMirror",
    "list_remote_heads",
    "mask",
    "plugin_checkout",
    "resolve_track",
    "safe_url",
]
