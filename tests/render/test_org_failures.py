"""Failures scoped to the org: with `per_org`, an error inside `orgs/<org>/` fails that org alone.

What stays a failure of the whole commit: reconciler.yaml, plugins.yaml, images.yaml, the layout,
a policy refusal anywhere, and every org failing at once. An `!external` remote that does not
answer is the reconciler's trouble (`SourceUnreachable`), never a config error of the org.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ConfigErrors, PolicyRefusal, SourceError, SourceUnreachable
from reconciler.model.config import Resources
from reconciler.model.desired import DesiredState
from reconciler.render import render_repo
from reconciler.secrets import SecretStore
from tests.render.conftest import POLICY, WriteRepo, render_errors

ALPHA = """\
name: Alpha
defaults: {runtime: claude-code}
workspaces:
  - {name: One, key: one, tier: canary}
  - {name: Two, key: two}
"""
BETA = """\
name: Beta
defaults: {runtime: claude-code}
workspaces:
  - name: Lead
    key: lead
    required_env: [API_URL]
  - {name: Ok, key: ok}
"""
GAMMA = "name: Gamma\ndefaults: {runtime: claude-code}\nworkspaces:\n  - {name: G, key: g}\n"


def scoped(repo: Path, **kw: object) -> DesiredState:
    kw.setdefault("policy", POLICY)
    return render_repo(repo, per_org=True, **kw)  # type: ignore[arg-type]


def test_a_missing_required_env_fails_that_org_only(write_repo: WriteRepo) -> None:
    repo = write_repo({"orgs/alpha/org.yaml": ALPHA, "orgs/beta/org.yaml": BETA, "orgs/gamma/org.yaml": GAMMA})

    state = scoped(repo)

    assert [w.id for w in state.workspaces] == ["alpha/one", "alpha/two", "gamma/g"]  # nothing of beta, not even ok
    assert state.orgs == ("alpha", "gamma")
    (failure,) = state.failed_orgs
    assert (failure.org, failure.file, failure.line) == ("beta", "orgs/beta/org.yaml", 6)  # at API_URL
    assert "beta/lead: required_env missing: API_URL" in failure.message
    assert failure.first().startswith("orgs/beta/org.yaml:6:20:")
    assert failure.errors == (failure.first(),)
    assert state.failed() == {"beta"}


def test_without_per_org_any_org_error_fails_the_render_as_before(write_repo: WriteRepo) -> None:
    repo = write_repo({"orgs/alpha/org.yaml": ALPHA, "orgs/beta/org.yaml": BETA})
    errors = render_errors(repo)
    assert len(errors) == 1 and errors[0].startswith("orgs/beta/org.yaml:6:")


def test_every_error_of_the_org_is_kept_first_by_line(write_repo: WriteRepo) -> None:
    broken = BETA + "  - {name: Typo, key: typo, tier: canry}\n  - {name: Bad, key: bad, runtime: nope}\n"
    repo = write_repo({"orgs/alpha/org.yaml": ALPHA, "orgs/beta/org.yaml": broken})
    (failure,) = scoped(repo).failed_orgs
    assert failure.line == 6 and len(failure.errors) == 3
    assert [e.split(":")[1] for e in failure.errors] == ["6", "8", "9"]


@pytest.mark.parametrize("files", [
    {"orgs/beta/org.yaml": "name: Beta\nworkspaces: [\n"},  # invalid YAML
    {"orgs/beta/org.yaml": "name: Beta\nworkspaces:\n  - !include missing.yaml\n"},  # a bad include
    {"orgs/beta/readme.txt": "no org.yaml here\n"},  # an org directory without its template
    {"orgs/beta/org.yaml": "name: Beta\ndefaults: {runtime: claude-code}\nworkspaces:\n"
                           "  - {name: X, key: x, files_dir: nowhere}\n"},  # a files_dir that is not there
])
def test_a_broken_template_fails_that_org_only(write_repo: WriteRepo, files: dict[str, str]) -> None:
    repo = write_repo({"orgs/alpha/org.yaml": ALPHA, **files})
    state = scoped(repo)
    assert [f.org for f in state.failed_orgs] == ["beta"]
    assert state.failed_orgs[0].file.startswith("orgs/beta/")
    assert {w.org for w in state.workspaces} == {"alpha"}


def test_a_missing_secret_fails_that_org_only(write_repo: WriteRepo, tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    (secrets_dir / "alpha").mkdir(parents=True)
    (secrets_dir / "alpha" / "TOKEN").write_text("a\n")
    org = "name: {0}\ndefaults: {{runtime: claude-code, secrets: [TOKEN]}}\nworkspaces:\n  - {{name: W, key: w}}\n"
    repo = write_repo({"orgs/alpha/org.yaml": org.format("Alpha"), "orgs/beta/org.yaml": org.format("Beta")})

    state = scoped(repo, secrets=SecretStore.open(secrets_dir, tmp_path / "state"))

    assert [w.id for w in state.workspaces] == ["alpha/w"] and state.workspaces[0].secret_digests
    (failure,) = state.failed_orgs
    assert failure.org == "beta" and failure.message.startswith(
        f"beta/w: secret TOKEN not found in the secrets directory {secrets_dir}: create one of "
        f"{secrets_dir}/beta/w/TOKEN")


def test_a_secret_that_cannot_be_read_fails_that_org_only(
    write_repo: WriteRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real I/O error (EIO reading /proc/self/mem through a symlink), not a missing file; on a
    kernel where that read succeeds, the same EIO is raised by opening that one path."""
    secrets_dir = tmp_path / "secrets"
    (secrets_dir / "beta").mkdir(parents=True)
    token = secrets_dir / "beta" / "TOKEN"
    os.symlink("/proc/self/mem", token)
    try:
        token.read_bytes()
    except OSError:
        pass
    else:
        real_open = Path.open

        def failing_open(self: Path, *args: Any, **kwargs: Any) -> Any:
            if self == token:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", failing_open)
    beta = "name: Beta\ndefaults: {runtime: claude-code, secrets: [TOKEN]}\nworkspaces:\n  - {name: W, key: w}\n"
    repo = write_repo({"orgs/alpha/org.yaml": ALPHA, "orgs/beta/org.yaml": beta})

    state = scoped(repo, secrets=SecretStore.open(secrets_dir, tmp_path / "state"))

    assert {w.org for w in state.workspaces} == {"alpha"}
    (failure,) = state.failed_orgs
    assert failure.org == "beta" and failure.line == 4
    assert "secret TOKEN" in failure.message and "cannot be read" in failure.message


