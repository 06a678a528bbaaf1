"""Pure pieces of pins and drift: resolve_pins (`track: none`, digest pins), drift reasons,
hold blame/hold/store, held statuses and the lock view. No I/O except a tmp JSON file."""

from __future__ import annotations

from pathlib import Path

from reconciler.errors import Location, SourceError
from reconciler.model.desired import DesiredState, DesiredWorkspace, PluginPinRef
from reconciler.model.enums import ActionKind, Outcome, Tier
from reconciler.model.holds import Hold
from reconciler.model.observed import ObservedWorkspace
from reconciler.model.plan import Plan
from reconciler.model.results import GateResult, RunResult, TierResult
from reconciler.pipeline.holdstore import HoldStore
from reconciler.plan import plan
from reconciler.plan.holds import blame, hold
from reconciler.render.pins import resolve_pins
from reconciler.render.spec_hash import with_spec
from reconciler.report.pins import lock_view, render_text
from reconciler.report.statuses import run_statuses

REPO = "127.0.0.1:5000/agent"
D1, D2, D3 = (f"sha256:{c * 64}" for c in "abc")
SHA1, SHA2 = "1" * 40, "2" * 40


class FakeResolver:
    """Counts calls; image digests and plugin SHAs come from dicts; a missing key is an outage."""

    def __init__(self, tmp: Path, digests: dict[str, str], heads: dict[str, str]) -> None:
        self.tmp, self.digests, self.heads = tmp, digests, heads
        self.image_calls: list[str] = []
        self.plugin_calls: list[str] = []

    def image_digest(self, ref: str) -> str:
        self.image_calls.append(ref)
        if ref not in self.digests:
            raise SourceError(f"registry unreachable resolving {ref}")
        return self.digests[ref]

    def plugin(self, pin: PluginPinRef) -> tuple[str, Path]:
        self.plugin_calls.append(pin.track)
        sha = pin.track[4:] if pin.track.startswith("sha:") else self.heads[pin.track]
        local = self.tmp / sha
        local.mkdir(parents=True, exist_ok=True)
        (local / "README.md").write_text(f"plugin at {sha}\n")
        return sha, local


def workspace(key: str, tier: Tier, image: str = f"{REPO}:latest", track: str = "tag:v1") -> DesiredWorkspace:
    return with_spec(DesiredWorkspace(
        id=f"acme/{key}", org="acme", key=key, name=key, tier=tier, runtime="claude-code", image=image,
        plugins=(PluginPinRef(name="tools", source="http://127.0.0.1:1/agents/tools.git", track=track),),
        source=Location("orgs/acme/org.yaml"),
    ))


def state(*workspaces: DesiredWorkspace) -> DesiredState:
    return DesiredState(revision="r1", root="/nonexistent", workspaces=workspaces)


def observe(ws: DesiredWorkspace) -> ObservedWorkspace:
    return ObservedWorkspace(id=ws.id, tier=ws.tier, spec_hash=ws.spec_hash, spec_parts=dict(ws.spec_parts),
                             backend_ref=f"c-{ws.key}", image=ws.image_digest,
                             plugins={p.name: p.resolved_sha for p in ws.plugins if p.resolved_sha})


def test_digest_pin_is_never_resolved(tmp_path: Path) -> None:
    resolver = FakeResolver(tmp_path, {}, {"tag:v1": SHA1})  # the registry is "down" for every tag
    pinned = workspace("a", Tier.CANARY, image=f"{REPO}@{D1}")
    out = resolve_pins(state(pinned), resolver)
    assert out.workspaces[0].image_digest == f"{REPO}@{D1}"
    assert resolver.image_calls == []


def test_track_none_stays_on_the_installed_sha_and_new_workspaces_get_head(tmp_path: Path) -> None:
    resolver = FakeResolver(tmp_path, {f"{REPO}:latest": D1}, {"none": SHA2})
    old = workspace("old", Tier.PRODUCTION, track="none")
    new = workspace("new", Tier.PRODUCTION, track="none")
    out = resolve_pins(state(old, new), resolver, {"acme/old": {"tools": SHA1}}).by_id()
    assert out["acme/old"].plugins[0].resolved_sha == SHA1
    assert out["acme/old"].plugins[0].track == "none"  # shown as declared
    assert out["acme/new"].plugins[0].resolved_sha == SHA2
    assert sorted(resolver.plugin_calls) == ["none", f"sha:{SHA1}"]


