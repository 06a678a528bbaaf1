"""Rendering rules: identity, layering, tiers, spawning, external runtime, parents, files."""

from __future__ import annotations

from pathlib import Path

from reconciler.model.enums import Tier
from tests.render.conftest import WriteRepo, render_errors, render_ok

ORG = """\
name: Acme
defaults:
  runtime: claude-code
  env: {LOG_LEVEL: info, REGION: eu}
  plugins: [notes]
workspaces:
  - name: Lead Agent
    tier: canary
    env: {LOG_LEVEL: debug}
    files_dir: files/lead
    children:
      - name: Research
        children:
          - name: Web Scout
  - name: Ops
    runtime: external
  - name: Old
    spawning: false
    children:
      - name: Older
"""
PLUGINS = """\
plugins:
  notes: {source: "http://127.0.0.1:3000/agents/notes.git", track: none}
  tools: {source: "http://127.0.0.1:3000/agents/tools.git", track: "tag:v1"}
"""
SETTINGS = "allowed_sources: ['127.0.0.1:3000/agents/']\n"


def base_repo(write_repo: WriteRepo, org: str = ORG) -> Path:
    return write_repo(
        {
            "reconciler.yaml": SETTINGS,
            "plugins.yaml": PLUGINS,
            "orgs/acme/org.yaml": org,
            "orgs/acme/files/lead/system-prompt.md": "be helpful\n",
            "orgs/acme/files/lead/SKILL.md": "# skill\n",
        }
    )


def test_identity_parent_and_layered_env(write_repo: WriteRepo) -> None:
    state = render_ok(base_repo(write_repo))
    by_id = state.by_id()
    assert sorted(by_id) == ["acme/lead-agent", "acme/ops", "acme/research", "acme/web-scout"]
    lead, scout = by_id["acme/lead-agent"], by_id["acme/web-scout"]
    assert lead.tier is Tier.CANARY and scout.tier is Tier.PRODUCTION
    assert lead.env["LOG_LEVEL"] == "debug" and lead.env["REGION"] == "eu"  # defaults < workspace
    assert scout.env["LOG_LEVEL"] == "info"
    assert scout.parent == "acme/research" and scout.env["PARENT_ID"] == "acme/research"
    assert "PARENT_ID" not in lead.env and lead.env["WORKSPACE_ID"] == "acme/lead-agent"
    assert [p.name for p in lead.plugins] == ["notes"]
    assert lead.image == "127.0.0.1:5000/ws-claude:latest"


def test_spawning_false_skips_whole_subtree_and_external_is_tracked(write_repo: WriteRepo) -> None:
    by_id = render_ok(base_repo(write_repo)).by_id()
    assert "acme/old" not in by_id and "acme/older" not in by_id
    assert by_id["acme/ops"].provisioned is False and by_id["acme/ops"].image is None


def test_files_dir_hashed_with_skills_apart(write_repo: WriteRepo) -> None:
    repo = base_repo(write_repo)
    lead = render_ok(repo).by_id()["acme/lead-agent"]
    assert lead.files is not None and {e.path for e in lead.files.entries} == {"SKILL.md", "system-prompt.md"}
    (repo / "orgs/acme/files/lead/SKILL.md").write_text("# skill v2\n")
    after = render_ok(repo).by_id()["acme/lead-agent"]
    assert after.files is not None
    assert after.files.content_hash == lead.files.content_hash
    assert after.files.skills_hash != lead.files.skills_hash
    changed = {k for k in lead.spec_parts if lead.spec_parts[k] != after.spec_parts[k]}
    assert changed == {"skills"}


def test_required_env_lists_every_missing_name(write_repo: WriteRepo) -> None:
    org = ORG.replace(
        "    tier: canary\n",
        "    tier: canary\n    secrets: [API_KEY]\n    required_env: [API_KEY, LOG_LEVEL, DB_URL, QUEUE]\n",
    )
    errors = render_errors(base_repo(write_repo, org))
    assert len(errors) == 1
    assert "orgs/acme/org.yaml:10:40" in errors[0] and "DB_URL, QUEUE" in errors[0]  # at DB_URL in the list


def test_duplicate_workspace_keys_name_both_places(write_repo: WriteRepo) -> None:
    repo = write_repo(
        {
            "orgs/acme/org.yaml": """\
        name: Acme
        defaults: {runtime: claude-code}
        workspaces:
          - name: Bot
          - name: Other
            children:
              - name: Different
                key: bot
        """
        }
    )
    (error,) = render_errors(repo)
    assert "orgs/acme/org.yaml:7:9" in error and "duplicate workspace key 'bot'" in error
    assert "also at orgs/acme/org.yaml:4:5" in error


