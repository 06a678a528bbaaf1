"""Render: a config tree at one revision -> DesiredState, or every ConfigError it contains."""

from reconciler.render.repo import ExternalFetcher, render_repo

__all__ = ["ExternalFetcher", "render_repo"]
