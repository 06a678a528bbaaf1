"""Pure tests of label (de)serialisation and container/volume naming."""

from __future__ import annotations

import re

import pytest

from reconciler.backends import labels as lb
from tests.backends.conftest import make_desired

DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def test_plain_names_are_readable() -> None:
    assert lb.container_name("default", "acme/research-lead") == "ws-default.acme.research-lead"
    assert lb.volume_name("default", "acme/research-lead") == "ws-default.acme.research-lead.configs"


@pytest.mark.parametrize(
    ("instance", "workspace"),
    [
        ("default", "Acme Corp/lead"),
        ("prod/1", "acme/lead"),
        ("default", "acme/" + "k" * 63),
        ("i" * 80, "acme/lead"),
        ("default", "ünïcode/lead"),
        ("default", "/lead"),
    ],
)
def test_sanitised_names_are_valid_bounded_and_hashed(instance: str, workspace: str) -> None:
    name = lb.container_name(instance, workspace)
    assert DOCKER_NAME.match(name) and len(name) <= lb.MAX_NAME
    assert re.search(r"_[0-9a-f]{10}$", name)


def test_names_never_collide() -> None:
    identities = [
        ("a-b", "c/d"),
        ("a", "b-c/d"),
        ("a", "b/c-d"),
        ("a", "b.c/d"),
        ("a", "b-c/d "),
        ("a", "b_c/d"),
        ("x", "o/" + "k" * 70),
        ("x", "o/" + "k" * 71),
        ("other", "acme/lead"),
        ("default", "acme/lead"),
    ]
    names = [lb.container_name(i, w) for i, w in identities]
    assert len(set(names)) == len(names)
    prevs = {lb.prev_container_name(i, w, "abcdef0123456789") for i, w in identities}
    assert not prevs & set(names)
    assert all(lb.is_prev_name(lb.prev_container_name(i, w, "f" * 64), i, w) for i, w in identities)


def test_spec_parts_round_trip_and_tolerate_garbage() -> None:
    parts = {"image": "abc", "env.API_URL": "123", "files": "f00"}
    assert lb.decode_spec_parts(lb.encode_spec_parts(parts)) == parts
    assert " " not in lb.encode_spec_parts(parts)
    assert lb.decode_spec_parts("{not json") == {} and lb.decode_spec_parts("[1]") == {}


def test_workload_labels_say_everything_the_plan_needs() -> None:
    desired = make_desired(secrets=("API_KEY",))
    labels = lb.workload_labels("default", desired, revision="abc123", image="img:1", configs_hash="c")
    assert labels[lb.MANAGED] == "true" and labels[lb.INSTANCE] == "default"
    assert labels[lb.WORKSPACE] == "acme/alpha" and labels[lb.TIER] == "canary"
    assert labels[lb.REVISION] == "abc123" and labels[lb.IMAGE] == "img:1"
    assert lb.is_owned(labels, "default", "acme/alpha")
    assert not lb.is_owned(labels, "other") and not lb.is_owned({}, "default")
    assert lb.decode_tier("bogus") == lb.decode_tier(None)
