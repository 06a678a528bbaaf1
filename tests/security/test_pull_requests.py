"""Pull request review without trust, against the real daemon, git server and Gitea emulator.

A private `!external` lives on a git server that demands a token; the operator configured that
token for that host. A pull request from the base repository may use it; the same change from a
fork is reviewed with no credential at all, and the git server never sees the token.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from tests.security.test_credentials import hostile_repo
from tests.support.clock import wait_until
from tests.support.daemon import IMAGE, Fleet, statuses
from tests.support.git_server import TOKEN as GIT_TOKEN
from tests.support.git_server import GitServer
from tests.support.git_work import Work
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_repo import NAME, OWNER, TOKEN
from tests.support.listener import Listener
from tests.support.policy import policy_file

PLAN = "reconciler/plan"
MARKER = "<!-- reconciler:plan -->"


def private_external(git_server: GitServer, make_work: Any) -> str:
    """`<host>/private/agents` holding `ws.yaml` (one workspace); returns the repo name."""
    work = make_work(git_server.repo("private", "agents"))
    work.commit({"ws.yaml": "name: Helper\nkey: helper\n"})
    work.push()
    return f"{git_server.host}/private/agents"


def config_files(git_server: GitServer, external: str) -> dict[str, str]:
    url = git_server.repo_url("private", "agents")
    return {
        "reconciler.yaml": "docker: {network: none}\n",
        "images.yaml": f"images:\n  claude-code: {IMAGE}\n",
        "orgs/acme/org.yaml": ("name: Acme\ndefaults: {runtime: claude-code}\nworkspaces:\n  - name: Lead\n"
                               f"  - !external {{repo: {external}, ref: main, path: ws.yaml, url: {url}}}\n"),
    }


def credentials_file(tmp_path: Path, git_server: GitServer) -> Path:
    token = tmp_path / "git-token"
    token.write_text(GIT_TOKEN)
    path = tmp_path / "credentials.yaml"
    path.write_text(yaml.safe_dump({"git": [{"host": git_server.host, "token_file": str(token)}]}))
    return path


def comment(gitea: GiteaEmulator) -> str:
    found = [c["body"] for c in gitea.comments.values() if MARKER in c.get("body", "")]
    return found[-1] if found else ""


def test_a_fork_pull_request_is_reviewed_without_credentials(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, git_server: GitServer, make_work: Any,
    tmp_path: Path,
) -> None:
    external = private_external(git_server, make_work)
    policy = policy_file(tmp_path / "policy", f"{git_server.host}/private/")
    daemon = daemon_factory(extra=("--policy", str(policy), "--credentials", str(credentials_file(tmp_path,
                                                                                                   git_server))))
    fleet.write("1")
    fleet.commit("base")
    fleet.push()

    # the same change from a branch of the base repository: the credential goes to its own host
    fleet.work.write(config_files(git_server, external))
    inside = fleet.commit("use the private agents", branch="feature")
    fleet.push("feature")
    number = gitea.open_pull_request(OWNER, NAME, "feature", "main")
    assert gitea.deliver_pull_request(OWNER, NAME, number, "opened")[0].status_code == 202
    assert wait_until(lambda: statuses(gitea, inside).get(PLAN, {}).get("state") in ("success", "failure", "error"),
                      timeout=90), daemon.logs()[-3000:]
    assert statuses(gitea, inside)[PLAN]["state"] == "success", (statuses(gitea, inside), comment(gitea))
    used = [a for a in git_server.gate.authorizations if GIT_TOKEN in base64.b64decode(a.split()[1]).decode()]
    assert used, "the base repository's pull request used the token for its own host"

    # the same change from a fork: no credential at all
    git_server.gate.authorizations.clear()
    gitea.create_repo("mallory", NAME, fork_of=f"{OWNER}/{NAME}")
    fork = Work(tmp_path / "fork", gitea.clone_url("mallory", NAME))
    fork.write(config_files(git_server, external) | {"orgs/acme/extra.txt": "from a fork\n"})
    forked = fork.commit(message="from a fork", branch="evil")
    fork.push("evil", force=True)
    fork_pr = gitea.open_pull_request(OWNER, NAME, "evil", "main", head_repo=f"mallory/{NAME}")
    assert gitea.deliver_pull_request(OWNER, NAME, fork_pr, "opened")[0].status_code == 202
    assert wait_until(lambda: statuses(gitea, forked).get(PLAN, {}).get("state") in ("success", "failure", "error"),
                      timeout=90), daemon.logs()[-3000:]
    assert statuses(gitea, forked)[PLAN]["state"] == "failure"
    assert "credentials are not used for pull requests from forks" in comment(gitea)
    assert git_server.gate.authorizations == []  # the token never left for the fork's review


def test_a_pull_request_that_allowlists_its_own_host_gets_no_credential(
    gitea: GiteaEmulator, fleet: Fleet, daemon_factory: Any, tmp_path: Path,
) -> None:
    """The daemon reviews a PR whose reconciler.yaml allowlists the attacker's listener and whose
    !external, plugin source and image point at it; the operator allows that host (the worst case):
    the listener is asked, and never receives the Gitea token or any other credential."""
    with Listener() as realm, Listener() as evil:
        evil.challenge = f'Bearer realm="{realm.url}/token",service="evil"'
        policy = policy_file(tmp_path / "policy", f"{evil.host}/evil/", registries=("127.0.0.1:5000", evil.host))
        daemon = daemon_factory(extra=("--policy", str(policy)))
        fleet.write("1")
        fleet.commit("base")
        fleet.push()
        shas = []
        for kind in ("external", "plugin", "image"):
            repo = hostile_repo(tmp_path / f"files-{kind}", evil.host, external=kind == "external",
                                plugin=kind == "plugin", image=kind == "image")
            files = {str(p.relative_to(repo)): p.read_text() for p in repo.rglob("*") if p.is_file()}
            fleet.work.run("checkout", "-q", "main")
            fleet.work.write(files)
            sha = fleet.commit(f"steal via {kind}", branch=f"steal-{kind}")
            fleet.push(f"steal-{kind}")
            number = gitea.open_pull_request(OWNER, NAME, f"steal-{kind}", "main")
            assert gitea.deliver_pull_request(OWNER, NAME, number, "opened")[0].status_code == 202
            shas.append(sha)
        for sha in shas:
            assert wait_until(lambda sha=sha: statuses(gitea, sha).get(PLAN, {}).get("state") in ("failure", "error"),
                              timeout=120), daemon.logs()[-3000:]
    assert evil.seen, "the allowed host was asked, so the assertion below means something"
    assert evil.authorizations() == [], evil.seen
    assert realm.seen == []
    assert TOKEN not in daemon.logs()