def test_enum_typos_and_unknown_keys_are_errors_with_locations(write_repo: WriteRepo) -> None:
    repo = write_repo(
        {
            "reconciler.yaml": "mode: reconcil\nallowed_sources: ['127.0.0.1:3000/agents/']\n",
            "plugins.yaml": "plugins:\n  notes: {source: 'http://127.0.0.1:3000/agents/notes.git', track: latest}\n",
            "orgs/acme/org.yaml": """\
        name: Acme
        workspaces:
          - name: Bot
            runtime: claude-code
            tier: prod
            enviroment: {A: 1}
        """,
        }
    )
    errors = render_errors(repo)
    text = "\n".join(errors)
    assert "reconciler.yaml:1:7: mode must be reconcile or merge, got 'reconcil'; did you mean `reconcile`?" in text
    assert "plugins.yaml:2:68: plugins.notes.track must be one of none, tag:<name>" in text
    assert "orgs/acme/org.yaml:5:11: tier must be canary or production, got 'prod'; did you mean `production`?" in text
    assert "orgs/acme/org.yaml:6:5: unknown key 'enviroment'; did you mean `env`?" in text
    assert len(errors) == 4  # all reported together


def test_missing_runtime_image_and_plugin_are_errors(write_repo: WriteRepo) -> None:
    repo = write_repo(
        {
            "orgs/acme/org.yaml": """\
        name: Acme
        workspaces:
          - name: A
          - name: B
            runtime: hermes
          - name: C
            runtime: claude-code
            plugins: [nope]
        """
        }
    )
    text = "\n".join(render_errors(repo))
    assert "acme/a: runtime is required" in text
    assert "runtime 'hermes' has no image in images.yaml" in text
    assert "plugin 'nope' is not declared in plugins.yaml" in text


def test_plugin_source_must_be_allowlisted(write_repo: WriteRepo) -> None:
    repo = write_repo(
        {
            "plugins.yaml": "plugins:\n  x:\n    source: https://evil.example.com/agents/x.git\n",
            "reconciler.yaml": "allowed_sources: ['127.0.0.1:3000/agents/']\n",
        }
    )
    (error,) = render_errors(repo)
    assert error.startswith("plugins.yaml:3:13:") and "not allowed" in error


def test_workspace_count_limit(write_repo: WriteRepo) -> None:
    items = "".join(f"  - name: W{i}\n" for i in range(5))
    repo = write_repo(
        {
            "reconciler.yaml": "limits: {max_workspaces: 3}\n",
            "orgs/acme/org.yaml": "name: Acme\ndefaults: {runtime: claude-code}\nworkspaces:\n" + items,
        }
    )
    (error,) = render_errors(repo)
    assert "more than 3 workspaces" in error


def test_not_a_config_repo(tmp_path: Path) -> None:
    (error,) = render_errors(tmp_path)
    assert "no orgs/ directory" in error


def test_secrets_checked_when_a_store_is_given(write_repo: WriteRepo, tmp_path: Path) -> None:
    from reconciler.secrets import SecretStore

    org = ORG.replace("    tier: canary\n", "    tier: canary\n    secrets: [API_KEY, OTHER]\n")
    repo = base_repo(write_repo, org)
    secrets_dir = tmp_path / "secrets"
    (secrets_dir / "acme" / "lead-agent").mkdir(parents=True)
    (secrets_dir / "acme" / "lead-agent" / "API_KEY").write_text("sk-very-secret-value\n")
    store = SecretStore.open(secrets_dir, tmp_path / "state")
    (error,) = render_errors(repo, secrets=store)
    assert "secret OTHER not found in the secrets directory" in error and "API_KEY" not in error
    (secrets_dir / "OTHER").write_text("shared")
    lead = render_ok(repo, secrets=store).by_id()["acme/lead-agent"]
    assert "sk-very-secret-value" not in lead.model_dump_json()
    (secrets_dir / "acme" / "lead-agent" / "API_KEY").write_text("sk-rotated\n")
    rotated = render_ok(repo, secrets=store).by_id()["acme/lead-agent"]
    assert rotated.spec_hash != lead.spec_hash
    assert {k for k in lead.spec_parts if lead.spec_parts[k] != rotated.spec_parts[k]} == {"secret.API_KEY"}
