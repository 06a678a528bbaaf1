"""Root of the test tree: the shared fixtures (tests/support), the `docker` marker and a fast check
that the real environment is up before any test that needs it runs.

Marker rule: a test is marked `docker` ("needs the real environment started by
scripts/test-env.sh") when it uses, directly or through other fixtures, one of
`ENVIRONMENT_FIXTURES` (each starts or reaches a real component: the Docker engine, the registry, a
git HTTP server, the Gitea emulator over that server, a daemon subprocess); a module that starts
one without such a fixture says `pytestmark = pytest.mark.docker`. So `pytest -m "not docker"` runs
everything that needs nothing but this checkout, and `pytest -m docker` the rest.
"""

from __future__ import annotations

import os

import pytest

from tests.support.engine import engine_problem, registry_problem

pytest_plugins = ["tests.support.fixtures", "tests.support.daemon"]

ENVIRONMENT_FIXTURES = frozenset({
    "docker_client", "runtime_image", "instance_id",  # the engine (tests/support/fixtures.py)
    "git_server", "gitea",  # git over HTTP, the Gitea emulator (tests/support/fixtures.py)
    "engine",  # engine, registry and pushed demo images (tests/e2e)
    "shared_registry", "own_registry", "plugin_repo",  # registries and a git server (tests/pins)
    "daemon_factory",  # daemon subprocesses (tests/daemon)
})


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if ENVIRONMENT_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)


def pytest_collection_finish(session: pytest.Session) -> None:
    """One ping each (short timeouts), and only when a selected test needs the environment."""
    if session.config.option.collectonly or not any(item.get_closest_marker("docker") for item in session.items):
        return
    problems = [p for p in (engine_problem(timeout=3), registry_problem(timeout=3)) if p]
    if problems:
        pytest.exit(f"environment not running: start it with scripts/test-env.sh start ({'; '.join(problems)}); "
                    "tests that need none: pytest -m 'not docker'", returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(autouse=True, scope="session")
def _no_machine_policy(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never pick up this machine's operator policy (~/.config/reconciler/policy.yaml)."""
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg-config"))
