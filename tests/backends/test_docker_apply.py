"""Docker backend on the real engine: create, list, recreate, update in place, delete, commit, rollback."""

from __future__ import annotations

from pathlib import Path

import docker
import docker.errors
import pytest

from reconciler.backends import labels as lb
from reconciler.backends.docker import DockerBackend
from reconciler.errors import BackendError, TransientBackendError
from reconciler.model.config import Resources
from reconciler.model.enums import ActionKind
from reconciler.model.plan import Action
from tests.backends.conftest import make_desired, plugin, write_tree
from tests.support.engine import IMAGE, TEST_LABEL

SECRET = "s3cr3t-value-never-in-labels"
SHA1 = "1" * 40
SHA2 = "2" * 40


def act(kind: ActionKind, desired=None, *, restart: bool = True, workspace_id: str | None = None) -> Action:
    ws = workspace_id or desired.id
    return Action(
        kind=kind,
        workspace_id=ws,
        tier=desired.tier if desired else "canary",
        reason="test",
        desired=desired,
        restart=restart,
    )


@pytest.fixture
def trees(tmp_path: Path) -> dict[str, Path]:
    return {
        "files-v1": write_tree(tmp_path / "files-v1", {"system-prompt.md": "be kind\n", "notes/a.md": "A\n"}),
        "files-v2": write_tree(tmp_path / "files-v2", {"system-prompt.md": "be bold\n", "new.md": "N\n"}),
        "plug-v1": write_tree(tmp_path / "plug-v1", {"SKILL.md": "skill one\n", "tool.sh": "echo 1\n"}),
        "plug-v2": write_tree(tmp_path / "plug-v2", {"SKILL.md": "skill two\n", "tool.sh": "echo 1\n"}),
    }


def container(client: docker.DockerClient, name: str) -> dict:
    return client.api.inspect_container(name)


def test_create_from_scratch(make_backend, docker_client, read_configs, trees, instance_id) -> None:
    backend: DockerBackend = make_backend()
    desired = make_desired(
        files_root=trees["files-v1"],
        plugins=(plugin("search", trees["plug-v1"], SHA1),),
        secrets=("API_KEY",),
        resources=Resources(cpus=0.5, memory="64m", pids=64),
    )
    backend.apply(act(ActionKind.CREATE, desired), {"API_KEY": SECRET}, "rev-1")

    name = lb.container_name(instance_id, "acme/alpha")
    info = container(docker_client, name)
    labels = info["Config"]["Labels"]
    assert labels[lb.MANAGED] == "true" and labels[lb.INSTANCE] == instance_id
    assert labels[lb.WORKSPACE] == "acme/alpha" and labels[lb.TIER] == "canary"
    assert labels[lb.SPEC_HASH] == "hash-1" and labels[lb.REVISION] == "rev-1" and labels[lb.IMAGE] == IMAGE
    assert lb.decode_spec_parts(labels[lb.SPEC_PARTS]) == desired.spec_parts
    assert f"API_KEY={SECRET}" in info["Config"]["Env"] and "WORKSPACE_ID=acme/alpha" in info["Config"]["Env"]
    assert not any(SECRET in value for value in labels.values())
    assert info["State"]["Running"]
    host = info["HostConfig"]
    assert host["NetworkMode"] == "none" and host["RestartPolicy"]["Name"] == "unless-stopped"
    assert (host["NanoCpus"], host["Memory"], host["PidsLimit"]) == (500_000_000, 64 * 1024**2, 64)

    files = read_configs(lb.volume_name(instance_id, "acme/alpha"))
    assert files == {
        "system-prompt.md": "be kind\n",
        "notes/a.md": "A\n",
        "plugins/search/SKILL.md": "skill one\n",
        "plugins/search/tool.sh": "echo 1\n",
        "plugins/search/.installed": SHA1 + "\n",
    }
    [seen] = backend.list_owned()
    assert (seen.id, seen.spec_hash, seen.revision, seen.running) == ("acme/alpha", "hash-1", "rev-1", True)
    assert seen.spec_parts == desired.spec_parts and seen.backend_ref == info["Id"] and seen.name == name

    backend.apply(act(ActionKind.CREATE, desired), {"API_KEY": SECRET}, "rev-1")  # idempotent
    assert [w.backend_ref for w in backend.list_owned()] == [info["Id"]]


def test_foreign_containers_are_invisible_and_never_touched(make_backend, docker_client, instance_id) -> None:
    backend = make_backend()
    run = dict(
        entrypoint=["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"],
        network_mode="none",
        detach=True,
    )
    unlabelled = docker_client.containers.run(IMAGE, labels={TEST_LABEL: instance_id}, **run)
    other = docker_client.containers.run(
        IMAGE,
        labels={
            TEST_LABEL: instance_id,
            lb.MANAGED: "true",
            lb.INSTANCE: instance_id + "-other",
            lb.WORKSPACE: "acme/alpha",
            lb.SPEC_HASH: "x",
        },
        **run,
    )
    desired = make_desired()
    backend.apply(act(ActionKind.CREATE, desired), {}, "rev-1")
    assert [w.id for w in backend.list_owned()] == ["acme/alpha"]

    backend.apply(act(ActionKind.DELETE, workspace_id="acme/alpha"), {}, "rev-2")
    assert backend.list_owned() == []
    for c in (unlabelled, other):
        c.reload()
        assert c.status == "running"


