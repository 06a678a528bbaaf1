"""The hostile configs an attacker with pull-request rights can push: each is refused by the real
`reconciler validate` process with its file:line, nothing crashes, nothing is changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = "images:\n  claude-code: 127.0.0.1:5000/agent:v1\n"
ORG = "name: Acme\ndefaults: {runtime: claude-code}\nworkspaces:\n  - name: A\n"

CASES = {
    "self-referencing alias": ({"orgs/acme/org.yaml": "name: Acme\nx: &a [*a]\nworkspaces: []\n"},
                               "orgs/acme/org.yaml:2:", "recursive alias"),
    "self-referencing mapping": ({"orgs/acme/org.yaml": "name: Acme\nx: &b {y: *b}\nworkspaces: []\n"},
                                 "orgs/acme/org.yaml:2:", "recursive alias"),
    "NUL in env": ({"orgs/acme/org.yaml": ORG + '    env: {BAD: "a\\u0000b"}\n'},
                   "orgs/acme/org.yaml:5:", "U+0000"),
    "YAML 1.1 boolean in env": ({"orgs/acme/org.yaml": ORG + "    env: {LOG_LEVEL: off}\n"},
                                "orgs/acme/org.yaml:5:", "quote it"),
    "YAML 1.1 octal in env": ({"orgs/acme/org.yaml": ORG + "    env: {MODE: 0755}\n"},
                              "orgs/acme/org.yaml:5:", "quote it"),
    "malformed digest": ({"images.yaml": "images:\n  claude-code: 127.0.0.1:5000/agent@sha256:nothex\n"},
                         "images.yaml:2:", "64 lowercase hex"),
    "secret shadowing the identity": ({"orgs/acme/org.yaml": ORG + "    secrets: [WORKSPACE_ID]\n"},
                                      "orgs/acme/org.yaml:4:", "reserved"),
    "repo widening the delete cap": ({"reconciler.yaml": "max_delete: 100000\n"},
                                     "reconciler.yaml:1:", "ceiling"),
    "plugin source climbing out of its allowed owner": (
        {"plugins.yaml": 'plugins:\n  loot: {source: "http://127.0.0.1:3000/agents/../evil/loot.git"}\n'},
        "plugins.yaml:2:", "is not allowed by the operator policy"),
    "plugin source climbing out with %-escapes": (
        {"plugins.yaml": 'plugins:\n  loot: {source: "http://127.0.0.1:3000/agents/%2e%2e/evil/loot.git"}\n'},
        "plugins.yaml:2:", "is not allowed by the operator policy"),
    "!external repo climbing out of its allowed owner": (
        {"orgs/acme/org.yaml": ORG + "  - !external {repo: 127.0.0.1:3000/agents/../evil/x, ref: main, "
                                     "path: w.yaml}\n"},
        "orgs/acme/org.yaml:5:", "is not allowed by the operator policy"),
    "repo choosing the host network": ({"reconciler.yaml": "docker: {network: host}\n"},
                                       "reconciler.yaml:1:", "not allowed by the operator policy"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_config_is_a_located_error(case: str, tmp_path: Path) -> None:
    files, where, words = CASES[case]
    repo = tmp_path / "repo"
    for rel, text in {"images.yaml": IMAGES, "orgs/acme/org.yaml": ORG, **files}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    policy = tmp_path / "policy.yaml"
    policy.write_text("sources: [127.0.0.1:3000/agents/]\nregistries: [127.0.0.1:5000]\nmax_delete: 5\n"
                      "docker: {networks: [none]}\n")
    done = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(repo), "--policy", str(policy)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert any(line.startswith(f"error: {where}") and words in line for line in errors), errors