def test_drift_reasons_name_the_old_and_new_digest_and_sha(tmp_path: Path) -> None:
    before = resolve_pins(state(workspace("a", Tier.CANARY)), FakeResolver(tmp_path, {f"{REPO}:latest": D1},
                                                                          {"tag:v1": SHA1}))
    after = resolve_pins(state(workspace("a", Tier.CANARY)), FakeResolver(tmp_path, {f"{REPO}:latest": D2},
                                                                         {"tag:v1": SHA2}))
    action = plan(after, [observe(before.workspaces[0])]).actions[0]
    assert action.kind is ActionKind.RECREATE
    assert f"image agent:latest: sha256:{'a' * 12} → sha256:{'b' * 12}" in action.reason
    assert "plugin tools: tag v1 moved 1111111 → 2222222" in action.reason


def test_a_moved_plugin_tag_with_identical_content_needs_no_restart(tmp_path: Path) -> None:
    resolver = FakeResolver(tmp_path, {f"{REPO}:latest": D1}, {"tag:v1": SHA1})
    before = resolve_pins(state(workspace("a", Tier.CANARY)), resolver).workspaces[0]
    (tmp_path / SHA2).mkdir()
    (tmp_path / SHA2 / "README.md").write_text(f"plugin at {SHA1}\n")  # same bytes as before
    resolver.heads["tag:v1"] = SHA2
    resolver.plugin = lambda pin: (SHA2, tmp_path / SHA2)  # type: ignore[method-assign]
    after = resolve_pins(state(workspace("a", Tier.CANARY)), resolver)
    action = plan(after, [observe(before)]).actions[0]
    assert (action.kind, action.restart) == (ActionKind.UPDATE, False)
    assert action.reason == "plugin tools: tag v1 moved 1111111 → 2222222: no restart"


def _failed_canary_run(plan_: Plan, unhealthy: tuple[str, ...]) -> RunResult:
    gate = GateResult(tier=Tier.CANARY, healthy=0, total=1, outcome=Outcome.FAILED, unhealthy=unhealthy,
                      message="unhealthy")
    canary = TierResult(tier=Tier.CANARY, outcome=Outcome.FAILED, gate=gate, rolled_back=unhealthy)
    prod = TierResult(tier=Tier.PRODUCTION, outcome=Outcome.SKIPPED, blocked_by="canary failed")
    return RunResult(revision="r1", outcome=Outcome.FAILED, tiers=(canary, prod))


def _pinned(digest: str, *keys_tiers: tuple[str, Tier]) -> DesiredState:
    return state(*(with_spec(workspace(k, t).model_copy(update={"image_digest": f"{REPO}@{digest}"}))
                   for k, t in keys_tiers))


def test_a_digest_that_failed_the_canary_gate_is_held_in_every_tier_until_it_moves(tmp_path: Path) -> None:
    running = _pinned(D2, ("canary", Tier.CANARY), ("prod", Tier.PRODUCTION))
    actual = [observe(w) for w in running.workspaces]
    bad = _pinned(D3, ("canary", Tier.CANARY), ("prod", Tier.PRODUCTION))
    first = plan(bad, actual)
    assert [a.kind for a in first.actions] == [ActionKind.RECREATE, ActionKind.RECREATE]
    entries = blame(first, _failed_canary_run(first, ("acme/canary",)), now=1_700_000_000)
    assert {(e.kind, e.value) for e in entries} == {("spec", bad.workspaces[0].spec_hash), ("image", f"{REPO}@{D3}")}

    store = HoldStore(tmp_path / "q.json")
    store.add(entries, now=1_700_000_000)
    held = hold(plan(bad, actual), store.current(now=1_700_000_100))
    assert [a.kind for a in held.actions] == [ActionKind.HOLD, ActionKind.HOLD]
    assert all(a.held_by is not None for a in held.actions)
    assert held.changes() == ()  # nothing held is applied
    assert f"sha256:{'c' * 12}… failed the canary gate at 2023-11-14T22:13:20Z" in held.actions[1].reason

    lines = run_statuses(RunResult(revision="r1", outcome=Outcome.SUCCESS, tiers=(
        TierResult(tier=Tier.CANARY, outcome=Outcome.SUCCESS, unchanged=1),
        TierResult(tier=Tier.PRODUCTION, outcome=Outcome.SUCCESS, unchanged=1))), held)
    assert [line.state for line in lines] == ["failure", "failure"]
    assert lines[0].description.startswith("canary: held: this spec of acme/canary failed its health gate")
    assert "waiting for it to move" in lines[1].description

    moved = _pinned(D1, ("canary", Tier.CANARY), ("prod", Tier.PRODUCTION))
    assert [a.kind for a in hold(plan(moved, actual), store.current(now=1_700_000_100)).actions] == [
        ActionKind.RECREATE, ActionKind.RECREATE]


