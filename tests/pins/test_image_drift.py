"""A moving image tag upstream, end to end on the REAL registry and engine: v1 applied, v2 pushed
under the same tag reaches canary then production, v3 (unhealthy) stops at canary and is not
retried, v4 moves again; `reconciler pins --check` tells CI when what runs has drifted."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.model.enums import ActionKind, Outcome, RunStatus
from reconciler.model.events import ActionDone
from tests.pins.conftest import Config, Pusher

CANARY, PROD = "acme/canary", "acme/prod"


def short(digest: str) -> str:
    return digest[: len("sha256:") + 12]


def pins(config: Config, *extra: str) -> tuple[int, str]:
    args = ["pins", "--source", str(config.root), "--state-dir", str(config.state_dir),
            "--instance-id", config.instance, *config.policy_args(), *extra]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def running_images(config: Config) -> dict[str, str]:
    return {ws: row["Labels"]["reconciler.image"] for ws, row in config.containers().items()}


def applied_order(config: Config) -> list[str]:
    return [e.result.workspace_id for e in config.events
            if isinstance(e, ActionDone) and e.result.outcome is Outcome.SUCCESS]


def test_a_moved_tag_rolls_out_canary_first_and_a_bad_digest_stops_at_canary(pusher: Pusher, config: Config) -> None:
    v1 = pusher.push()
    config.images = {"claude-code": pusher.ref()}
    first = config.run()
    assert first.exit_code == 0, first.message
    assert running_images(config) == {CANARY: f"{pusher.repo}@{v1}", PROD: f"{pusher.repo}@{v1}"}
    assert pins(config, "--check")[0] == 0

    # v2 under the same tag: drift, named by both digests, applied canary first
    v2 = pusher.push()
    code, out = pins(config, "--check", "--json")
    assert code == 1
    assert {d["workspace"] for d in json.loads(out)["drift"]} == {CANARY, PROD}
    second = config.run()
    assert second.exit_code == 0, second.message
    assert second.plan is not None
    for action in second.plan.actions:
        assert action.kind is ActionKind.RECREATE
        assert f"image agent:latest: {short(v1)} → {short(v2)}" in action.reason
    assert applied_order(config) == [CANARY, PROD]
    assert running_images(config) == {CANARY: f"{pusher.repo}@{v2}", PROD: f"{pusher.repo}@{v2}"}
    assert [s.state for s in second.statuses if s.state != "pending"] == ["success", "success"]
    assert pins(config, "--check")[0] == 0

    # v3 fails its health check: canary rolled back to v2, production never touched
    v3 = pusher.push(fail_health=True)
    before = {ws: row["Id"] for ws, row in config.containers().items()}
    third = config.run()
    assert third.exit_code == 1
    assert applied_order(config) == [CANARY]
    assert running_images(config) == {CANARY: f"{pusher.repo}@{v2}", PROD: f"{pusher.repo}@{v2}"}
    assert config.containers()[PROD]["Id"] == before[PROD]
    final = {s.context: s for s in third.statuses if s.state != "pending"}
    assert final["reconciler/canary"].state == "failure"
    assert "health gate failed" in final["reconciler/canary"].description
    assert final["reconciler/production"].state == "failure"

    # the next pass does not retry v3: no new container, both held, statuses say why
    before = {ws: row["Id"] for ws, row in config.containers().items()}
    fourth = config.run()
    assert fourth.exit_code == 1
    assert {ws: row["Id"] for ws, row in config.containers().items()} == before
    assert fourth.plan is not None
    assert [a.kind for a in fourth.plan.actions] == [ActionKind.HOLD, ActionKind.HOLD]
    assert fourth.status is RunStatus.HELD
    assert [e for e in config.events if isinstance(e, ActionDone)] == []
    final = {s.context: s for s in fourth.statuses if s.state != "pending"}
    assert final["reconciler/production"].state == "failure"
    assert f"{short(v3)}… failed the canary gate" in final["reconciler/production"].description
    assert "held" in final["reconciler/canary"].description

    # v4 (healthy) moves the tag again: canary, then production
    v4 = pusher.push()
    fifth = config.run()
    assert fifth.exit_code == 0, fifth.message
    assert applied_order(config) == [CANARY, PROD]
    assert running_images(config) == {CANARY: f"{pusher.repo}@{v4}", PROD: f"{pusher.repo}@{v4}"}
    code, out = pins(config)
    assert code == 0
    assert f"{pusher.repo}@{v4}" in out and "no drift" in out