def test_every_org_failing_fails_the_whole_commit(write_repo: WriteRepo) -> None:
    repo = write_repo({"orgs/beta/org.yaml": BETA, "orgs/delta/org.yaml": BETA.replace("Beta", "Delta")})
    with pytest.raises(ConfigErrors) as info:
        scoped(repo)
    assert [str(e).split(":")[0] for e in info.value.errors] == ["orgs/beta/org.yaml", "orgs/delta/org.yaml"]


@pytest.mark.parametrize("files,where", [
    ({"images.yaml": "images: [\n"}, "images.yaml"),
    ({"plugins.yaml": "plugins:\n  x: {source: ftp://nope, track: none}\n"}, "plugins.yaml"),
    ({"reconciler.yaml": "mode: sideways\n"}, "reconciler.yaml"),
    ({"orgs/Bad_Name/org.yaml": GAMMA}, "orgs/Bad_Name/org.yaml"),
])
def test_errors_outside_one_org_fail_the_whole_commit(write_repo: WriteRepo, files: dict[str, str],
                                                       where: str) -> None:
    repo = write_repo({"orgs/alpha/org.yaml": ALPHA, "orgs/gamma/org.yaml": GAMMA, **files})
    with pytest.raises(ConfigErrors) as info:
        scoped(repo)
    assert any(str(e).startswith(where) for e in info.value.errors), info.value.errors


