"""The reconciler: renders a config repo into desired workspaces and converges Docker/EC2 to it."""

__version__ = "0.1.0"
