"""Issue 4's scenarios, run the way an operator runs them: push YAML to the (emulated) Gitea, run
the real `reconciler apply` CLI, then read the real engine and the statuses on the commit.

The scenarios share one fleet (module-scoped `e2e`) and run in file order; each pushes the whole
config it needs first, so it starts from a known repo whatever the one before it did.
"""

from __future__ import annotations

import re
from typing import Any

import docker
import pytest
import yaml

from tests.e2e.conftest import E2E
from tests.e2e.engine_proxy import EngineProxy
from tests.e2e.fleet import (
    CANARIES,
    IMAGE,
    PRODUCTION,
    PUBLIC_URL,
    SECRET_VALUE,
    TOKEN,
    Run,
    baseline_org,
    find,
)
from tests.support.engine import TEST_LABEL

pytestmark = pytest.mark.docker
CANARY_CTX, PRODUCTION_CTX = "reconciler/canary", "reconciler/production"


def no_leak(run: Run) -> Run:
    assert SECRET_VALUE not in run.output and TOKEN not in run.output, "a secret reached the CLI output"
    return run


def statuses(e2e: E2E, sha: str, canary: str, production: str) -> dict[str, Any]:
    """The latest status per context on `sha`, read back through the forge API; asserts the states."""
    combined = e2e.statuses(sha)
    got = {s.context: s for s in combined.statuses}
    assert {CANARY_CTX, PRODUCTION_CTX} <= set(got), f"statuses on {sha[:12]}: {combined}"
    assert (got[CANARY_CTX].state, got[PRODUCTION_CTX].state) == (canary, production), got
    for status in got.values():
        assert SECRET_VALUE not in status.description and TOKEN not in status.description
        assert status.target_url.startswith(PUBLIC_URL), status
    return got


def test_create_from_scratch(e2e: E2E) -> None:
    assert e2e.fleet.all() == []
    sha = e2e.repo.push(baseline_org(), "first config")

    run = no_leak(e2e.cli.apply())

    assert run.code == 0, run.explain()
    boxes = e2e.fleet.containers()
    assert sorted(boxes) == sorted(CANARIES + PRODUCTION)
    for ws, box in boxes.items():
        assert box.state == "running", box
        assert box.labels["reconciler.managed"] == "true"
        assert box.labels["reconciler.instance"] == e2e.instance_id
        assert box.labels["reconciler.tier"] == ("canary" if ws in CANARIES else "production")
        assert box.labels["reconciler.revision"] == sha
        assert box.labels["reconciler.spec-hash"]
        assert SECRET_VALUE not in repr(box.labels)
    lead = boxes["acme/lead"].id
    assert e2e.fleet.env(lead)["API_KEY"] == SECRET_VALUE  # the secret reaches the workload, only there
    assert e2e.fleet.env(boxes["acme/research"].id)["PARENT_ID"] == "acme/lead"
    assert "Web search v1" in e2e.fleet.read(lead, "/configs/plugins/web-search/SKILL.md")
    assert "You lead" in e2e.fleet.read(lead, "/configs/system-prompt.md")
    created = {ws: e2e.fleet.created_at(box.id) for ws, box in boxes.items()}
    assert max(created[ws] for ws in CANARIES) < min(created[ws] for ws in PRODUCTION), "canary tier not first"
    got = statuses(e2e, sha, "success", "success")
    assert "2 created" in got[CANARY_CTX].description and "3 created" in got[PRODUCTION_CTX].description


def test_rerun_on_converged_system_is_a_noop(e2e: E2E) -> None:
    sha, _ = e2e.converge()
    before = e2e.fleet.ids()
    started = {ws: e2e.fleet.started_at(cid) for ws, cid in before.items()}

    run = no_leak(e2e.cli.apply())

    assert run.code == 0, run.explain()
    assert e2e.fleet.ids() == before
    assert {ws: e2e.fleet.started_at(cid) for ws, cid in before.items()} == started
    got = statuses(e2e, sha, "success", "success")
    assert "up to date" in got[CANARY_CTX].description and "up to date" in got[PRODUCTION_CTX].description


def test_env_change_recreates_exactly_that_container(e2e: E2E) -> None:
    e2e.converge()
    before = e2e.fleet.ids()
    org = baseline_org()
    find(org, "scout")["env"]["MAX_PAGES"] = "50"
    sha = e2e.repo.push(org, "scout reads more pages")

    run = no_leak(e2e.cli.apply())

    assert run.code == 0, run.explain()
    after = e2e.fleet.ids()
    assert after["acme/scout"] != before["acme/scout"]
    assert {ws: cid for ws, cid in after.items() if ws != "acme/scout"} == {
        ws: cid for ws, cid in before.items() if ws != "acme/scout"
    }
    assert e2e.fleet.env(after["acme/scout"])["MAX_PAGES"] == "50"
    assert e2e.fleet.containers()["acme/scout"].labels["reconciler.revision"] == sha
    got = statuses(e2e, sha, "success", "success")
    assert "1 recreated" in got[PRODUCTION_CTX].description


