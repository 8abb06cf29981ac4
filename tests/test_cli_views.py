"""What people read (issue 13, friction, and issue 11 item 6): 80-column terminals, pipes, one
row per file for several files, the model's parameters apart from training state, name warnings
in inspect, and names from a hostile file shown, never obeyed, by every command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ckpt_tool.cli import app, output
from tests.conftest import FIXTURES

runner = CliRunner()
LONG = "model.encoder.layers.{}.self_attention.query_key_value.weight_quantization_scale"


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch):
    """stdout is an 80-column terminal (without colour, to measure the lines)."""
    monkeypatch.setattr(output, "_isatty", lambda stream: True)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("PRE_COMMIT", raising=False)


@pytest.fixture
def long_names(tmp_path: Path) -> Path:
    path = tmp_path / "long.pt"
    torch.save({LONG.format(i): torch.zeros(4096, 1024, dtype=torch.bfloat16) for i in range(3)},
               path)
    return path


def test_80_columns_keep_names_on_one_line(terminal, long_names: Path) -> None:
    result = runner.invoke(app, ["inspect", "--expand", "--stats", str(long_names)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = [line for line in lines if "…" in line and "bfloat16" in line]
    assert len(rows) == 3  # one row per tensor, shortened in the middle, never wrapped
    for index, row in enumerate(rows):  # whole parts left out, the layer number kept
        assert row.startswith(f"model.….layers.{index}.….weight_quantization_scale  ")
    stats_rows = [line for line in lines if "…" in line and "bfloat16" not in line]
    assert len(stats_rows) == 3  # the statistics, as their own narrow table


def test_a_pipe_gets_whole_names_and_no_padding(long_names: Path) -> None:
    result = runner.invoke(app, ["inspect", "--expand", str(long_names)])
    lines = result.stdout.splitlines()
    assert sum(LONG.format(i) in result.stdout for i in range(3)) == 3
    assert not any(line.endswith(" ") for line in lines)
    assert max(len(line) for line in lines) < 200


def test_several_files_are_one_row_each_and_shards_one_model(tmp_path: Path) -> None:
    for name in ("state_dict.pt", "checkpoint.pth.tar", "legacy.pt"):
        shutil.copyfile(FIXTURES / name, tmp_path / name)
    shutil.copytree(FIXTURES / "sharded", tmp_path / "sharded")
    result = runner.invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"files in {tmp_path}"
    assert lines[1].split() == ["file", "format", "tensors", "params", "size", "dtypes",
                                "weights_only"]
    rows = lines[3:-1]
    assert len(rows) == 4, result.stdout
    shards = next(row for row in rows if "model.safetensors.index.json (2 shards)" in row)
    assert "safetensors" in shards
    assert "structure" not in result.stdout  # the full views only with -v
    verbose = runner.invoke(app, ["inspect", "-v", str(tmp_path)])
    assert verbose.stdout.count("structure") == 4  # the two shards are one model, read merged
    assert "files" in lines[-1] and "parameters" in lines[-1]


def test_parameters_apart_from_training_state() -> None:
    result = runner.invoke(app, ["inspect", str(FIXTURES / "checkpoint.pth.tar")])
    assert "parameters       339 in 'state_dict'" in result.stdout
    assert "training state   322 elements" in result.stdout
    optimizer = FIXTURES / "producers" / "transformers" / "trainer" / "checkpoint-2" / \
        "optimizer.pt"
    entry = json.loads(runner.invoke(app, ["inspect", "--json", str(optimizer)]).stdout)
    entry = entry["files"][0]
    assert entry["parameter_count"] == 0 and entry["training_state_count"] > 0


def test_inspect_shows_name_warnings(tmp_path: Path) -> None:
    pth = tmp_path / "model.pth"
    shutil.copyfile(FIXTURES / "state_dict.pt", pth)
    wrong = tmp_path / "model.pt"
    shutil.copyfile(FIXTURES / "model.safetensors", wrong)
    result = runner.invoke(app, ["inspect", "-v", str(pth), str(wrong)])
    assert "named *.pth: Python's site module reads *.pth files" in result.stdout
    assert "[CKPT001]" in result.stdout
    assert "a safetensors file named .pt" in result.stdout and "[CKPT007]" in result.stdout
    files = json.loads(runner.invoke(app, ["inspect", "--json", str(pth)]).stdout)["files"]
    assert [w["code"] for w in files[0]["warnings"]] == ["CKPT001"]


CLEAR_SCREEN = "\x1b[2J"
HOSTILE = {f"weight{CLEAR_SCREEN}": torch.ones(2), "note": f"\x1b]0;owned\x07{CLEAR_SCREEN}",
           f"rtl\u202e{CLEAR_SCREEN}": torch.zeros(1)}


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    torch.save(HOSTILE, tmp_path / "hostile.pth")
    torch.save({k: v + 1 if isinstance(v, torch.Tensor) else v for k, v in HOSTILE.items()},
               tmp_path / "other.pt")
    return tmp_path


@pytest.mark.parametrize("command", [
    pytest.param(["inspect", "-v", "--stats", "hostile.pth", "other.pt"], id="inspect"),
    pytest.param(["inspect", "hostile.pth", "other.pt"], id="inspect-rows"),
    pytest.param(["diff", "--values", "hostile.pth", "other.pt"], id="diff"),
    pytest.param(["convert", "hostile.pth", "--to", "safetensors"], id="convert"),
    pytest.param(["convert", "hostile.pth", "--to", "pt"], id="convert-copy"),
    pytest.param(["lint", "--output-format", "full", "hostile.pth"], id="lint"),
])
def test_escape_sequences_are_shown_not_obeyed(hostile: Path, command: list[str]) -> None:
    result = runner.invoke(app, command)
    everything = result.stdout + result.stderr
    assert "\x1b" not in everything and "\x07" not in everything and "\u202e" not in everything
    if command[0] == "diff" or "-v" in command:
        assert "\\x1b[2J" in result.stdout
    if command[0] == "inspect" and "-v" in command:
        assert "weights_only" in result.stdout  # the verdict is still there to read


def test_escapes_in_file_names(tmp_path: Path) -> None:
    odd = tmp_path / f"odd{CLEAR_SCREEN}.pt"
    shutil.copyfile(FIXTURES / "malicious.pt", odd)
    for command in (["inspect"], ["lint"], ["diff", str(FIXTURES / "malicious.pt")]):
        result = runner.invoke(app, [*command, str(odd)])
        assert "\x1b" not in result.stdout + result.stderr
        assert "odd\\x1b[2J.pt" in result.stdout + result.stderr
