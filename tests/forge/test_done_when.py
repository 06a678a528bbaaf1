"""Issue 3's whole story in one test: push to the emulated Gitea, the git source fetches that exact
commit, a status posted through the client reads back from the combined status, a signed webhook
gives exactly one trigger and a forged one none."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from reconciler.forge.base import StatusState, StatusUpdate
from reconciler.forge.gitea import GiteaClient
from reconciler.model.credentials import Credentials, GitCredential
from reconciler.source.checkout import checkout
from tests.forge.conftest import Receiver
from tests.support.git_work import Work
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_hooks import ZERO
from tests.support.gitea_repo import HOOK_SECRET, NAME, OWNER, TOKEN


def test_push_fetch_status_and_webhook(
    gitea: GiteaEmulator, work: Work, client: GiteaClient, receiver: Receiver, tmp_path: Path
) -> None:
    sha = work.commit({"file.txt": "config v1\n"}, "config v1")
    work.push("main")

    host = gitea.url.split("://", 1)[1]
    auth = Credentials(git=(GitCredential(host=host, password=SecretStr(TOKEN)),))
    tree = checkout(gitea.clone_url(OWNER, NAME), "main", tmp_path / "state", auth=auth)
    assert tree.revision == sha and (tree.root / "file.txt").read_text().startswith("config v1")
    assert client.branch_head("main") == sha

    posted = client.post_status(sha, StatusUpdate(context="reconciler/canary", state=StatusState.SUCCESS,
                                                  description="canary: 1 created", target_url="http://r/runs/1"))
    assert posted is True
    combined = client.combined_status(sha)
    line = combined.for_context("reconciler/canary")
    assert combined.state is StatusState.SUCCESS and line is not None
    assert (line.state, line.description, line.target_url) == ("success", "canary: 1 created", "http://r/runs/1")

    gitea.add_webhook(OWNER, NAME, receiver.url, secret=HOOK_SECRET.decode())
    gitea.add_webhook(OWNER, NAME, receiver.url, secret="forged-secret")
    statuses = [d.status_code for d in gitea.deliver_push(OWNER, NAME, "refs/heads/main", ZERO, sha)]
    assert statuses == [202, 401]
    (trigger,) = receiver.triggers
    assert (trigger.sha, trigger.ref) == (sha, "refs/heads/main")

    mirror_config = (tree.mirror.path / "config").read_text() if tree.mirror else ""
    assert TOKEN not in mirror_config
