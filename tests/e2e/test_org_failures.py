"""Failures scoped to the org, the way an operator sees them: two orgs converged, then a commit that
changes org acme and breaks org beta (a `required_env` nobody sets). The real `reconciler apply`
exits 1, acme's change is on the engine, beta's containers are the same containers as before, and
both the output and the commit statuses name beta and its file:line.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from tests.e2e.conftest import E2E
from tests.e2e.fleet import TOKEN, Cli, ConfigRepo, Fleet, Plugins
from tests.support.engine import cleanup
from tests.support.gitea_emulator import GiteaEmulator

pytestmark = pytest.mark.docker
CANARY_CTX, PRODUCTION_CTX = "reconciler/canary", "reconciler/production"


def acme(round_: str) -> dict[str, Any]:
    return {"name": "Acme", "defaults": {"runtime": "claude-code", "env": {"ROUND": round_}},
            "workspaces": [{"name": "Lead", "key": "lead", "tier": "canary"}, {"name": "Scout", "key": "scout"}]}


def beta(*, broken: bool = False) -> str:
    writer: dict[str, Any] = {"name": "Writer", "key": "writer"}
    if broken:
        writer["required_env"] = ["PUBLISH_URL"]
    org = {"name": "Beta", "defaults": {"runtime": "claude-code"},
           "workspaces": [{"name": "Editor", "key": "editor", "tier": "canary"}, writer]}
    return yaml.safe_dump(org, sort_keys=False)


class TwoOrgs(ConfigRepo):
    """The e2e config repo with a second org, `orgs/beta/org.yaml`, written from `beta_text`."""

    beta_text = beta()

    def files(self, org_text: str) -> dict[str, str]:
        return {**super().files(org_text), "orgs/beta/org.yaml": self.beta_text}


@pytest.fixture(scope="module")
def two_orgs(engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    work = tmp_path_factory.mktemp("e2e-orgs")
    instance_id = f"e2e{uuid.uuid4().hex[:8]}"
    try:
        with GiteaEmulator(work / "gitea", token=TOKEN) as emu:
            plugins = Plugins(emu, work / "plugins")
            repo = TwoOrgs(emu, work / "config")
            yield E2E(emu, repo, plugins, Cli(emu, instance_id, work), Fleet(engine, instance_id), instance_id)
    finally:
        cleanup(engine, instance_id)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_broken_org_is_kept_while_the_other_converges(two_orgs: E2E, tmp_path: Path) -> None:
    repo = two_orgs.repo
    assert isinstance(repo, TwoOrgs)
    two_orgs.converge(acme("1"))
    before = two_orgs.fleet.ids()
    assert sorted(before) == ["acme/lead", "acme/scout", "beta/editor", "beta/writer"]

    repo.beta_text = beta(broken=True)
    line = line_of(repo.beta_text, "- PUBLISH_URL")  # the required name that is missing
    sha = repo.push(acme("2"), "acme: round 2; beta: a required env nobody sets")

    run = two_orgs.cli.apply()

    assert run.code == 1, run.explain()
    after = two_orgs.fleet.ids()
    assert after["beta/editor"] == before["beta/editor"] and after["beta/writer"] == before["beta/writer"]
    for ws in ("acme/lead", "acme/scout"):
        assert after[ws] != before[ws], f"{ws} was not recreated"
        assert two_orgs.fleet.env(after[ws])["ROUND"] == "2"
        assert two_orgs.fleet.containers()[ws].labels["reconciler.revision"] == sha
    assert f"org beta failed: orgs/beta/org.yaml:{line}:" in run.output, run.explain()
    assert "required_env missing: PUBLISH_URL" in run.output
    got = {s.context: s for s in two_orgs.statuses(sha).statuses}
    for context in (CANARY_CTX, PRODUCTION_CTX):
        assert got[context].state == "failure", got
        assert f"org beta failed: orgs/beta/org.yaml:{line}:" in got[context].description, got[context]
        assert got[context].description.endswith("; 1 other org(s) converged"), got[context]

    repo.beta_text = beta()  # fixed: beta is planned again, and is up to date
    fixed = repo.push(acme("2"), "beta: no required env")
    run = two_orgs.cli.apply()
    assert run.code == 0, run.explain()
    assert two_orgs.fleet.ids() == after
    got = {s.context: s for s in two_orgs.statuses(fixed).statuses}
    assert {got[c].state for c in (CANARY_CTX, PRODUCTION_CTX)} == {"success"}, got
