"""Root of the test tree: the fixtures shared by several folders (tests/support/fixtures.py)."""

from __future__ import annotations

pytest_plugins = ["tests.support.fixtures"]