@pytest.mark.parametrize("workspace", [
    "  - {name: W, key: w, env: {WORKSPACE_ID: spoofed}}",  # a reserved env name
    "  - {name: W, key: w, resources: {cpus: 64}}",  # above the policy's ceiling
    "  - !external {repo: evil.example/x/y, ref: main, path: ws.yaml}",  # a source the policy does not allow
])
def test_a_policy_refusal_in_one_org_fails_the_whole_commit(write_repo: WriteRepo, workspace: str) -> None:
    beta = f"name: Beta\ndefaults: {{runtime: claude-code}}\nworkspaces:\n{workspace}\n"
    repo = write_repo({"orgs/alpha/org.yaml": ALPHA, "orgs/gamma/org.yaml": GAMMA, "orgs/beta/org.yaml": beta})
    with pytest.raises(ConfigErrors) as info:
        scoped(repo, policy=POLICY.model_copy(update={"resources": Resources(cpus=2)}))
    assert [str(e).split(":")[:2] for e in info.value.errors] == [["orgs/beta/org.yaml", "4"]]
    assert all(isinstance(e, PolicyRefusal) for e in info.value.errors)


class FailingFetcher:
    def __init__(self, error: SourceError) -> None:
        self.error = error

    def fetch(self, repo: str, ref: str, url: str | None) -> Path:
        raise self.error


EXTERNAL = ("name: Beta\ndefaults: {runtime: claude-code}\nworkspaces:\n"
            "  - !external {repo: git.example.com/acme/team, ref: v9, path: ws.yaml}\n")


def test_an_external_ref_the_remote_does_not_have_fails_that_org_at_its_line(write_repo: WriteRepo) -> None:
    repo = write_repo({"orgs/alpha/org.yaml": ALPHA, "orgs/beta/org.yaml": EXTERNAL})
    state = scoped(repo, fetcher=FailingFetcher(SourceError("ref 'v9' not found at https://git.example.com")))
    (failure,) = state.failed_orgs
    assert (failure.org, failure.file, failure.line) == ("beta", "orgs/beta/org.yaml", 4)
    assert "!external git.example.com/acme/team@v9: ref 'v9' not found" in failure.message


def test_an_external_remote_that_does_not_answer_is_no_config_error(write_repo: WriteRepo) -> None:
    repo = write_repo({"orgs/alpha/org.yaml": ALPHA, "orgs/beta/org.yaml": EXTERNAL})
    down = FailingFetcher(SourceUnreachable("listing refs of https://git.example.com/acme/team.git failed: "
                                            "failed to connect to git.example.com: Connection refused"))
    for per_org in (True, False):
        with pytest.raises(SourceUnreachable) as info:
            render_repo(repo, fetcher=down, policy=POLICY, per_org=per_org)
        assert not isinstance(info.value, ConfigErrors)
        assert "orgs/beta/org.yaml:4:" in str(info.value) and "Connection refused" in str(info.value)


def test_an_org_may_ask_for_manual_production_but_not_loosen_a_manual_policy(write_repo: WriteRepo) -> None:
    manual = ("name: Alpha\nproduction: manual\ndefaults: {runtime: claude-code}\n"
              "workspaces:\n  - {name: One, key: one}\n")
    loose = "name: Beta\nproduction: auto\ndefaults: {runtime: claude-code}\nworkspaces:\n  - {name: Ok, key: ok}\n"
    repo = write_repo({"orgs/alpha/org.yaml": manual, "orgs/beta/org.yaml": loose, "orgs/gamma/org.yaml": GAMMA})

    state = scoped(repo)  # the policy says auto: each org as it says
    assert state.manual_orgs == ("alpha",)

    strict = POLICY.model_copy(update={"production": "manual", "origin": "the operator policy /etc/p.yaml"})
    errors = render_errors(repo, policy=strict, per_org=True)  # a refusal: the whole commit, not beta alone
    assert errors == ["orgs/beta/org.yaml:2:13: production 'auto' is not allowed by the operator policy /etc/p.yaml "
                      "(production: manual); an org may only make it stricter: remove it or say manual"]
    (bad,) = render_errors(write_repo({"orgs/alpha/org.yaml": manual.replace("manual", "sometimes")}))
    assert bad.startswith("orgs/alpha/org.yaml:2:13: ") and "production" in bad
