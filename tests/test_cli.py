"""Tests for lwgen.cli: user errors and bad flags exit 2 with one line, bugs keep tracebacks."""

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

CONFIG = textwrap.dedent(
    """
    import ml_collections


    def get_config():
        return ml_collections.ConfigDict({"steps": 1})
    """
)
TOOL = textwrap.dedent(
    """
    from absl import flags
    from ml_collections import config_flags

    from lwgen import cli, errors

    CONFIG = config_flags.DEFINE_config_file("config")
    EXCEPTIONS = {
        "config": errors.ConfigError("config.steps must be >= 1, got 0"),
        "missing": errors.MissingFileError("workdir 'runs/nope' does not exist"),
        "multiline": errors.DataError("first line\\n  second line"),
        "value": ValueError("a bug in lwgen"),
        "xla": RuntimeError("INTERNAL: XLA compilation failed"),
    }
    RAISE = flags.DEFINE_enum("raise", "none", ["none", *EXCEPTIONS], "")


    def main():
        if RAISE.value != "none":
            raise EXCEPTIONS[RAISE.value]
        print("ran with steps", CONFIG.value.steps)


    if __name__ == "__main__":
        cli.run("tool", main)
    """
)


@pytest.fixture(scope="module")
def tool(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    (folder / "config.py").write_text(CONFIG)
    (folder / "tool.py").write_text(TOOL)

    def run_tool(*args):
        return subprocess.run(
            [sys.executable, str(folder / "tool.py"), f"--config={folder / 'config.py'}", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    return run_tool


def test_success_runs_main(tool):
    result = tool("--config.steps=3")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran with steps 3\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--raise=config"], "config.steps must be >= 1, got 0"),
        (["--raise=missing"], "workdir 'runs/nope' does not exist"),
        (["--bogus=1"], "Unknown command line flag 'bogus'"),
        (["--config.nope=1"], "unknown config key in the command line"),
        (["stray"], "unexpected arguments ['stray']"),
        (["--config=no/such/config.py"], "--config: config file 'no/such/config.py' not found"),
        (["--raise=multiline"], "first line second line"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tool, args, message):
    result = tool(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("tool: error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "kind, last_line",
    [
        ("value", "ValueError: a bug in lwgen"),
        ("xla", "RuntimeError: INTERNAL: XLA compilation failed"),
    ],
)
def test_other_exceptions_keep_their_traceback(tool, kind, last_line):
    result = tool(f"--raise={kind}")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == last_line
    assert "tool: error:" not in result.stderr
