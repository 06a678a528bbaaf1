"""`reconciler validate` and `reconciler render` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from reconciler.cli import app
from tests.render.conftest import WriteRepo

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
EXAMPLE_POLICY = ROOT / "examples/policy.yaml"


def test_validate_example_repo_as_a_real_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(ROOT / "examples/org-repo"),
         "--policy", str(EXAMPLE_POLICY)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("valid: 8 workspaces (7 provisioned, 1 external) in 2 orgs")


def test_validate_reports_every_error_with_location_and_exit_1(write_repo: WriteRepo) -> None:
    repo = write_repo({"orgs/acme/org.yaml": "name: Acme\nworkspaces:\n  - name: A\n    tier: canry\n  - nme: B\n"})
    result = runner.invoke(app, ["validate", str(repo), "--allow-registry", "127.0.0.1:5000"])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert lines[0].startswith("error: orgs/acme/org.yaml:4:11: tier must be canary or production")
    assert any(line.startswith("error: orgs/acme/org.yaml:5:5:") for line in lines)
    assert "nothing was changed" in result.stderr


def test_render_json_shape_and_no_secret_values(write_repo: WriteRepo, tmp_path: Path) -> None:
    repo = write_repo(
        {
            "orgs/acme/org.yaml": """\
        name: Acme
        workspaces:
          - name: Lead
            runtime: claude-code
            secrets: [API_KEY]
            children: [{name: Kid, runtime: claude-code}]
        """
        }
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "API_KEY").write_text("sk-live-0123456789")
    result = runner.invoke(
        app, ["render", str(repo), "--json", "--secrets-dir", str(secrets), "--state-dir", str(tmp_path / "state"),
              "--allow-registry", "127.0.0.1:5000"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    kid = next(w for w in doc["workspaces"] if w["id"] == "acme/kid")
    for field in ("id", "name", "org", "tier", "runtime", "image", "parent", "spec_hash", "plugins", "env_keys"):
        assert field in kid
    assert kid["parent"] == "acme/lead" and "PARENT_ID" in kid["env_keys"]
    assert "sk-live-0123456789" not in result.output


def test_render_tree_is_readable() -> None:
    result = runner.invoke(app, ["render", str(ROOT / "examples/org-repo"), "--policy", str(EXAMPLE_POLICY)])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("- acme/lead [canary]")
    assert any(line.startswith("    - acme/web-scout") for line in lines)  # third level
    assert any("(external, not provisioned)" in line for line in lines)
