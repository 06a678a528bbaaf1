"""The config repository the forge and daemon tests keep on the Gitea emulator (the `gitea` fixture),
its API token and the secret its webhooks are signed with."""

from __future__ import annotations

TOKEN = "gitea-TOKEN-5ecret-0123456789"
OWNER, NAME = "org", "config"
HOOK_SECRET = b"hook-secret"
