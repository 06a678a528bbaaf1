"""The forge: Gitea (and Forgejo) REST calls out, verified webhooks in.

The only package that imports httpx (apart from the registry client). Every failure surfaces as
`reconciler.errors.ForgeError`, naming the call and the HTTP status and never the token.
"""

from reconciler.forge.base import (
    CombinedStatus,
    CommitStatus,
    Forge,
    PullRequest,
    StatusState,
    StatusUpdate,
)
from reconciler.forge.gitea import GiteaClient
from reconciler.forge.webhooks import Trigger, WebhookPayloadError, parse_event, verify_signature, webhook_app

__all__ = [
    "CombinedStatus",
    "CommitStatus",
    "Forge",
    "GiteaClient",
    "PullRequest",
    "StatusState",
    "StatusUpdate",
    "Trigger",
    "WebhookPayloadError",
    "parse_event",
    "verify_signature",
    "webhook_app",
]
