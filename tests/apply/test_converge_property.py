"""Property: the plan is deterministic, and applying it then re-planning gives nothing to do."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.model.desired import DesiredWorkspace
from reconciler.model.enums import Mode, Outcome, Tier
from reconciler.plan import PlanPolicy, plan
from tests.apply.conftest import Harness
from tests.plan.factory import state, ws

KEYS = ["a", "b", "c", "d", "e", "f"]


@st.composite
def workspaces(draw: st.DrawFn, key: str) -> DesiredWorkspace:
    return ws(
        key,
        tier=draw(st.sampled_from(list(Tier))),
        env=draw(st.dictionaries(st.sampled_from(["A", "B"]), st.sampled_from(["1", "2"]), max_size=2)),
        secrets=draw(st.dictionaries(st.sampled_from(["TOKEN"]), st.sampled_from(["d1", "d2"]), max_size=1)),
        image=draw(st.sampled_from(["127.0.0.1:5000/ws:v1", "127.0.0.1:5000/ws:v2"])),
        files_hash=draw(st.sampled_from(["f1", "f2"])),
        skills_hash=draw(st.sampled_from(["s1", "s2"])),
        plugins=draw(st.sampled_from([(), (("git", "1" * 40),), (("git", "2" * 40),)])),
        provisioned=draw(st.booleans().map(lambda external: not external) if key == "f" else st.just(True)),
    )


@st.composite
def fleets(draw: st.DrawFn) -> list[DesiredWorkspace]:
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=len(KEYS)))
    return [draw(workspaces(k)) for k in sorted(keys)]


@settings(max_examples=60, deadline=None)
@given(before=fleets(), after=fleets(), stopped=st.sets(st.sampled_from(KEYS)), mode=st.sampled_from(list(Mode)))
def test_apply_then_replan_is_all_noop(before, after, stopped, mode) -> None:
    h = Harness()
    for w in before:
        if w.provisioned:
            h.backend.seed(w, running=w.key not in stopped)
    desired = state(*after)
    actual = h.backend.list_owned()
    policy = PlanPolicy(mode=mode, allow_empty=True, max_delete=len(KEYS))

    first = plan(desired, actual, policy)
    assert first == plan(desired, list(reversed(actual)), policy)

    run = h.apply(first)
    assert run.outcome is Outcome.SUCCESS

    again = plan(desired, h.backend.list_owned(), policy)
    assert again.changes() == ()
    assert {w.id for w in after if w.provisioned} <= set(h.backend.workspaces)
    if mode is Mode.RECONCILE:
        assert set(h.backend.workspaces) <= {w.id for w in after}
