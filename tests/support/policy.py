"""The operator policy tests run under: the shared registry, plus the git sources a test names.

Tests never read the machine's default policy (~/.config/reconciler/policy.yaml): the root
conftest points XDG_CONFIG_HOME at an empty directory for the whole session.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from reconciler.model.policy import Policy

TEST_REGISTRY = "127.0.0.1:5000"
NETWORKS = ["none", "host"]


def policy_for(*sources: str, registries: tuple[str, ...] = (TEST_REGISTRY,)) -> Policy:
    return Policy(sources=list(sources), registries=list(registries), docker={"networks": NETWORKS},
                  origin="the test policy")


def policy_file(directory: Path, *sources: str, registries: tuple[str, ...] = (TEST_REGISTRY,)) -> Path:
    """The same policy as a `--policy` file in `directory`."""
    path = directory / "policy.yaml"
    directory.mkdir(parents=True, exist_ok=True)
    doc = {"sources": list(sources), "registries": list(registries), "docker": {"networks": NETWORKS}}
    path.write_text(yaml.safe_dump(doc))
    return path
