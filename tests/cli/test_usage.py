"""Usage errors exit 64 (EX_USAGE) with one line on stderr, never a traceback or click's 2; `--version`;
shell completion answers. The real process for the contract, in-process (same `main`) for the breadth."""

from __future__ import annotations

from importlib import metadata

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from tests.cli.conftest import reconciler


def assert_usage_error(code: int, stdout: str, stderr: str, *needles: str) -> None:
    assert code == 64, (stdout, stderr)
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in stderr and stdout == ""
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_an_unknown_option_is_one_line_and_exit_64() -> None:
    done = reconciler("plan", "--source", "x", "--no-such-flag")
    assert_usage_error(done.returncode, done.stdout, done.stderr, "No such option: --no-such-flag",
                       "(see 'reconciler plan --help')")


@pytest.mark.parametrize("env", [{}, {"RECONCILER_LOG_LEVEL": "verbose"}])
def test_log_level_verbose_is_a_usage_error_not_a_traceback(env: dict[str, str]) -> None:
    args = ["run", "--source", "x"] + ([] if env else ["--log-level", "verbose"])
    done = reconciler(*args, env=env)
    assert_usage_error(done.returncode, done.stdout, done.stderr, "--log-level", "'verbose' is not one of",
                       *(["RECONCILER_LOG_LEVEL"] if env else []))


@pytest.mark.parametrize(("args", "needles"), [
    (["apply", "--source", "x", "--mode", "bogus"], ["--mode", "'bogus' is not one of 'reconcile', 'merge'"]),
    (["plan"], ["Missing option '--source'"]),
    (["validate"], ["SOURCE"]),
    (["validate", "a", "--source", "b"], ["SOURCE", "give one"]),
    (["validate", "a", "b"], ["unexpected extra argument"]),
    (["apply", "--source", "x", "--concurrency", "0"], ["--concurrency"]),
    (["plan", "--source", "x", "--exit-code=maybe"], ["--exit-code"]),
    (["no-such-command"], ["No such command 'no-such-command'"]),
])
def test_every_kind_of_usage_error_is_one_line_and_exit_64(args: list[str], needles: list[str]) -> None:
    result = CliRunner().invoke(app, args, prog_name="reconciler", env={"RECONCILER_SOURCE": None})
    assert_usage_error(result.exit_code, result.stdout, result.stderr, *needles)


def test_no_command_shows_the_help_and_exits_64() -> None:
    result = CliRunner().invoke(app, [], prog_name="reconciler")
    assert result.exit_code == 64
    assert "Usage: reconciler" in result.stdout and "validate" in result.stdout


def test_version_prints_the_package_version() -> None:
    done = reconciler("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"reconciler {metadata.version('reconciler')}\n"


def test_shell_completion_completes_commands_and_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    words = {"_RECONCILER_COMPLETE": "complete_bash", "COMP_WORDS": "reconciler pl", "COMP_CWORD": "1"}
    assert reconciler(env=words).stdout.split() == ["plan"]
    runner = CliRunner()
    words = {"_RECONCILER_COMPLETE": "complete_bash", "COMP_WORDS": "reconciler run --log-level ", "COMP_CWORD": "3"}
    assert runner.invoke(app, [], prog_name="reconciler", env=words).stdout.split() == [
        "DEBUG", "INFO", "WARNING", "ERROR"]
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")  # read as the command is built
    for shell, marker in (("bash", "complete -o default -F _reconciler_completion reconciler"),
                          ("zsh", "#compdef reconciler")):
        script = runner.invoke(app, ["--show-completion", shell], prog_name="reconciler")
        assert script.exit_code == 0 and marker in script.stdout, script.output
