"""``ckpt diff``: exit 0 when equal under the chosen comparison, 1 when different, 2 on error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from ckpt_tool.cli import app
from tests.conftest import FIXTURES

runner = CliRunner()


def diff(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["diff", "--json", *args])
    return result.exit_code, (json.loads(result.stdout) if result.stdout.strip() else {})


@pytest.fixture
def weights(tmp_path: Path) -> dict[str, torch.Tensor]:
    return torch.load(FIXTURES / "checkpoint.pth.tar", weights_only=True)["state_dict"]


def test_same_weights_in_two_torch_formats_are_equal() -> None:
    code, doc = diff("--values", str(FIXTURES / "state_dict.pt"), str(FIXTURES / "legacy.pt"))
    assert code == 0 and doc["equal"]
    assert all(t["identical"] for t in doc["tensors"]) and len(doc["tensors"]) == 8


def test_converted_safetensors_matches_its_source_under_the_root(weights, tmp_path) -> None:
    out = tmp_path / "model.safetensors"
    save_file(weights, str(out), metadata={"format": "pt", "epoch": "90"})
    code, doc = diff("--values", str(FIXTURES / "checkpoint.pth.tar"), str(out))
    assert code == 0, doc
    assert doc["mapping"] == "A's names under 'state_dict.'"
    assert len(doc["outside_a"]) == 5  # the optimizer's state: not part of the weights


def test_changed_values_report_the_difference(weights, tmp_path) -> None:
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_file(weights, str(a))
    changed = dict(weights, **{"fc.bias": weights["fc.bias"] + 1e-3})
    save_file(changed, str(b))
    code, doc = diff("--values", str(a), str(b))
    assert code == 1
    row = next(t for t in doc["tensors"] if t["name"] == "fc.bias")
    expected = (changed["fc.bias"] - weights["fc.bias"]).abs().max().item()
    assert row["identical"] is False and row["allclose"] is False
    assert row["max_abs"] == pytest.approx(expected, rel=1e-6)
    assert diff("--values", "--atol", "1e-2", str(a), str(b))[0] == 0
    assert diff(str(a), str(b))[0] == 0  # without --values only names, dtypes, shapes count


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param(lambda w: {**w, "fc.bias": w["fc.bias"].to(torch.bfloat16)}, "dtype_b",
                     id="dtype"),
        pytest.param(lambda w: {**w, "fc.bias": torch.zeros(11)}, "shape_b", id="shape"),
        pytest.param(lambda w: {k: v for k, v in w.items() if k != "fc.bias"}, None, id="missing"),
    ],
)
def test_layout_changes_are_differences(weights, tmp_path, change, field) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(weights, a)
    torch.save(change(weights), b)
    code, doc = diff(str(a), str(b))
    assert code == 1
    if field is None:
        assert doc["only_a"] == ["fc.bias"]
    else:
        row = next(t for t in doc["tensors"] if t["name"] == "fc.bias")
        assert row[field] != row[field.replace("_b", "_a")]


def test_metadata_change_is_a_difference(tmp_path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save({"epoch": 90, "w": torch.ones(2)}, a)
    torch.save({"epoch": 91, "w": torch.ones(2)}, b)
    code, doc = diff(str(a), str(b))
    assert code == 1 and doc["metadata"]["changed"] == [{"key": "epoch", "a": 90, "b": 91}]


def test_big_endian_equals_little_endian_by_value(tmp_path) -> None:
    little = tmp_path / "little.pt"
    torch.save(torch.load(FIXTURES / "bigendian.pt", weights_only=True), little)
    code, doc = diff("--values", str(FIXTURES / "bigendian.pt"), str(little))
    assert code == 0
    assert {t["identical"] for t in doc["tensors"]} == {False}  # same values, swapped bytes


def test_unreadable_input_is_exit_2() -> None:
    result = runner.invoke(app, ["diff", str(FIXTURES / "lfs_pointer.pt"),
                                 str(FIXTURES / "state_dict.pt")])
    assert result.exit_code == 2 and "git lfs pull" in result.stderr
