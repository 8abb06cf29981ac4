"""``ckpt inspect`` through Typer's CliRunner: the human view and the JSON document."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ckpt_tool.cli import app
from tests.conftest import FIXTURES

runner = CliRunner()


def inspect_json(*args: str) -> dict:
    result = runner.invoke(app, ["inspect", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_human_view_of_training_checkpoint() -> None:
    result = runner.invoke(app, ["inspect", str(FIXTURES / "checkpoint.pth.tar")])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in ("torch-zip", "pickle protocol", "state_dict.conv1.weight", "float32",
                     "[8, 3, 3, 3]", "epoch", "90", "arch", "resnet_tiny", "best_acc1",
                     "momentum", "accepted by torch.load(weights_only=True)", "total: 13 tensors"):
        assert expected in out, expected


def test_json_document_schema() -> None:
    doc = inspect_json(str(FIXTURES / "checkpoint.pth.tar"))
    assert doc["schema"] == 2
    (entry,) = doc["files"]
    assert entry["error"] is None
    # the model's parameters apart from the optimizer's momentum buffers
    assert (entry["parameter_count"], entry["training_state_count"], entry["other_count"],
            entry["element_count"]) == (339, 322, 0, 661)
    assert entry["weights_root"] == "'state_dict'"
    assert doc["total"]["parameters"] == 339 and doc["total"]["elements"] == 661
    assert entry["format"] == "torch-zip"
    assert entry["size"] == (FIXTURES / "checkpoint.pth.tar").stat().st_size
    assert entry["weights_only"] is True
    assert entry["metadata"]["epoch"] == 90
    assert entry["metadata"]["arch"] == "resnet_tiny"
    assert entry["metadata"]["optimizer.param_groups.0.momentum"] == 0.9
    names = [t["name"] for t in entry["tensors"]]
    assert "state_dict.conv1.weight" in names and "optimizer.state.0.momentum_buffer" in names
    conv = next(t for t in entry["tensors"] if t["name"] == "state_dict.conv1.weight")
    assert conv == conv | {"dtype": "float32", "shape": [8, 3, 3, 3], "numel": 216,
                           "nbytes": 864, "device": "cpu"}
    assert all({"module", "name", "safe"} <= set(g) for g in entry["globals"])


def test_json_offsets_point_at_tensor_bytes() -> None:
    path = FIXTURES / "dtypes.pt"
    doc = inspect_json(str(path))
    loaded = torch.load(path, weights_only=True)
    data = path.read_bytes()
    for t in doc["files"][0]["tensors"]:
        expected = loaded[t["name"]].contiguous().view(torch.uint8).numpy().tobytes()
        assert data[t["offset"] : t["offset"] + t["nbytes"]] == expected, t["name"]


def test_numbered_layers_collapse_unless_expand() -> None:
    path = str(FIXTURES / "state_dict.pt")
    collapsed = runner.invoke(app, ["inspect", path]).stdout
    expanded = runner.invoke(app, ["inspect", "--expand", path]).stdout
    assert "layers.{0..3}.weight" in collapsed
    assert "layers.2.weight" not in collapsed
    assert "layers.2.weight" in expanded


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--filter", "*.bias"], ["fc1.bias", "fc2.bias"], id="filter"),
        pytest.param(["--sort", "name", "--limit", "2"], ["fc1.bias", "fc1.weight"],
                     id="sort-name"),
        pytest.param(["--sort", "size", "--limit", "1"], ["fc2.weight"], id="sort-size"),
    ],
)
def test_filter_sort_limit(args: list[str], expected: list[str], tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    torch.save({"fc1.weight": torch.zeros(2, 2), "fc1.bias": torch.zeros(2),
                "fc2.weight": torch.zeros(3, 3), "fc2.bias": torch.zeros(3)}, path)
    doc = inspect_json(*args, str(path))
    assert [t["name"] for t in doc["files"][0]["tensors"]] == expected


def test_safetensors_metadata_and_header_names() -> None:
    entry = inspect_json(str(FIXTURES / "model.safetensors"))["files"][0]
    assert entry["format"] == "safetensors"
    assert entry["metadata"]["__metadata__.format"] == "pt"
    assert entry["weights_only"] is None


def test_namespace_numpy_and_python_values() -> None:
    meta = inspect_json(str(FIXTURES / "metadata.pt"))["files"][0]["metadata"]
    assert meta["args.lr"] == 0.1 and meta["args.arch"] == "resnet18"
    assert meta["np_scalar"] == 0.5 and meta["np_int"] == 3
    assert meta["complex"] == {"real": 1.0, "imag": 2.0}
    assert "numpy array [2, 3]" in meta["np_array"]


def test_whole_model_pickle_named_by_attribute() -> None:
    entry = inspect_json(str(FIXTURES / "custom_model.pt"))["files"][0]
    assert [t["name"] for t in entry["tensors"]] == ["fc1.weight", "fc1.bias", "fc2.weight",
                                                      "fc2.bias"]
    unsafe = {f"{g['module']}.{g['name']}" for g in entry["globals"] if not g["safe"]}
    assert "fixture_models.TinyNet" in unsafe
    assert entry["weights_only"] is False


def test_directory_and_index_inputs_are_one_model() -> None:
    by_dir = inspect_json(str(FIXTURES / "sharded"))
    by_index = inspect_json(str(FIXTURES / "sharded" / "model.safetensors.index.json"))
    assert len(by_index["files"]) == 1 and by_dir["files"] == by_index["files"]
    (model,) = by_index["files"]
    index = json.loads((FIXTURES / "sharded" / "model.safetensors.index.json").read_text())
    assert model["nbytes"] == index["metadata"]["total_size"]
    assert {t["name"] for t in model["tensors"]} == set(index["weight_map"])
    assert sorted(os.path.basename(f["path"]) for f in model["files"]) == [
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.safetensors.index.json"]


def test_stats_match_torch() -> None:
    path = FIXTURES / "dtypes.pt"
    entry = inspect_json("--stats", str(path))["files"][0]
    loaded = torch.load(path, weights_only=True)
    checked = 0
    for t in entry["tensors"]:
        stats = t["stats"]
        tensor = loaded[t["name"]]
        if stats["note"]:
            continue
        values = tensor.to(torch.float64)
        assert stats["min"] == pytest.approx(values.min().item())
        assert stats["max"] == pytest.approx(values.max().item())
        assert stats["mean"] == pytest.approx(values.mean().item())
        assert stats["std"] == pytest.approx(values.std().item())
        checked += 1
    assert checked >= 10  # bf16 and fp8 included


def test_stats_count_nan_and_inf(tmp_path: Path) -> None:
    path = tmp_path / "nan.pt"
    torch.save({"x": torch.tensor([1.0, math.nan, math.inf, -math.inf, 3.0],
                                  dtype=torch.bfloat16)}, path)
    stats = inspect_json("--stats", str(path))["files"][0]["tensors"][0]["stats"]
    assert (stats["nan"], stats["inf"], stats["min"], stats["max"]) == (1, 2, 1.0, 3.0)


@pytest.mark.parametrize("name", ["malicious.pt", "malicious_legacy.pt"])
def test_inspecting_a_malicious_file_runs_nothing(name: str, canary_dir: Path) -> None:
    result = runner.invoke(app, ["inspect", "--stats", str(FIXTURES / name)])
    assert result.exit_code == 0, result.output
    assert "builtins.exec(" in result.stdout and "[not called]" in result.stdout
    entry = inspect_json(str(FIXTURES / name))["files"][0]
    assert {"module": "builtins", "name": "exec", "safe": False} in [
        {k: g[k] for k in ("module", "name", "safe")} for g in entry["globals"]]
    assert not (canary_dir / "ckpt_canary.txt").exists()