def test_skill_md_change_upstream_updates_files_without_restart(e2e: E2E) -> None:
    sha, _ = e2e.converge()
    before = e2e.fleet.ids()
    started = {ws: e2e.fleet.started_at(cid) for ws, cid in before.items()}
    plugin_sha = e2e.plugins.change("web-search", {"SKILL.md": "# Web search v2\nSearch, cite, summarise.\n"})

    run = no_leak(e2e.cli.apply())  # same config commit: the plugin's tracked branch moved upstream

    assert run.code == 0, run.explain()
    assert e2e.fleet.ids() == before
    assert {ws: e2e.fleet.started_at(cid) for ws, cid in before.items()} == started, "a container restarted"
    for ws in ("acme/lead", "acme/research"):  # the two workspaces using web-search
        skill = e2e.fleet.read(before[ws], "/configs/plugins/web-search/SKILL.md")
        assert "Web search v2" in skill
        assert e2e.fleet.read(before[ws], "/configs/plugins/web-search/.installed").strip() == plugin_sha
    got = statuses(e2e, sha, "success", "success")
    assert "1 updated" in got[CANARY_CTX].description and "1 updated" in got[PRODUCTION_CTX].description
    assert no_leak(e2e.cli.apply()).code == 0 and e2e.fleet.ids() == before  # and then it is converged


def test_container_deleted_by_hand_is_recreated(e2e: E2E) -> None:
    e2e.converge()
    before = e2e.fleet.ids()
    e2e.fleet.client.api.remove_container(before["acme/responder"], force=True)

    run = no_leak(e2e.cli.apply())

    assert run.code == 0, run.explain()
    after = e2e.fleet.ids()
    assert sorted(after) == sorted(before)
    assert after["acme/responder"] != before["acme/responder"]
    assert {ws: c for ws, c in after.items() if ws != "acme/responder"} == {
        ws: c for ws, c in before.items() if ws != "acme/responder"
    }
    assert e2e.fleet.containers()["acme/responder"].state == "running"


def test_removed_workspace_kept_in_merge_mode_deleted_in_reconcile_mode(e2e: E2E) -> None:
    e2e.converge()
    before = e2e.fleet.ids()
    org = baseline_org()
    find(org, "lead")["children"] = [c for c in find(org, "lead")["children"] if c["key"] != "responder"]
    sha = e2e.repo.push(org, "responder retired")

    merged = no_leak(e2e.cli.apply("--mode", "merge"))

    assert merged.code == 0, merged.explain()
    assert e2e.fleet.ids() == before
    statuses(e2e, sha, "success", "success")

    reconciled = no_leak(e2e.cli.apply())

    assert reconciled.code == 0, reconciled.explain()
    after = e2e.fleet.ids()
    assert "acme/responder" not in after
    assert after == {ws: c for ws, c in before.items() if ws != "acme/responder"}
    assert not any(".acme.responder" in v for v in e2e.fleet.volumes()), e2e.fleet.volumes()
    got = statuses(e2e, sha, "success", "success")
    assert "1 deleted" in got[PRODUCTION_CTX].description


def test_empty_repo_is_refused_and_deletes_nothing(e2e: E2E) -> None:
    e2e.converge()
    before = e2e.fleet.ids()
    sha = e2e.repo.push({"name": "Acme", "workspaces": []}, "oops: everything gone")

    run = no_leak(e2e.cli.apply())

    assert run.code == 1, run.explain()
    assert e2e.fleet.ids() == before
    got = statuses(e2e, sha, "failure", "failure")
    assert all("--allow-empty" in s.description for s in got.values()), got


def test_invalid_config_fails_both_tiers_with_file_and_line(e2e: E2E) -> None:
    e2e.converge()
    before = e2e.fleet.ids()
    org = baseline_org()
    find(org, "triage")["tier"] = "canry"
    org["workspaces"][0]["env"] = {"NEW_KEY": "changes-nothing-because-the-config-is-invalid"}
    text = yaml.safe_dump(org, sort_keys=False)
    line = text.splitlines().index(next(ln for ln in text.splitlines() if "tier: canry" in ln)) + 1
    sha = e2e.repo.push(text, "typo in a tier")

    run = no_leak(e2e.cli.apply())

    assert run.code == 1, run.explain()
    assert e2e.fleet.ids() == before
    got = statuses(e2e, sha, "failure", "failure")
    for status in got.values():
        assert re.search(rf"orgs/acme/org\.yaml:{line}\b", status.description), status.description


