"""GiteaClient against the emulator, with real git pushes: statuses, PRs, comments, retries, errors."""

from __future__ import annotations

import logging
import traceback

import pytest

from reconciler.errors import ForgeError
from reconciler.forge.base import StatusState, StatusUpdate
from reconciler.forge.gitea import GiteaClient
from reconciler.logs import JsonFormatter
from tests.forge.conftest import Sleeps
from tests.support.git_work import Work
from tests.support.gitea_emulator import GiteaEmulator
from tests.support.gitea_repo import NAME, OWNER, TOKEN
from tests.support.net import dead_port

CANARY = "reconciler/canary"


def update(
    state: StatusState = StatusState.PENDING, description: str = "canary: applying", url: str = ""
) -> StatusUpdate:
    return StatusUpdate(context=CANARY, state=state, description=description, target_url=url)


def test_branch_head_is_the_pushed_commit(client: GiteaClient, work: Work, head: str) -> None:
    assert client.branch_head("main") == head
    newer = work.commit(message="second")
    work.push("main")
    assert client.branch_head("main") == newer


def test_branch_with_a_slash(client: GiteaClient, work: Work, head: str) -> None:
    sha = work.commit(message="feature", branch="feature/x")
    work.push("feature/x")
    assert client.branch_head("feature/x") == sha
    assert client.post_status(sha, update())
    assert client.combined_status("feature/x").for_context(CANARY) is not None


def test_status_round_trip_through_combined_status(client: GiteaClient, gitea: GiteaEmulator, head: str) -> None:
    assert client.combined_status(head).state is None  # no status yet: Gitea says "", not pending
    assert client.post_status(head, update(StatusState.PENDING, url="http://127.0.0.1/runs/1"))
    assert client.post_status(head, update(StatusState.SUCCESS, "canary: 2 created · 2/2 healthy"))
    assert client.post_status(head, StatusUpdate(context="reconciler/production", state=StatusState.PENDING))

    combined = client.combined_status("main")
    assert combined.sha == head
    assert combined.state == StatusState.PENDING  # production still pending
    canary = combined.for_context(CANARY)
    assert canary is not None
    assert (canary.state, canary.description, canary.id) == ("success", "canary: 2 created · 2/2 healthy", 2)
    assert len(gitea.statuses(OWNER, NAME, head)) == 3  # append-only rows


def test_identical_status_is_posted_once(client: GiteaClient, gitea: GiteaEmulator, head: str) -> None:
    assert client.post_status(head, update()) is True
    assert client.post_status(head, update()) is False
    assert len(gitea.api_calls("POST", "/statuses/")) == 1
    assert client.post_status(head, update(description="canary: 1 created")) is True
    assert client.post_status(head, update(description="canary: 1 created", url="http://127.0.0.1/r/2")) is True
    assert len(gitea.api_calls("POST", "/statuses/")) == 3


def test_latest_status_found_beyond_one_page(client: GiteaClient, gitea: GiteaEmulator, head: str) -> None:
    assert client.post_status(head, update(StatusState.SUCCESS, "done"))
    for n in range(55):  # other contexts bury it: the client must still find the latest for its context
        assert client.post_status(head, StatusUpdate(context=f"other/{n}", state=StatusState.SUCCESS))
    assert client.post_status(head, update(StatusState.SUCCESS, "done")) is False
    assert len(client.combined_status(head).statuses) == 56


def test_description_is_cut_to_140_characters(client: GiteaClient, gitea: GiteaEmulator, head: str) -> None:
    client.post_status(head, update(description="word " * 100))
    stored = gitea.statuses(OWNER, NAME, head)[-1]["description"]
    assert len(stored) == 140
    assert stored.endswith("…")
    assert client.post_status(head, update(description="word " * 100)) is False  # same cut: unchanged


