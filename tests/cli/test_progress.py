"""Progress on stderr while `apply` works: plain lines (one per event) when stderr is not a terminal,
a live line rewritten in place when it is; nothing but the result on stdout, and no progress with
`--json`."""

from __future__ import annotations

import io
import json
from pathlib import Path

from reconciler.cli.progress import Progress
from reconciler.model.enums import ActionKind, Outcome, Tier
from reconciler.model.events import ActionDone, GateDone, GateProgress, GateStarted, TierDone, TierStarted
from reconciler.model.results import ActionResult, GateResult, TierResult
from tests.cli.conftest import ORG, committed, reconciler, write_tree
from tests.support.git_work import Work

REGISTRY_IMAGE = "127.0.0.1:5000/workspace-template-claude-code:latest"  # a tag: resolved to a digest


def one_tier(progress: Progress) -> None:
    progress.pin("image repo:tag", "sha256:0123456789ab", 0.2)
    progress.pin("plugin notes (branch:main)", "0123456789ab", 0.1)
    progress.event(TierStarted(Tier.CANARY, 2, 1))
    for ws in ("acme/a", "acme/b"):
        progress.event(ActionDone(ActionResult(workspace_id=ws, kind=ActionKind.CREATE, tier=Tier.CANARY,
                                               outcome=Outcome.SUCCESS, duration_s=1.25)))
    progress.event(GateStarted(Tier.CANARY, 2))
    for healthy, elapsed in ((0, 0.0), (0, 1.0), (1, 2.0), (1, 3.0), (2, 4.0)):
        progress.event(GateProgress(Tier.CANARY, healthy, 2, elapsed))
    progress.event(GateDone(GateResult(tier=Tier.CANARY, healthy=2, total=2, outcome=Outcome.SUCCESS,
                                       duration_s=4.0, message="2/2 healthy")))
    progress.event(TierDone(TierResult(tier=Tier.CANARY, outcome=Outcome.SUCCESS, duration_s=6.5)))
    progress.close()


def test_plain_lines_one_per_event_and_a_gate_line_only_when_its_count_moves() -> None:
    out = io.StringIO()
    one_tier(Progress(out, tty=False, clock=lambda: 0.0))
    assert out.getvalue().splitlines() == [
        "pin: image repo:tag -> sha256:0123456789ab (0.2s)",
        "pin: plugin notes (branch:main) -> 0123456789ab (0.1s)",
        "canary: 2 change(s), 1 unchanged",
        "  success: create acme/a (1.2s)",
        "  success: create acme/b (1.2s)",
        "canary: health gate, waiting for 2 workspace(s)",
        "canary: health gate: 1/2 healthy",
        "canary: health gate: 2/2 healthy",
        "canary: health gate success: 2/2 healthy (4.0s)",
        "canary: success (6.5s)",
    ]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_on_a_terminal_what_is_under_way_is_one_live_line() -> None:
    out = io.StringIO()
    one_tier(Progress(out, tty=True, clock=lambda: 0.0))
    text = out.getvalue()
    assert "\r\x1b[Kresolving pins: 2 (plugin notes (branch:main))" in text
    assert "\r\x1b[Kcanary: health gate: 1/2 healthy (3s)" in text  # every poll round, with the time
    screen = [line.rsplit("\r\x1b[K", 1)[-1] for line in text.split("\n")]  # what stays once rewritten
    assert screen == [
        "pins: 2 resolved (0.2s)",  # from when the first pin started
        "canary: 2 change(s), 1 unchanged",
        "  success: create acme/a (1.2s)",
        "  success: create acme/b (1.2s)",
        "canary: health gate, waiting for 2 workspace(s)",
        "canary: health gate success: 2/2 healthy (4.0s)",
        "canary: success (6.5s)",
        "",
    ]


def test_apply_reports_fetch_pins_actions_and_the_gate_as_plain_lines(
    instance_id: str, tmp_path: Path, common: list[str]
) -> None:
    path, sha = committed(tmp_path, ORG, REGISTRY_IMAGE, "one workspace")
    source = ["--source", str(path), "--instance-id", instance_id, *common]

    done = reconciler("apply", *source, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == f"fetching {path}"
    assert lines[1].startswith(f"fetched {path}: HEAD at {sha[:12]} (")
    assert lines[2].startswith(f"pin: image {REGISTRY_IMAGE} -> sha256:")
    assert lines[3] == "canary: 0 change(s), 0 unchanged"  # nothing to gate: no gate lines
    assert lines[4].startswith("canary: success (")
    assert lines[5] == "production: 1 change(s), 0 unchanged"
    assert lines[6].startswith("  success: create acme/lead (")
    assert lines[7] == "production: health gate, waiting for 1 workspace(s)"
    assert lines[8:-2] == ["production: health gate: 1/1 healthy"]  # a line when the count moves
    assert lines[-2].startswith("production: health gate success: 1/1 healthy")
    assert lines[-1].startswith("production: success (")
    assert "\r" not in done.stderr
    assert "health gate" not in done.stdout and "fetch" not in done.stdout, done.stdout  # stdout: the result only

    as_json = reconciler("plan", *source, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["plan"] is not None
    assert as_json.stderr == ""


def test_no_progress_lines_with_a_machine_format(tmp_path: Path, common: list[str]) -> None:
    """`--format json|github` (plan and validate) write nothing but their result and a summary: a CI log
    of annotations stays clean. Text still reports the fetch."""
    work = Work(tmp_path / "work", tmp_path / "nowhere.git")
    write_tree(work.path, "name: Acme\nworkspaces:\n  - name: Ops\n    runtime: external\n")
    work.commit(message="one external workspace")
    nobody = ["--instance-id", f"t{tmp_path.name[-8:]}".replace("_", "x")]
    for command in (["plan", "--source", str(work.path), *nobody], ["validate", str(work.path), "--ref", "HEAD"]):
        text = reconciler(*command, *common)
        assert text.returncode == 0 and f"fetching {work.path}" in text.stderr, text.stderr
        for output_format in ("json", "github"):
            done = reconciler(*command, "--format", output_format, *common)
            assert done.returncode == 0, done.stderr
            assert "fetch" not in done.stderr and "pin:" not in done.stderr, (command, output_format, done.stderr)