def test_unhealthy_canary_rolls_back_and_leaves_production_untouched(e2e: E2E) -> None:
    e2e.converge()
    before = e2e.fleet.ids()
    started = {ws: e2e.fleet.started_at(cid) for ws, cid in before.items()}
    org = baseline_org()
    find(org, "triage")["env"] = {"AGENT_FAIL_HEALTH": "1"}  # the demo runtime fails its health check
    find(org, "scout")["env"]["MAX_PAGES"] = "99"  # a production change that must NOT be applied
    sha = e2e.repo.push(org, "break the canary")

    run = no_leak(e2e.cli.apply())

    assert run.code == 1, run.explain()
    after = e2e.fleet.ids()
    assert after == before, "canary not rolled back to its previous container, or production touched"
    assert {ws: e2e.fleet.started_at(cid) for ws, cid in after.items() if ws in PRODUCTION} == {
        ws: s for ws, s in started.items() if ws in PRODUCTION
    }
    triage = e2e.fleet.containers()["acme/triage"]
    assert triage.state == "running" and "AGENT_FAIL_HEALTH" not in e2e.fleet.env(triage.id)
    assert e2e.fleet.env(after["acme/scout"])["MAX_PAGES"] == "20"
    got = statuses(e2e, sha, "failure", "failure")
    assert "health gate failed" in got[CANARY_CTX].description and "rolled back" in got[CANARY_CTX].description
    assert "not applied" in got[PRODUCTION_CTX].description and "canary" in got[PRODUCTION_CTX].description


def test_foreign_containers_are_never_touched(e2e: E2E) -> None:
    e2e.converge()
    before = e2e.fleet.ids()
    client, other = e2e.fleet.client, f"{e2e.instance_id}x"
    mark = {TEST_LABEL: e2e.instance_id}
    owned_by_other = {"reconciler.managed": "true", "reconciler.instance": other, "reconciler.tier": "production"}
    foreign = [
        run_idle(client, f"plain-{e2e.instance_id}", mark),
        run_idle(client, f"ws-{other}.acme.scout", {**mark, **owned_by_other, "reconciler.workspace": "acme/scout"}),
        run_idle(client, f"ws-{other}.acme.ghost", {**mark, **owned_by_other, "reconciler.workspace": "acme/ghost"}),
        # squats the name our new workspace would get, without our labels
        run_idle(client, f"ws-{e2e.instance_id}.acme.newbie", mark),
    ]
    org = baseline_org()
    org["workspaces"].append({"name": "Newbie", "key": "newbie"})
    sha = e2e.repo.push(org, "a new workspace whose name is taken")

    run = no_leak(e2e.cli.apply())

    assert run.code == 2, run.explain()
    assert "refusing to replace" in run.output and "ws-" in run.output
    for container in foreign:
        container.reload()
        assert container.status == "running", container.name
    assert e2e.fleet.ids() == before  # acme/ghost of the other instance was not deleted as "not in repo"
    assert not any(".acme.newbie" in v for v in e2e.fleet.volumes()), "the failed create left its volume behind"
    got = statuses(e2e, sha, "success", "error")
    assert "newbie" in got[PRODUCTION_CTX].description
    for container in foreign:
        container.remove(force=True)


def run_idle(client: docker.DockerClient, name: str, labels: dict[str, str]) -> Any:
    return client.containers.run(IMAGE, name=name, labels=labels, network_mode="none", detach=True)


def test_unreachable_engine_reports_error_then_the_next_run_converges(e2e: E2E, tmp_path: Any) -> None:
    e2e.converge()
    before = e2e.fleet.ids()
    org = baseline_org()
    find(org, "scout")["env"]["MAX_PAGES"] = "7"
    sha = e2e.repo.push(org, "change while the engine is down")

    down = no_leak(e2e.cli.apply(env={"DOCKER_HOST": f"unix://{tmp_path}/nope.sock"}))

    assert down.code == 2, down.explain()
    assert e2e.fleet.ids() == before
    for status in statuses(e2e, sha, "error", "error").values():
        assert "unreachable" in status.description or "engine" in status.description, status

    up = no_leak(e2e.cli.apply())

    assert up.code == 0, up.explain()
    after = e2e.fleet.ids()
    assert sorted(after) == sorted(before) and after["acme/scout"] != before["acme/scout"]
    statuses(e2e, sha, "success", "success")


def test_engine_stopped_mid_run_reports_error_then_converges_without_duplicates(e2e: E2E, tmp_path: Any) -> None:
    e2e.converge()
    before = e2e.fleet.ids()
    org = baseline_org()
    find(org, "research")["env"] = {"DEPTH": "3"}
    sha = e2e.repo.push(org, "change; the engine dies while it is applied")

    # the engine "dies" the moment the reconciler asks it to create the replacement container
    with EngineProxy(tmp_path / "engine.sock", cut_on=b"/containers/create") as proxy:
        down = no_leak(e2e.cli.apply(env={"DOCKER_HOST": proxy.docker_host}))
        assert proxy.cut.is_set(), "the run never reached a container create"

    assert down.code == 2, down.explain()
    got = statuses(e2e, sha, "success", "error")
    assert "could not apply" in got[PRODUCTION_CTX].description

    up = no_leak(e2e.cli.apply())

    assert up.code == 0, up.explain()
    after = e2e.fleet.ids()  # asserts one container per workspace and no `.prev-*` leftovers
    assert sorted(after) == sorted(before)
    assert {ws: c for ws, c in after.items() if ws != "acme/research"} == {
        ws: c for ws, c in before.items() if ws != "acme/research"
    }
    assert e2e.fleet.env(after["acme/research"])["DEPTH"] == "3"
    statuses(e2e, sha, "success", "success")
    again = no_leak(e2e.cli.apply())
    assert again.code == 0 and e2e.fleet.ids() == after
