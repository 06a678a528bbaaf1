"""The documentation stays true to the code: the configuration reference is what the generator writes
from the schemas, every metric the daemon exports is documented, relative links lead somewhere, and
the pre-commit hook and the Gitea workflow name commands that exist."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from devtools import config_reference
from reconciler.cli import app
from reconciler.daemon.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLE = ROOT / "examples" / "org-repo"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_config_reference_is_what_the_generator_writes() -> None:
    assert config_reference.OUTPUT == DOCS / "config-reference.md"
    assert config_reference.OUTPUT.read_text() == config_reference.render(), (
        "docs/config-reference.md is stale: run python -m devtools.config_reference")
    assert config_reference.main(["--check"]) == 0


def test_the_config_reference_has_every_key_of_every_schema() -> None:
    from reconciler.render import schema

    text = config_reference.render()
    for name in schema.FILES:
        generated = schema.generate(name)
        defs = {n: d for n, d in generated.get("$defs", {}).items() if n not in config_reference.TAGS}
        objects = [generated, *defs.values()]
        for key in {k for o in objects for k in o.get("properties", {})}:
            assert f"| `{key}` |" in text, f"{name}: {key}"


def test_every_exported_metric_is_in_the_operations_guide() -> None:
    guide = (DOCS / "operations.md").read_text()
    families = {m.name for m in Metrics().registry.collect()}
    assert families  # names without the _total suffix of counters
    for family in families:
        assert re.search(rf"`{re.escape(family)}(_total)?`", guide), f"{family} is not in docs/operations.md"


def _links(page: Path) -> list[str]:
    """Link targets of a Markdown page, code blocks and code spans left out."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return LINK.findall(re.sub(r"`[^`\n]*`", "", text))


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text()
    return ({_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
            | set(re.findall(r'<a id="([^"]+)"></a>', text)))


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_relative_links_lead_to_a_file_and_an_anchor(page: Path) -> None:
    for target in _links(page):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        assert path.exists(), f"{page.name}: {target}"
        assert ROOT in path.parents or path == ROOT, f"{page.name}: {target} leaves the repository"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path), f"{page.name}: {target}: no such anchor"


def test_the_readme_links_every_page_of_docs() -> None:
    readme = ROOT / "README.md"
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in _links(readme)}
    for page in DOCS.glob("*.md"):
        assert page.resolve() in linked, f"README does not link {page.relative_to(ROOT)}"


def _hook() -> dict[str, Any]:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert isinstance(hooks, list)
    (hook,) = [h for h in hooks if h["id"] == "reconciler-validate"]
    return dict(hook)


def test_the_pre_commit_hook_names_an_existing_command() -> None:
    hook = _hook()
    assert hook["language"] == "python" and hook["pass_filenames"] is False
    program, command = shlex.split(hook["entry"])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[program] == "reconciler.cli:app"  # what `pip install` of this repository puts on PATH
    assert command in {c.name for c in app.registered_commands}
    assert CliRunner().invoke(app, [command, "--help"]).exit_code == 0


def test_the_pre_commit_hook_passes_on_the_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = _hook()
    monkeypatch.chdir(EXAMPLE)
    monkeypatch.setenv("RECONCILER_POLICY", str(ROOT / "examples" / "policy.yaml"))
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(app, [*shlex.split(hook["entry"])[1:], *hook.get("args", [])])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("valid: ")


def test_the_gitea_workflow_validates_every_change_and_plans_pull_requests() -> None:
    workflow = yaml.safe_load((EXAMPLE / ".gitea" / "workflows" / "validate.yaml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"push", "pull_request"}
    jobs = workflow["jobs"]
    runs = {name: [step.get("run", "") for step in job["steps"]] for name, job in jobs.items()}
    uses = {name: [step.get("uses", "") for step in job["steps"]] for name, job in jobs.items()}
    assert any(u.startswith("actions/checkout@") for u in uses["validate"])
    assert any("pip install" in r for r in runs["validate"])
    assert "reconciler validate . --format github" in runs["validate"]
    assert "pull_request" in jobs["plan"]["if"]
    assert any(r.startswith("reconciler plan ") and "--format github" in r for r in runs["plan"])
    for command in ("validate", "plan"):
        assert command in {c.name for c in app.registered_commands}