def test_name_taken_by_an_unlabelled_container_is_refused(make_backend, docker_client, instance_id) -> None:
    backend = make_backend()
    squatter = docker_client.containers.create(
        IMAGE,
        name=lb.container_name(instance_id, "acme/alpha"),
        labels={TEST_LABEL: instance_id},
        network_mode="none",
    )
    with pytest.raises(BackendError, match="does not carry this reconciler's labels"):
        backend.apply(act(ActionKind.CREATE, make_desired()), {}, "rev-1")
    with pytest.raises(BackendError, match="refusing to delete"):
        backend.apply(act(ActionKind.DELETE, workspace_id="acme/alpha"), {}, "rev-1")
    squatter.reload()  # still there


def test_recreate_keeps_volume_and_old_container_until_commit(
    make_backend, docker_client, read_configs, trees, instance_id
) -> None:
    backend = make_backend()
    v1 = make_desired(files_root=trees["files-v1"])
    backend.apply(act(ActionKind.CREATE, v1), {}, "rev-1")
    [before] = backend.list_owned()
    v2 = make_desired(files_root=trees["files-v1"], spec_hash="hash-2", env={"LEVEL": "2"})
    backend.apply(act(ActionKind.RECREATE, v2), {}, "rev-2")

    [after] = backend.list_owned()
    assert after.backend_ref != before.backend_ref and after.spec_hash == "hash-2" and after.revision == "rev-2"
    prev_name = lb.prev_container_name(instance_id, "acme/alpha", before.backend_ref)
    assert container(docker_client, prev_name)["Id"] == before.backend_ref
    assert "LEVEL=2" in container(docker_client, after.name)["Config"]["Env"]
    assert read_configs(lb.volume_name(instance_id, "acme/alpha"))["system-prompt.md"] == "be kind\n"

    backend.commit("acme/alpha")
    backend.commit("acme/alpha")  # idempotent
    with pytest.raises(docker.errors.NotFound):
        container(docker_client, prev_name)
    assert [w.backend_ref for w in backend.list_owned()] == [after.backend_ref]


def test_rollback_restores_previous_container_and_files(
    make_backend, docker_client, read_configs, trees, instance_id
) -> None:
    backend = make_backend()
    volume = lb.volume_name(instance_id, "acme/alpha")
    v1 = make_desired(files_root=trees["files-v1"], plugins=(plugin("search", trees["plug-v1"], SHA1),))
    backend.apply(act(ActionKind.CREATE, v1), {}, "rev-1")
    backend.commit("acme/alpha")
    [before] = backend.list_owned()
    original = read_configs(volume)

    v2 = make_desired(
        files_root=trees["files-v2"], plugins=(plugin("search", trees["plug-v2"], SHA2),), spec_hash="hash-2"
    )
    backend.apply(act(ActionKind.UPDATE, v2, restart=True), {}, "rev-2")
    changed = read_configs(volume)
    assert changed["new.md"] == "N\n" and "notes/a.md" not in changed
    assert changed["plugins/search/.installed"] == SHA2 + "\n"

    backend.rollback("acme/alpha")
    [after] = backend.list_owned()
    assert (after.backend_ref, after.spec_hash, after.revision, after.running) == (
        before.backend_ref,
        "hash-1",
        "rev-1",
        True,
    )
    assert read_configs(volume) == original
    backend.rollback("acme/alpha")  # idempotent
    assert [w.backend_ref for w in backend.list_owned()] == [before.backend_ref]
    assert docker_client.api.volumes(filters={"name": lb.snapshot_volume_name(instance_id, "acme/alpha")})[
        "Volumes"
    ] in (None, [])


