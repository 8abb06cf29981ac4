"""``ckpt diff`` (issue 13, points 1-3): an honest verdict without ``--values``, the README's
lossless check on a model with tied weights, and every input inspect accepts, sorted output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from typer.testing import CliRunner

from ckpt_tool.cli import app
from tests.conftest import FIXTURES

runner = CliRunner()
GPT2_BIN = FIXTURES / "producers" / "transformers4" / "gpt2-bin" / "pytorch_model.bin"


def ckpt(*args: str):
    return runner.invoke(app, list(args))


def diff_json(*args: str) -> tuple[int, dict]:
    result = ckpt("diff", "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def test_same_layout_different_values_is_not_called_equal(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save({"w": torch.zeros(4, 4)}, a)
    torch.save({"w": torch.ones(4, 4)}, b)
    layout = ckpt("diff", str(a), str(b))
    assert layout.exit_code == 0, layout.output
    assert "values not compared" in layout.stdout
    assert "same names, dtypes and shapes" in layout.stdout
    assert "equal" not in layout.stdout.replace("same names", "")
    code, doc = diff_json(str(a), str(b))
    assert (code, doc["schema"], doc["verdict"], doc["equal"], doc["compared"]) == (
        0, 2, "same-layout", None, "layout")
    values = ckpt("diff", "--values", str(a), str(b))
    assert values.exit_code == 1 and "different" in values.stdout
    code, doc = diff_json("--values", str(a), str(b))
    assert (code, doc["verdict"], doc["equal"]) == (1, "different", False)


def test_equal_only_after_comparing_values() -> None:
    code, doc = diff_json("--values", str(FIXTURES / "state_dict.pt"), str(FIXTURES / "legacy.pt"))
    assert (code, doc["verdict"], doc["equal"], doc["compared"]) == (0, "equal", True, "values")
    result = ckpt("diff", "--values", str(FIXTURES / "state_dict.pt"), str(FIXTURES / "legacy.pt"))
    assert "equal: 8 tensors identical or allclose" in result.stdout


def test_readme_lossless_check_passes_on_gpt2_with_tied_weights(tmp_path: Path,
                                                               monkeypatch) -> None:
    """``ckpt convert m.pt --to safetensors && ckpt diff --values m.pt m.safetensors`` on a real
    transformers GPT-2 (lm_head.weight tied to transformer.wte.weight)."""
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(GPT2_BIN, "m.pt")
    converted = ckpt("convert", "m.pt", "--to", "safetensors")
    assert converted.exit_code == 0, converted.output
    assert "lm_head.weight -> transformer.wte.weight" in converted.stdout
    result = ckpt("diff", "--values", "m.pt", "m.safetensors")
    assert result.exit_code == 0, result.output
    code, doc = diff_json("--values", "m.pt", "m.safetensors")
    assert (code, doc["verdict"]) == (0, "equal")
    assert doc["aliases_b"] == {"lm_head.weight": "transformer.wte.weight"}
    assert "lm_head.weight" in {t["name"] for t in doc["tensors"]}
    assert doc["metadata"]["only_b"] == []  # the alias is not user metadata
    assert doc["only_a"] == doc["only_b"] == []


def test_a_changed_tied_weight_is_a_difference(tmp_path: Path) -> None:
    embed = torch.randn(8, 4)
    source = tmp_path / "m.pt"
    torch.save({"embed.weight": embed, "lm_head.weight": embed}, source)
    assert ckpt("convert", str(source)).exit_code == 0
    other = tmp_path / "other.pt"
    torch.save({"embed.weight": embed, "lm_head.weight": embed + 1}, other)
    code, doc = diff_json("--values", str(other), str(tmp_path / "m.safetensors"))
    assert code == 1
    row = next(t for t in doc["tensors"] if t["name"] == "lm_head.weight")
    assert row["allclose"] is False


def test_folders_and_indexes_are_accepted_like_inspect() -> None:
    folder, index = FIXTURES / "sharded", FIXTURES / "sharded" / "model.safetensors.index.json"
    code, doc = diff_json("--values", str(folder), str(index))
    # The folder and the index are each one model, read merged from its two shards.
    assert (code, doc["verdict"], doc["files_a"], doc["files_b"]) == (0, "equal", 1, 1)
    assert len(doc["tensors"]) == len(json.loads(index.read_text())["weight_map"])


def test_shards_compare_with_the_single_file_they_were_split_from(tmp_path: Path) -> None:
    source = tmp_path / "whole.pt"
    torch.save({f"layers.{i}.weight": torch.randn(64, 64) for i in range(6)}, source)
    out = tmp_path / "out" / "model.safetensors"
    out.parent.mkdir()
    assert ckpt("convert", str(source), "-o", str(out), "--shard-size", "40KB").exit_code == 0
    index = tmp_path / "out" / "model.safetensors.index.json"
    assert index.exists()
    for other in (index, tmp_path / "out"):
        code, doc = diff_json("--values", str(source), str(other))
        assert (code, doc["verdict"]) == (0, "equal"), doc


def test_a_folder_of_several_checkpoints_compares_file_by_file(tmp_path: Path) -> None:
    for run, scale in (("a", 1.0), ("b", 2.0)):
        for step in ("checkpoint-1", "checkpoint-2"):
            (tmp_path / run / step).mkdir(parents=True)
            torch.save({"w": torch.ones(3) * scale}, tmp_path / run / step / "model.pt")
    code, doc = diff_json("--values", str(tmp_path / "a"), str(tmp_path / "b"))
    assert code == 1
    assert [t["name"] for t in doc["tensors"]] == ["checkpoint-1/model.pt:w",
                                                  "checkpoint-2/model.pt:w"]


def test_output_is_sorted_and_the_same_on_every_run(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    keys = [f"k{i}" for i in (5, 1, 9, 3, 7, 2)]
    torch.save({"w": torch.ones(1), **{k: i for i, k in enumerate(keys)}}, a)
    torch.save({"w": torch.ones(1), **{k: -i for i, k in enumerate(keys)}, "z": 1, "b": 2}, b)
    runs = {ckpt("diff", "--json", str(a), str(b)).stdout for _ in range(3)}
    assert len(runs) == 1
    doc = json.loads(runs.pop())
    changed = [entry["key"] for entry in doc["metadata"]["changed"]]
    assert changed == sorted(changed) and len(changed) == 5  # k5 is 0 on both sides
    assert doc["metadata"]["only_b"] == ["b", "z"]
    human = {ckpt("diff", str(a), str(b)).stdout for _ in range(3)}
    assert len(human) == 1
