"""The reconciler: renders a config repo into desired workspaces and converges a Docker engine to it."""

__version__ = "0.1.0"