def test_one_pr_comment_after_three_upserts(client: GiteaClient, gitea: GiteaEmulator, work: Work, head: str) -> None:
    work.commit(message="pr", branch="change")
    work.push("change")
    number = gitea.open_pull_request(OWNER, NAME, "change")
    marker = "<!-- reconciler:plan -->"
    ids = {client.upsert_pr_comment(number, f"plan v{n}", marker) for n in range(3)}
    comments = [c for c in gitea.comments.values() if c["issue"] == number]
    assert len(ids) == 1 and len(comments) == 1
    assert comments[0]["id"] in ids
    assert comments[0]["body"] == f"{marker}\nplan v2"
    assert len(gitea.api_calls("POST", "/comments")) == 1
    assert len(gitea.api_calls("PATCH", "/issues/comments/")) == 2
    client.upsert_pr_comment(number, "plan v2", marker)  # unchanged: no edit at all
    assert len(gitea.api_calls("PATCH", "/issues/comments/")) == 2


def test_open_pull_requests_pages_past_fifty(client: GiteaClient, gitea: GiteaEmulator, work: Work, head: str) -> None:
    work.commit(message="pr", branch="change")
    work.push("change")
    for _ in range(55):
        gitea.open_pull_request(OWNER, NAME, "change")
    closed = gitea.open_pull_request(OWNER, NAME, "change")
    gitea.close_pull_request(OWNER, NAME, closed)
    other_base = gitea.open_pull_request(OWNER, NAME, "change", base="change")
    gitea.app_url = "http://gitea.example.invalid/"  # ROOT_URL differs: Link names another host
    pulls = client.open_pull_requests("main")
    assert [p.number for p in pulls] == list(range(1, 56))
    assert {p.base_ref for p in pulls} == {"main"} and closed not in {p.number for p in pulls}
    assert other_base not in {p.number for p in pulls}
    listed = gitea.api_calls("GET", "/pulls")
    assert len(listed) == 2
    assert all("state=open" in r.query and "limit=50" in r.query for r in listed)
    assert "page=2" in listed[1].query  # asked of the emulator itself: the token never followed the Link


def test_fork_pull_request_statuses_go_to_the_base_repo(
    client: GiteaClient, gitea: GiteaEmulator, tmp_path, head: str
) -> None:
    gitea.create_repo("alice", NAME, fork_of=f"{OWNER}/{NAME}")
    fork = Work(tmp_path / "fork", gitea.clone_url("alice", NAME))
    fork_sha = fork.commit(message="from a fork", branch="idea")
    fork.push("idea")
    number = gitea.open_pull_request(OWNER, NAME, "idea", head_repo=f"alice/{NAME}")
    (pr,) = client.open_pull_requests("main")
    assert (pr.number, pr.is_fork, pr.head_sha, pr.head_ref) == (number, True, fork_sha, "idea")
    assert client.post_status(pr.head_sha, StatusUpdate(context="reconciler/plan", state=StatusState.SUCCESS))
    assert gitea.statuses(OWNER, NAME, fork_sha)[0]["context"] == "reconciler/plan"
    assert gitea.statuses("alice", NAME, fork_sha) == []


def test_retry_then_success_after_two_500s(
    client: GiteaClient, gitea: GiteaEmulator, sleeps: Sleeps, head: str
) -> None:
    gitea.fail_next(2, "500", path_prefix="/api/v1/repos/org/config/branches")
    assert client.branch_head("main") == head
    assert len(sleeps) == 2
    assert [r.status for r in gitea.api_calls("GET", "/branches/")] == [500, 500, 200]


def test_429_is_retried_after_retry_after(client: GiteaClient, gitea: GiteaEmulator, sleeps: Sleeps, head: str) -> None:
    gitea.fail_next(1, "429")
    assert client.branch_head("main") == head
    assert sleeps == [1.0]  # the emulator's Retry-After: 1


def test_no_retry_on_404(client: GiteaClient, gitea: GiteaEmulator, sleeps: Sleeps, head: str) -> None:
    with pytest.raises(ForgeError) as caught:
        client.branch_head("no-such-branch")
    assert caught.value.status_code == 404
    assert "GET /api/v1/repos/org/config/branches/no-such-branch" in str(caught.value)
    assert sleeps == [] and len(gitea.api_calls("GET", "/branches/")) == 1


def test_persistent_500_gives_up_after_max_attempts(client: GiteaClient, gitea: GiteaEmulator, sleeps: Sleeps) -> None:
    gitea.fail_next(10, "502")
    with pytest.raises(ForgeError) as caught:
        client.combined_status("main")
    assert caught.value.status_code == 502 and "HTTP 502" in str(caught.value) and "4 attempts" in str(caught.value)
    assert len(sleeps) == 3


