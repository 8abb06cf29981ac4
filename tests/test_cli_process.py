"""How ``ckpt`` behaves as a process (issue 13, friction): consistent ``--help`` with examples
and exit codes, ``-h``, shell completion, ``NO_COLOR``/``FORCE_COLOR``, progress bars, one-line
summaries, "interrupted" on Ctrl-C, and a quiet exit when stdout's reader leaves."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ckpt_tool.cli import app, output
from tests.conftest import FIXTURES

runner = CliRunner()
COMMANDS = ["inspect", "lint", "convert", "diff", "rule", "completion"]


def run(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ckpt_tool", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})}, **kwargs)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_examples_exit_codes_and_metavars(command: str) -> None:
    long, short = runner.invoke(app, [command, "--help"]), runner.invoke(app, [command, "-h"])
    assert long.exit_code == short.exit_code == 0
    assert long.stdout == short.stdout
    assert "Examples:" in long.stdout and "Exit codes:" in long.stdout
    assert re.search(r"^\s+0\s+\S", long.stdout, re.M)  # the exit code table starts at 0
    assert not re.search(r"\b(TEXT|INTEGER)\b", long.stdout), long.stdout  # named metavars
    assert "{" not in long.stdout.splitlines()[0]  # PATH..., not {PATH...}
    assert max(len(line) for line in long.stdout.splitlines()) <= 100


def test_top_level_help() -> None:
    result = runner.invoke(app, ["-h"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert f"  {command} " in result.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "powershell"])
def test_completion_script(shell: str) -> None:
    result = runner.invoke(app, ["completion", shell])
    assert result.exit_code == 0 and "_CKPT_COMPLETE" in result.stdout


def test_completion_completes_commands_and_choices() -> None:
    done = run(env={"_CKPT_COMPLETE": "complete_bash", "COMP_WORDS": "ckpt li", "COMP_CWORD": "1"})
    assert done.stdout.split() == ["lint"]
    done = run(env={"_CKPT_COMPLETE": "complete_bash",
                    "COMP_WORDS": "ckpt lint --output-format ", "COMP_CWORD": "3"})
    assert done.stdout.split() == ["concise", "full", "json", "jsonl", "github", "sarif"]


@pytest.mark.parametrize("command", [
    ["inspect", str(FIXTURES / "state_dict.pt")],
    ["lint", str(FIXTURES / "malicious.pt")],
    ["diff", str(FIXTURES / "state_dict.pt"), str(FIXTURES / "legacy.pt")],
])
def test_force_color_and_no_color(command: list[str]) -> None:
    base = {"CI": "", "PRE_COMMIT": "", "NO_COLOR": "", "FORCE_COLOR": ""}
    assert "\x1b[" not in run(*command, env=base).stdout  # a pipe: no colour
    assert "\x1b[" in run(*command, env={**base, "FORCE_COLOR": "1"}).stdout
    assert "\x1b[" not in run(*command, env={**base, "FORCE_COLOR": "1", "NO_COLOR": "1"}).stdout


def test_closed_pipe_is_a_quiet_exit_141() -> None:
    process = subprocess.Popen([sys.executable, "-m", "ckpt_tool", "inspect", "-v",
                                str(FIXTURES / "producers")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline()
    process.stdout.close()
    code = process.wait(timeout=120)
    assert code == 141
    assert process.stderr.read() == b""


def test_ctrl_c_says_interrupted_and_exits_130() -> None:
    """A server that accepts the connection and never answers: ckpt is waiting when Ctrl-C
    comes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted = threading.Event()
    connections: list[socket.socket] = []

    def accept() -> None:
        connection, _ = listener.accept()
        connections.append(connection)
        accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/model.pt"
    process = subprocess.Popen([sys.executable, "-m", "ckpt_tool", "inspect", url],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert accepted.wait(60)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        for connection in connections:
            connection.close()
        listener.close()
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1] == "ckpt: interrupted"
    assert "Traceback" not in stderr


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch):
    """A person at a terminal: progress bars are drawn (on stderr)."""
    monkeypatch.setattr(output, "interactive", lambda stream=None: True)
    monkeypatch.setenv("FORCE_COLOR", "1")


def test_progress_bars_name_the_file(watched, tmp_path: Path) -> None:
    stats = runner.invoke(app, ["inspect", "--stats", str(FIXTURES / "dtypes.pt")])
    assert stats.exit_code == 0 and "statistics" in stats.stderr and "dtypes.pt" in stats.stderr
    values = runner.invoke(app, ["diff", "--values", str(FIXTURES / "state_dict.pt"),
                                 str(FIXTURES / "legacy.pt")])
    assert values.exit_code == 0 and "comparing" in values.stderr
    converted = runner.invoke(app, ["convert", str(FIXTURES / "state_dict.pt"),
                                    str(FIXTURES / "legacy.pt"), "-o", str(tmp_path)])
    assert converted.exit_code == 0, converted.output
    assert "2 of 2 legacy.pt" in converted.stderr


@pytest.mark.parametrize(("command", "start"), [
    (["inspect", str(FIXTURES / "state_dict.pt")], "ckpt inspect: 1 file, 4.7 KB, "),
    (["lint", str(FIXTURES / "state_dict.pt")], "ckpt lint: 1 file checked, nothing to report ("),
    (["diff", str(FIXTURES / "state_dict.pt"), str(FIXTURES / "legacy.pt")],
     "ckpt diff: same-layout: 2 files, "),
])
def test_every_command_ends_with_a_summary_line(command: list[str], start: str) -> None:
    result = runner.invoke(app, command)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(start) and re.search(r"\(\d+\.\d\d s\)$", last), last
    assert runner.invoke(app, [command[0], "-q", *command[1:]]).stderr == ""
