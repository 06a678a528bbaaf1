"""Engine round trips of the Docker backend on the real engine: what a create costs, and that the
shortcuts (image seen once, volume created in one call, nothing to commit after a fresh create)
keep the crash-safety rules: a volume left behind is never taken for a fresh one, a replacement
still keeps its `.prev` container until commit, an image removed since it was seen is pulled again."""

from __future__ import annotations

import contextlib
from collections import Counter

import docker
import docker.errors
import pytest

from reconciler.backends import labels as lb
from reconciler.backends.docker_engine import run_helper
from reconciler.errors import BackendError
from reconciler.model.enums import ActionKind, HealthState
from reconciler.model.plan import Action
from tests.backends.conftest import make_desired, write_tree
from tests.support.engine import IMAGE


def act(kind: ActionKind, desired) -> Action:
    return Action(kind=kind, workspace_id=desired.id, tier=desired.tier, reason="t", desired=desired)


def delete(workspace_id: str) -> Action:
    return Action(kind=ActionKind.DELETE, workspace_id=workspace_id, tier="canary", reason="t")


@pytest.fixture
def engine_calls(docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every HTTP request the shared client sends from now on, as `METHOD /path` (names folded)."""
    calls: Counter[str] = Counter()
    api = docker_client.api
    send = api.send

    def counting(request, **kwargs):
        path = request.path_url.split("?", 1)[0].split("/", 2)[2]  # drop /v1.xx
        parts = path.split("/")
        if len(parts) > 1 and parts[1] not in ("create", "json"):
            parts[1] = "{id}"
        calls[f"{request.method} /{'/'.join(parts)}"] += 1
        return send(request, **kwargs)

    monkeypatch.setattr(api, "send", counting)
    return calls


def test_a_fresh_create_costs_five_engine_calls_with_its_gate_and_commit(make_backend, engine_calls) -> None:
    backend = make_backend(settle_seconds=0)
    backend.apply(act(ActionKind.CREATE, make_desired("acme/one")), {}, "rev-1")  # the image is seen here
    backend.commit("acme/one")
    engine_calls.clear()

    backend.apply(act(ActionKind.CREATE, make_desired("acme/two")), {}, "rev-1")
    assert backend.health("acme/two") is HealthState.HEALTHY
    backend.commit("acme/two")
    assert engine_calls == Counter({
        "POST /volumes/create": 1,
        "POST /containers/create": 1,
        "POST /containers/{id}/start": 1,
        "POST /containers/{id}/rename": 1,  # set up under a temporary name: its own name only once it runs
        "GET /containers/{id}/json": 1,  # the health probe
    })


def test_a_volume_left_behind_is_not_taken_for_a_fresh_one(make_backend, docker_client, read_configs, instance_id,
                                                           tmp_path) -> None:
    volume = lb.volume_name(instance_id, "acme/alpha")
    docker_client.api.create_volume(volume, labels=lb.auxiliary_labels(instance_id, "acme/alpha"))
    run_helper(docker_client.api, image=IMAGE, script="echo old >/configs/stale.md", binds={volume: "/configs"},
               env={}, labels=lb.auxiliary_labels(instance_id, "acme/alpha", lb.ROLE_HELPER), archive=None,
               timeout=60, what="seeding")
    backend = make_backend()
    files = write_tree(tmp_path / "files", {"a.md": "A\n"})
    backend.apply(act(ActionKind.CREATE, make_desired(files_root=files)), {}, "rev-1")
    assert read_configs(volume) == {"a.md": "A\n"}  # synced (stale.md removed), not copied over as if fresh

    backend.rollback("acme/alpha")  # the create is undone with its volume: /configs is derived, written again
    assert backend.list_owned() == []
    assert not docker_client.api.volumes(filters={"name": volume})["Volumes"]


def test_a_foreign_volume_at_the_name_is_refused_and_left_alone(make_backend, docker_client, instance_id) -> None:
    volume = lb.volume_name(instance_id, "acme/alpha")
    docker_client.api.create_volume(volume, labels={"reconciler.instance": instance_id + "-other"})
    with pytest.raises(BackendError, match="without this reconciler's labels"):
        make_backend().apply(act(ActionKind.CREATE, make_desired()), {}, "rev-1")
    assert docker_client.api.inspect_volume(volume)["Labels"] == {"reconciler.instance": instance_id + "-other"}
    docker_client.api.remove_volume(volume)


def test_a_replacement_of_an_uncommitted_create_keeps_and_commits_its_prev_container(
    make_backend, docker_client, instance_id
) -> None:
    backend = make_backend()
    backend.apply(act(ActionKind.CREATE, make_desired()), {}, "rev-1")  # not committed (say the gate erred)
    [first] = backend.list_owned()
    backend.apply(act(ActionKind.RECREATE, make_desired(spec_hash="hash-2")), {}, "rev-2")
    prev = lb.prev_container_name(instance_id, "acme/alpha", first.backend_ref)
    assert docker_client.api.inspect_container(prev)["Id"] == first.backend_ref

    backend.commit("acme/alpha")
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(prev)


def test_an_image_removed_after_it_was_seen_is_pulled_again(make_backend, docker_client, instance_id) -> None:
    ref = f"127.0.0.1:5000/reconciler-test-repull-{instance_id}:latest"
    docker_client.images.get(IMAGE).tag(ref)
    docker_client.images.push(ref)
    try:
        backend = make_backend()
        backend.apply(act(ActionKind.CREATE, make_desired("acme/one", image=ref)), {}, "rev-1")
        backend.apply(delete("acme/one"), {}, "rev-2")
        docker_client.images.remove(ref)

        backend.apply(act(ActionKind.CREATE, make_desired("acme/two", image=ref)), {}, "rev-3")
        [seen] = backend.list_owned()
        assert (seen.id, seen.image, seen.running) == ("acme/two", ref, True)
    finally:
        for row in docker_client.api.containers(all=True, filters={"label": f"reconciler.instance={instance_id}"}):
            docker_client.api.remove_container(row["Id"], force=True)
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(ref)


def test_a_second_listing_reuses_decoded_labels_but_shares_no_dict(make_backend) -> None:
    backend = make_backend()
    for key in ("one", "two"):
        backend.apply(act(ActionKind.CREATE, make_desired(f"acme/{key}")), {}, "rev-1")
    first, second = (sorted(backend.list_owned(), key=lambda w: w.id) for _ in range(2))
    assert first == second and [w.id for w in first] == ["acme/one", "acme/two"]
    assert first[0].spec_parts == make_desired("acme/one").spec_parts
    for a, b in zip(first, second, strict=True):
        assert a.spec_parts is not b.spec_parts and a.plugins is not b.plugins
