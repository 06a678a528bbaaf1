"""The /configs volume on the real engine: rewrites over an existing volume, interrupted plugin swaps,
and the cost of observing (one list call, no per-container inspect)."""

from __future__ import annotations

from reconciler.backends import docker_configs as cfg
from reconciler.backends import labels as lb
from reconciler.backends.docker_engine import run_helper
from reconciler.model.enums import ActionKind
from reconciler.model.plan import Action
from tests.backends.conftest import make_desired, plugin, write_tree
from tests.support.engine import IMAGE


def act(kind: ActionKind, desired) -> Action:
    return Action(kind=kind, workspace_id=desired.id, tier=desired.tier, reason="t", desired=desired)


def test_container_removed_by_hand_is_recreated_over_its_volume(
    make_backend, docker_client, read_configs, instance_id, tmp_path
) -> None:
    backend = make_backend()
    old = write_tree(tmp_path / "old", {"a.md": "old\n", "gone.md": "x\n"})
    new = write_tree(tmp_path / "new", {"a.md": "new\n", "dir/b.md": "b\n"})
    backend.apply(act(ActionKind.CREATE, make_desired(files_root=old)), {}, "rev-1")
    docker_client.api.remove_container(lb.container_name(instance_id, "acme/alpha"), force=True)
    assert backend.list_owned() == []

    backend.apply(act(ActionKind.CREATE, make_desired(files_root=new, spec_hash="hash-2")), {}, "rev-2")
    assert read_configs(lb.volume_name(instance_id, "acme/alpha")) == {"a.md": "new\n", "dir/b.md": "b\n"}
    [seen] = backend.list_owned()
    assert seen.spec_hash == "hash-2" and seen.running


def test_create_over_an_existing_container_with_another_spec_replaces_it(make_backend) -> None:
    backend = make_backend()
    backend.apply(act(ActionKind.CREATE, make_desired()), {}, "rev-1")
    [before] = backend.list_owned()
    backend.apply(act(ActionKind.CREATE, make_desired(spec_hash="hash-2")), {}, "rev-2")
    [after] = backend.list_owned()
    assert after.backend_ref != before.backend_ref and after.spec_hash == "hash-2"


def test_delete_during_a_pending_recreate_removes_everything(make_backend, docker_client, instance_id) -> None:
    backend = make_backend()
    backend.apply(act(ActionKind.CREATE, make_desired()), {}, "rev-1")
    backend.apply(act(ActionKind.RECREATE, make_desired(spec_hash="hash-2")), {}, "rev-2")
    backend.apply(Action(kind=ActionKind.DELETE, workspace_id="acme/alpha", tier="canary", reason="t"), {}, None)
    rows = docker_client.api.containers(all=True, filters={"label": f"reconciler.instance={instance_id}"})
    assert rows == []
    volumes = docker_client.api.volumes(filters={"label": f"reconciler.instance={instance_id}"})
    assert not volumes.get("Volumes")


def test_interrupted_plugin_swap_puts_the_previous_version_back(
    docker_client, read_configs, instance_id, tmp_path
) -> None:
    volume = f"{instance_id}-swap"
    docker_client.api.create_volume(volume, labels={"reconciler.instance": instance_id})
    seed = "cd /configs/plugins 2>/dev/null || mkdir -p /configs/plugins && cd /configs/plugins"
    seed += " && mkdir .prev-foo foo && echo v1 >.prev-foo/SKILL.md && echo sha1 >.prev-foo/.installed"
    seed += " && echo half >foo/SKILL.md"
    labels = {"reconciler.instance": instance_id, "reconciler.role": "helper"}
    run_helper(
        docker_client.api,
        image=IMAGE,
        script=seed,
        binds={volume: "/configs"},
        env={},
        labels=labels,
        archive=None,
        timeout=60,
        what="seeding",
    )
    keep_foo = plugin("foo", tmp_path, "3" * 40).model_copy(update={"local_path": None})  # nothing to install
    run_helper(
        docker_client.api,
        image=IMAGE,
        script=cfg.SYNC_SCRIPT,
        binds={volume: "/configs"},
        env=cfg.sync_env((keep_foo,), snapshot=False),
        labels=labels,
        archive=cfg.configs_archive(None, (keep_foo,), staged=True),
        timeout=60,
        what="sync",
    )
    assert read_configs(volume) == {"plugins/foo/SKILL.md": "v1\n", "plugins/foo/.installed": "sha1\n"}


def test_list_owned_is_one_engine_call(make_backend, docker_client, monkeypatch) -> None:
    backend = make_backend()
    for key in ("one", "two", "three"):
        backend.apply(act(ActionKind.CREATE, make_desired(f"acme/{key}")), {}, "rev-1")
    calls: list[str] = []
    api = docker_client.api
    for method in ("containers", "inspect_container", "inspect_volume", "volumes"):
        original = getattr(api, method)

        def counted(*args, _name=method, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(api, method, counted)
    assert sorted(w.id for w in backend.list_owned()) == ["acme/one", "acme/three", "acme/two"]
    assert calls == ["containers"]
