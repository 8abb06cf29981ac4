"""ckpt_tool.api: the CLI's JSON for one file, as plain data; errors as data; no hidden state."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ckpt_tool.api import Limits, convert_one, expand_sources, inspect_one, lint_one
from ckpt_tool.cli import app
from tests.conftest import FIXTURES

runner = CliRunner()
SAMPLES = ["checkpoint.pth.tar", "legacy.pt", "model.safetensors", "torchscript.pt",
           "malicious.pt", "custom_model.pt", "metadata.pt", "bigendian.pt", "state_dict.pth",
           "lfs_pointer.pt", "not_a_checkpoint.pt", "formats/dtensor_1rank.pt",
           "policy/numpy_rng.pt", "sharded"]
ADDED = ("path", "error")


def without(document: dict, keys: tuple[str, ...] = ADDED) -> dict:
    return {key: value for key, value in document.items() if key not in keys}


@pytest.mark.parametrize("function", [inspect_one, lint_one], ids=["inspect", "lint"])
@pytest.mark.parametrize("name", SAMPLES)
def test_results_survive_json_and_pickle(function, name: str, canary_dir: Path) -> None:
    result = function(str(FIXTURES / name))
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    assert pickle.loads(pickle.dumps(result)) == result
    assert list(result)[:5] == ["schema", "ckpt_version", "path", "exit_code", "error"]
    assert not (canary_dir / "ckpt_canary.txt").exists()


@pytest.mark.parametrize("name", ["checkpoint.pth.tar", "malicious.pt", "legacy.pt",
                                  "not_a_checkpoint.pt", "model.safetensors"])
def test_lint_one_is_what_the_cli_prints_for_that_file(name: str) -> None:
    path = str(FIXTURES / name)
    printed = runner.invoke(app, ["lint", "--format", "json", path])
    assert without(json.loads(printed.stdout)) == without(lint_one(path, config=True))
    lines = runner.invoke(app, ["lint", "--format", "jsonl", path])
    assert json.loads(lines.stdout) == lint_one(path, config=True)
    assert printed.exit_code == lines.exit_code == lint_one(path)["exit_code"]


@pytest.mark.parametrize("name", ["checkpoint.pth.tar", "legacy.pt", "lfs_pointer.pt",
                                  "sharded/model.safetensors.index.json"])
def test_inspect_one_is_what_the_cli_prints_for_that_file(name: str) -> None:
    path = str(FIXTURES / name)
    printed = runner.invoke(app, ["inspect", "--json", path])
    document = json.loads(printed.stdout)
    assert without(document) == without(inspect_one(path))
    assert printed.exit_code == inspect_one(path)["exit_code"]


def test_errors_come_back_as_data_never_raised(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    missing = str(tmp_path / "missing.pt")
    assert inspect_one(missing)["error"] == {"message": "No such file or directory",
                                             "exit_code": 2}
    assert inspect_one(missing)["files"][0]["error"] == "No such file or directory"
    assert lint_one(missing)["findings"][0]["code"] == "CKPT006"  # unreadable is a finding
    state = str(FIXTURES / "state_dict.pt")
    bad = {
        "unknown rule": lint_one(state, select="CKPT999"),
        "unknown limit": inspect_one(state, limits={"max_bytes": 1}),
        "bad limit": lint_one(state, limits={"max_depth": 0}),
        "limits not a dict": inspect_one(state, limits=[1]),
        "bad sort": inspect_one(state, sort="colour"),
        "convert a URL": convert_one("https://example.invalid/model.pt", tmp_path / "x"),
        "bad target": convert_one(state, tmp_path / "x", to="onnx"),
        "bad combination": convert_one(state, tmp_path / "x.pt", to="pt", dtype="bf16"),
    }
    for what, result in bad.items():
        assert result["exit_code"] == 2, what
        assert result["error"]["exit_code"] == 2 and result["error"]["message"], what

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("ckpt_tool.api.lint.check_file", broken)
    monkeypatch.setattr("ckpt_tool.api.inspect.inspect_file", broken)
    monkeypatch.delenv("CKPT_DEBUG", raising=False)
    for result in (lint_one(state), inspect_one(state)):
        assert result["exit_code"] == 2
        assert result["error"]["message"].startswith("internal error: RuntimeError: a bug")


def test_limits_as_a_dict_or_a_dataclass() -> None:
    path = str(FIXTURES / "checkpoint.pth.tar")
    for limits in ({"max_opcodes": 5}, Limits(max_opcodes=5)):
        assert inspect_one(path, limits=limits)["exit_code"] == 2
        assert [f["code"] for f in lint_one(path, limits=limits)["findings"]] == ["CKPT006"]
    assert inspect_one(path, limits={"max_opcodes": 10_000})["exit_code"] == 0


def test_no_configuration_is_read_unless_asked(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.ckpt.lint]\nignore = ["CKPT002"]\n')
    monkeypatch.chdir(tmp_path)
    path = str(FIXTURES / "malicious.pt")
    codes = {f["code"] for f in lint_one(path)["findings"]}
    assert "CKPT002" in codes
    assert "CKPT002" not in {f["code"] for f in lint_one(path, config=True)["findings"]}
    assert "CKPT002" not in {f["code"] for f in lint_one(path, config=tmp_path)["findings"]}
    assert "CKPT002" in {f["code"] for f in lint_one(path)["findings"]}  # nothing kept


def test_rule_selection_and_allowed_globals_are_arguments() -> None:
    path = str(FIXTURES / "custom_model.pt")
    assert {f["code"] for f in lint_one(path)["findings"]} == {"CKPT003", "CKPT004"}
    assert {f["code"] for f in lint_one(path, select="CKPT003")["findings"]} == {"CKPT003"}
    assert {f["code"] for f in lint_one(path, ignore=["CKPT003", "CKPT004"])["findings"]} == set()
    allowed = lint_one(path, allowed_globals=["fixture_models.TinyNet",
                                       "torch.nn.modules.linear.*"])
    assert allowed["findings"] == [] and allowed["exit_code"] == 0


def test_lint_reports_what_reading_cost() -> None:
    path = FIXTURES / "checkpoint.pth.tar"
    result = lint_one(str(path))
    assert result["reads"] == [{"path": str(path), "size": path.stat().st_size,
                                "bytes_read": result["reads"][0]["bytes_read"], "requests": 0}]
    assert 0 < result["summary"]["bytes_read"] <= path.stat().st_size


def test_convert_one_writes_and_reports(tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    source = tmp_path / "model.pt"
    source.write_bytes((FIXTURES / "checkpoint.pth.tar").read_bytes())
    result = convert_one(source)  # beside the source
    assert result["exit_code"] == 0 and result["error"] is None
    entry = result["files"][0]
    assert entry["outputs"] == [str(tmp_path / "model.safetensors")]
    assert entry["action"] == "safetensors" and entry["tensors"] > 0
    assert 0 < entry["bytes_written"] < (tmp_path / "model.safetensors").stat().st_size
    assert json.loads(json.dumps(result)) == result == pickle.loads(pickle.dumps(result))
    again = convert_one(source)  # the output exists: an error, the file kept
    assert again["exit_code"] == 2 and "exists" in again["error"]["message"]
    printed = runner.invoke(app, ["convert", "--json", "--force", str(source)])
    assert without(json.loads(printed.stdout)) == without(convert_one(source, force=True))


def test_expand_sources_walks_folders_without_configuration() -> None:
    rows = expand_sources([FIXTURES / "sharded", str(FIXTURES / "legacy.pt")])
    # the shards and their index are one model, read through the index
    assert [Path(row["path"]).name for row in rows] == ["model.safetensors.index.json",
                                                         "legacy.pt"]
    assert all(set(row) == {"path", "size", "error"} for row in rows)


def test_importing_the_api_loads_neither_rich_nor_torch() -> None:
    code = ("import sys, ckpt_tool.api; "
            "print(sorted(m for m in ('rich', 'torch', 'typer', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
