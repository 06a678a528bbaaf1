"""Registry down, on a REAL registry this test starts and stops itself (the shared one is never
touched): a tag that cannot be resolved reports `error` on both tiers and tears nothing down; a
digest pin needs no registry at all, so the same outage does not matter to it."""

from __future__ import annotations

from reconciler.model.enums import ActionKind
from tests.pins.conftest import Config, OwnRegistry, Pusher


def test_registry_down_is_an_error_that_tears_nothing_down_and_digest_pins_need_no_registry(
    own_registry: OwnRegistry, own_pusher: Pusher, config: Config
) -> None:
    pusher = own_pusher
    digest = pusher.push()
    config.images = {"claude-code": pusher.ref()}
    first = config.run()
    assert first.exit_code == 0, first.message
    before = {ws: row["Id"] for ws, row in config.containers().items()}
    assert len(before) == 2

    own_registry.stop()
    down = config.run()
    assert down.exit_code == 2
    assert "could not resolve pins" in down.message and own_registry.host in down.message
    assert [(s.context, s.state) for s in down.statuses] == [
        ("reconciler/canary", "error"), ("reconciler/production", "error")]
    assert down.plan is None  # nothing planned, so nothing applied or deleted
    rows = config.containers()
    assert {ws: row["Id"] for ws, row in rows.items()} == before
    assert all(row["State"] == "running" for row in rows.values())

    # the same image pinned by digest: resolved without the registry (which is still down)
    config.images = {"claude-code": f"{pusher.repo}@{digest}"}
    pinned = config.run()
    assert pinned.exit_code == 0, pinned.message
    assert pinned.plan is not None
    assert [a.kind for a in pinned.plan.actions] == [ActionKind.NOOP, ActionKind.NOOP]
    assert {ws: row["Id"] for ws, row in config.containers().items()} == before