def test_timeout_is_a_forge_error(gitea: GiteaEmulator, head: str, sleeps: Sleeps) -> None:
    gitea.fail_next(1, "timeout")
    quick = GiteaClient(gitea.url, f"{OWNER}/{NAME}", TOKEN, timeout=0.5, max_attempts=1, sleep=sleeps)
    with quick, pytest.raises(ForgeError) as caught:
        quick.branch_head("main")
    assert "timeout" in str(caught.value) and caught.value.status_code is None


def test_timeout_then_success(gitea: GiteaEmulator, head: str, sleeps: Sleeps) -> None:
    gitea.fail_next(1, "timeout")
    with GiteaClient(gitea.url, f"{OWNER}/{NAME}", TOKEN, timeout=0.5, sleep=sleeps) as quick:
        assert quick.branch_head("main") == head
    assert len(sleeps) == 1


def test_comment_post_is_not_repeated_after_a_500_but_patch_is(
    client: GiteaClient, gitea: GiteaEmulator, work: Work, sleeps: Sleeps, head: str
) -> None:
    work.commit(message="pr", branch="change")
    work.push("change")
    number = gitea.open_pull_request(OWNER, NAME, "change")
    gitea.fail_next(1, "500", method="POST")  # the server may have stored it: never post twice
    with pytest.raises(ForgeError, match="POST /api/v1/repos/org/config/issues/1/comments failed: HTTP 500"):
        client.upsert_pr_comment(number, "plan", "<!-- m -->")
    assert len(gitea.api_calls("POST", "/comments")) == 1 and sleeps == []
    first = client.upsert_pr_comment(number, "plan", "<!-- m -->")
    gitea.fail_next(1, "500", method="PATCH")  # an edit is idempotent: retried
    assert client.upsert_pr_comment(number, "plan v2", "<!-- m -->") == first
    assert len(sleeps) == 1
    assert [c["body"] for c in gitea.comments.values()] == ["<!-- m -->\nplan v2"]


def test_oversized_response_is_refused(client: GiteaClient, gitea: GiteaEmulator) -> None:
    gitea.fail_next(1, "huge")
    with pytest.raises(ForgeError, match="larger than"):
        client.branch_head("main")


def test_missing_token_is_401_without_retry(gitea: GiteaEmulator, sleeps: Sleeps, head: str) -> None:
    anonymous = GiteaClient(gitea.url, f"{OWNER}/{NAME}", None, sleep=sleeps)
    with anonymous, pytest.raises(ForgeError) as caught:
        anonymous.branch_head("main")
    assert caught.value.status_code == 401 and sleeps == []


def test_connection_refused_is_mapped(sleeps: Sleeps) -> None:
    nowhere = GiteaClient(f"http://127.0.0.1:{dead_port()}", "o/r", TOKEN, sleep=sleeps)
    with nowhere, pytest.raises(ForgeError, match="connection") as caught:
        nowhere.branch_head("main")
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert len(sleeps) == 3


def test_token_never_in_errors_or_logs(
    gitea: GiteaEmulator, head: str, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ForgeError] = []
    with GiteaClient(gitea.url, f"{OWNER}/{NAME}", TOKEN, timeout=0.5, sleep=sleeps, max_attempts=2) as client:
        gitea.fail_next(1, "500")
        client.branch_head("main")
        for count, kind in ((1, "404"), (2, "timeout"), (2, "500"), (2, "429")):
            gitea.fail_next(count, kind)
            try:
                client.post_status(head, update())
            except ForgeError as exc:
                errors.append(exc)
        client.post_status(head, update())
    with GiteaClient(f"http://127.0.0.1:{dead_port()}", "o/r", TOKEN, sleep=sleeps, max_attempts=2) as nowhere:
        try:
            nowhere.branch_head("main")
        except ForgeError as exc:
            errors.append(exc)
    assert len(errors) == 5
    formatter = JsonFormatter()
    texts = [str(e) + repr(e) + "".join(traceback.format_exception(e)) for e in errors]
    texts += [formatter.format(r) + repr(r.__dict__) for r in caplog.records]
    texts += [repr(r.headers) for r in gitea.request_log]
    assert caplog.records, "expected retry log records"
    assert all(TOKEN not in text for text in texts)