def test_a_canary_held_by_its_spec_holds_production_changes(tmp_path: Path) -> None:
    canary = workspace("canary", Tier.CANARY)
    prod = workspace("prod", Tier.PRODUCTION)
    changed = state(*(with_spec(w.model_copy(update={"env": {"BAD": "1"}})) for w in (canary, prod)))
    actual = [observe(canary), observe(prod)]
    first = plan(changed, actual)
    entries = blame(first, _failed_canary_run(first, ("acme/canary",)), now=1_700_000_000)
    assert [e.kind for e in entries] == ["spec"]  # no pin moved: only the spec is blamed
    held = hold(first, entries)
    assert [a.kind for a in held.actions] == [ActionKind.HOLD, ActionKind.HOLD]
    assert "canary acme/canary failed the canary gate" in held.actions[1].reason


def test_hold_store_survives_corruption_and_prunes_old_entries(tmp_path: Path) -> None:
    path = tmp_path / "q.json"
    path.write_text("{not json")
    store = HoldStore(path, max_age_s=100)
    assert store.current(now=0) == []
    entry = Hold(kind="image", subject=REPO, value=f"{REPO}@{D3}", label="x", workspace="acme/a", failed_at=10)
    store.add([entry], now=10)
    assert HoldStore(path, max_age_s=100).current(now=50) == [entry]
    assert HoldStore(path, max_age_s=100).current(now=500) == []
    assert [p.name for p in tmp_path.iterdir()] == ["q.json"]  # no temp file left behind


def test_lock_view_lists_pins_users_and_drift(tmp_path: Path) -> None:
    resolver = FakeResolver(tmp_path, {f"{REPO}:latest": D1}, {"tag:v1": SHA1})
    running = resolve_pins(state(workspace("a", Tier.CANARY), workspace("b", Tier.PRODUCTION)), resolver)
    actual = [observe(w) for w in running.workspaces]
    assert not lock_view(running, actual).drifted
    resolver.digests[f"{REPO}:latest"] = D2
    moved = resolve_pins(state(workspace("a", Tier.CANARY), workspace("b", Tier.PRODUCTION),
                               workspace("c", Tier.PRODUCTION)), FakeResolver(tmp_path, resolver.digests,
                                                                               {"tag:v1": SHA1}))
    view = lock_view(moved, actual)
    assert view.images[0].workspaces == ("acme/a", "acme/b", "acme/c")
    assert view.images[0].resolved == f"{REPO}@{D2}"
    assert view.plugins[0].resolved_sha == SHA1
    assert [(d.workspace, d.pin) for d in view.drift] == [("acme/a", "image"), ("acme/b", "image")]
    assert view.not_running == ("acme/c",)
    text = render_text(view)
    assert f"runs {REPO}@{D1} -> resolves to {REPO}@{D2}" in text


def test_a_spec_that_failed_the_production_gate_is_held_but_its_pins_are_not() -> None:
    running = _pinned(D1, ("canary", Tier.CANARY), ("prod", Tier.PRODUCTION))
    actual = [observe(w) for w in running.workspaces]
    new = _pinned(D2, ("canary", Tier.CANARY), ("prod", Tier.PRODUCTION))
    first = plan(new, actual)
    canary = TierResult(tier=Tier.CANARY, outcome=Outcome.SUCCESS,
                        gate=GateResult(tier=Tier.CANARY, healthy=1, total=1, outcome=Outcome.SUCCESS))
    gate = GateResult(tier=Tier.PRODUCTION, healthy=0, total=1, outcome=Outcome.FAILED, unhealthy=("acme/prod",))
    prod = TierResult(tier=Tier.PRODUCTION, outcome=Outcome.FAILED, gate=gate, rolled_back=("acme/prod",))
    entries = blame(first, RunResult(revision="r1", outcome=Outcome.FAILED, tiers=(canary, prod)), now=1_700_000_000)
    assert [(e.kind, e.workspace) for e in entries] == [("spec", "acme/prod")]  # the digest passed the canary

    after_canary = [observe(new.workspaces[0]), actual[1]]  # canary kept the new digest, prod rolled back
    held = hold(plan(new, after_canary), entries)
    kinds = {a.workspace_id: (a.kind, a.reason) for a in held.actions}
    assert kinds["acme/prod"][0] is ActionKind.HOLD and "failed its health gate" in kinds["acme/prod"][1]
    assert kinds["acme/canary"][0] is ActionKind.NOOP and kinds["acme/canary"][1] == "up to date"
