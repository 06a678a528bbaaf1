"""Plugin pins on REAL git and the REAL engine: a moved tag reinstalls the plugin (the marker shows
the new SHA), a move that changed only SKILL.md updates it without a restart, and a `track: none`
plugin stays on the SHA it was installed at while its branch moves on."""

from __future__ import annotations

from reconciler.model.enums import ActionKind
from tests.pins.conftest import Config, PluginRepo, Pusher

CANARY, PROD = "acme/canary", "acme/prod"


def ids(config: Config) -> dict[str, str]:
    return {ws: row["Id"] for ws, row in config.containers().items()}


def marker(config: Config, ws: str, plugin: str) -> str:
    return config.read(ws, f"/configs/plugins/{plugin}/.installed").strip()


def test_moved_plugin_tags_reinstall_and_skill_only_moves_do_not_restart(
    pusher: Pusher, plugin_repo: PluginRepo, config: Config
) -> None:
    sha1 = plugin_repo.release("v1", {"README.md": "tools v1\n", "SKILL.md": "skill v1\n"})
    pusher.push()
    config.images = {"claude-code": pusher.ref()}
    config.allowed = [plugin_repo.allowed]
    config.plugins = {"tools": {"source": plugin_repo.url, "track": "tag:v1"},
                      "notes": {"source": plugin_repo.url, "track": "none"}}
    first = config.run()
    assert first.exit_code == 0, first.message
    for ws in (CANARY, PROD):
        assert marker(config, ws, "tools") == sha1
        assert marker(config, ws, "notes") == sha1
        assert config.containers()[ws]["Labels"]["reconciler.plugins"] == f'{{"notes":"{sha1}","tools":"{sha1}"}}'

    # the tag moves to a commit with new content: reinstalled (with a restart), canary first
    sha2 = plugin_repo.release("v1", {"README.md": "tools v2\n"})
    before = ids(config)
    second = config.run()
    assert second.exit_code == 0, second.message
    assert second.plan is not None
    for action in second.plan.actions:
        assert action.kind is ActionKind.UPDATE and action.restart
        assert f"plugin tools: tag v1 moved {sha1[:7]} → {sha2[:7]}" in action.reason
        assert "notes" not in action.reason  # `none`: installed once, never moved
    after = ids(config)
    assert all(after[ws] != before[ws] for ws in (CANARY, PROD))
    for ws in (CANARY, PROD):
        assert marker(config, ws, "tools") == sha2
        assert marker(config, ws, "notes") == sha1
        assert config.read(ws, "/configs/plugins/tools/README.md") == "tools v2\n"

    # only SKILL.md changed upstream: updated in place, same containers, no restart
    sha3 = plugin_repo.release("v1", {"SKILL.md": "skill v3\n"})
    started = {ws: config.client.api.inspect_container(cid)["State"]["StartedAt"] for ws, cid in after.items()}
    third = config.run()
    assert third.exit_code == 0, third.message
    assert third.plan is not None
    for action in third.plan.actions:
        assert (action.kind, action.restart) == (ActionKind.UPDATE, False)
        assert action.reason == f"plugin tools: tag v1 moved {sha2[:7]} → {sha3[:7]}; SKILL.md changed: no restart"
    assert ids(config) == after
    for ws, cid in after.items():
        assert config.client.api.inspect_container(cid)["State"]["StartedAt"] == started[ws]
        assert marker(config, ws, "tools") == sha3
        assert config.read(ws, "/configs/plugins/tools/SKILL.md") == "skill v3\n"
        assert marker(config, ws, "notes") == sha1

    # nothing moved: nothing to do (the in-place update's override carries the new plugin SHAs)
    fourth = config.run()
    assert fourth.plan is not None
    assert [a.kind for a in fourth.plan.actions] == [ActionKind.NOOP, ActionKind.NOOP]