def test_update_without_restart_keeps_the_container_running(
    make_backend, docker_client, read_configs, trees, instance_id, tmp_path
) -> None:
    backend = make_backend()
    volume = lb.volume_name(instance_id, "acme/alpha")
    v1 = make_desired(plugins=(plugin("search", trees["plug-v1"], SHA1),))
    backend.apply(act(ActionKind.CREATE, v1), {}, "rev-1")
    backend.commit("acme/alpha")
    [before] = backend.list_owned()
    started = container(docker_client, before.name)["State"]["StartedAt"]

    v2 = make_desired(plugins=(plugin("search", trees["plug-v2"], SHA2),), spec_hash="hash-2")
    backend.apply(act(ActionKind.UPDATE, v2, restart=False), {}, "rev-2")
    info = container(docker_client, before.name)
    assert info["Id"] == before.backend_ref and info["State"]["Running"] and info["State"]["StartedAt"] == started
    files = read_configs(volume)
    assert files["plugins/search/SKILL.md"] == "skill two\n" and files["plugins/search/.installed"] == SHA2 + "\n"
    [seen] = backend.list_owned()
    assert (seen.backend_ref, seen.spec_hash, seen.revision) == (before.backend_ref, "hash-2", "rev-2")
    [seen_by_new_process] = make_backend().list_owned()  # the override file survives the process
    assert seen_by_new_process.spec_hash == "hash-2"

    backend.rollback("acme/alpha")
    assert read_configs(volume)["plugins/search/SKILL.md"] == "skill one\n"
    [back] = backend.list_owned()
    assert (back.backend_ref, back.spec_hash, back.revision) == (before.backend_ref, "hash-1", "rev-1")
    assert container(docker_client, before.name)["State"]["StartedAt"] == started


def test_delete_removes_container_then_volume_and_is_idempotent(make_backend, docker_client, instance_id) -> None:
    backend = make_backend()
    backend.apply(act(ActionKind.CREATE, make_desired()), {}, "rev-1")
    backend.apply(act(ActionKind.DELETE, workspace_id="acme/alpha"), {}, "rev-2")
    with pytest.raises(docker.errors.NotFound):
        container(docker_client, lb.container_name(instance_id, "acme/alpha"))
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_volume(lb.volume_name(instance_id, "acme/alpha"))
    backend.apply(act(ActionKind.DELETE, workspace_id="acme/alpha"), {}, "rev-2")  # already gone: done
    assert backend.list_owned() == []


def test_failed_stop_keeps_the_volume(make_backend, docker_client, instance_id, monkeypatch) -> None:
    backend = make_backend()
    backend.apply(act(ActionKind.CREATE, make_desired()), {}, "rev-1")

    def refuse(*args, **kwargs):
        raise docker.errors.APIError("stop refused", explanation="cannot stop container: permission denied")

    monkeypatch.setattr(docker_client.api, "stop", refuse)
    with pytest.raises(BackendError, match="acme/alpha") as failure:
        backend.apply(act(ActionKind.DELETE, workspace_id="acme/alpha"), {}, "rev-2")
    assert not isinstance(failure.value, TransientBackendError)
    monkeypatch.undo()
    docker_client.api.inspect_volume(lb.volume_name(instance_id, "acme/alpha"))
    assert container(docker_client, lb.container_name(instance_id, "acme/alpha"))["State"]["Running"]


def test_rollback_of_a_create_removes_container_and_volume(make_backend, docker_client, instance_id) -> None:
    backend = make_backend()
    backend.apply(act(ActionKind.CREATE, make_desired()), {}, "rev-1")
    backend.rollback("acme/alpha")
    backend.rollback("acme/alpha")
    assert backend.list_owned() == []
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_volume(lb.volume_name(instance_id, "acme/alpha"))


def test_image_is_pulled_when_missing(make_backend, docker_client, instance_id) -> None:
    ref = f"127.0.0.1:5000/reconciler-test-pull-{instance_id}:latest"
    docker_client.images.get(IMAGE).tag(ref)
    docker_client.images.push(ref)
    docker_client.images.remove(ref)
    try:
        backend = make_backend()
        backend.apply(act(ActionKind.CREATE, make_desired(image=ref)), {}, "rev-1")
        [seen] = backend.list_owned()
        assert seen.image == ref and seen.running
    finally:
        _cleanup_image(docker_client, instance_id, ref)


def _cleanup_image(client: docker.DockerClient, instance_id: str, ref: str) -> None:
    for row in client.api.containers(all=True, filters={"label": f"reconciler.instance={instance_id}"}):
        client.api.remove_container(row["Id"], force=True)
    client.images.remove(ref)


def test_unreachable_engine_is_transient(tmp_path: Path) -> None:
    dead = docker.DockerClient(base_url="unix:///tmp/nope.sock", version="1.41", timeout=5)
    backend = DockerBackend("tdead", client=dead, state_dir=tmp_path)
    with pytest.raises(TransientBackendError, match="engine"):
        backend.list_owned()
    with pytest.raises(TransientBackendError):
        backend.apply(act(ActionKind.CREATE, make_desired()), {"API_KEY": SECRET}, "rev-1")
    with pytest.raises(TransientBackendError):
        backend.commit("acme/alpha")


def test_secret_never_in_error_messages(make_backend, instance_id) -> None:
    backend = make_backend()
    desired = make_desired(image="127.0.0.1:5000/reconciler-test-missing-image:latest")
    with pytest.raises(BackendError) as failure:
        backend.apply(act(ActionKind.CREATE, desired), {"API_KEY": SECRET}, "rev-1")
    assert SECRET not in str(failure.value)
