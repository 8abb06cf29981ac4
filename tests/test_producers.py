"""ckpt against real checkpoints written by the libraries ML engineers use.

fixtures/producers/ holds tiny files saved through each library's own save path
(transformers, Lightning, timm, torchvision, diffusers, peft, torchao, accelerate, DeepSpeed,
torch itself), written by fixtures/gen_producers.py in that library's environment.
fixtures/producers/MANIFEST.json records what torch read from each file there: every tensor's
name, dtype, shape and the sha256 of its elements, every plain value, and torch's weights_only
verdict. This test holds ckpt to that record: inspect lists the same tensors and values, the
bytes at its offsets are the tensors, its weights_only verdict is torch's, lint finds no code
execution in stock output, convert to safetensors is bit-exact (and says what it cannot hold).
Where this environment can load a file, the record is held to torch.load here too.

A check that ckpt fails today is listed in KNOWN_GAPS with what is wrong; it runs as a strict
xfail, so the fix that closes the gap turns it into a failure until its line is removed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from ckpt_tool.cli import app
from tests.conftest import FIXTURES

PRODUCERS = FIXTURES / "producers"
MANIFEST: dict[str, dict[str, Any]] = json.loads((PRODUCERS / "MANIFEST.json").read_text())[
    "files"]
FILES = sorted(MANIFEST)
ZERO_RUNS = sorted(p.parent.relative_to(PRODUCERS).as_posix()
                   for p in PRODUCERS.glob("deepspeed/*/consolidated"))
INDEXES = sorted(p.relative_to(PRODUCERS).as_posix() for p in PRODUCERS.rglob("*.index.json"))
runner = CliRunner()

SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "C64": "complex64",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}

# ---- what ckpt gets wrong today: {check: {file: reason}} ------------------------------------
# Each entry is a strict xfail; remove it with the fix that makes the check pass.

KNOWN_GAPS: dict[str, dict[str, str]] = {
    "inspect": {}, "bytes": {}, "values": {}, "weights_only": {}, "lint": {}, "convert": {},
    "convert_skip": {}, "subclass": {}, "index": {}, "index_convert": {},
    "zero": {},
}


def cases(check: str, files: list[str]) -> list[Any]:
    gaps = KNOWN_GAPS[check]
    unknown = set(gaps) - set(files)
    assert not unknown, f"KNOWN_GAPS[{check!r}] names files this check does not run: {unknown}"
    return [pytest.param(name, id=name, marks=[pytest.mark.xfail(strict=True, reason=gaps[name])]
                         if name in gaps else []) for name in files]


# ---- ckpt's view, through the command line ------------------------------------------------


@functools.cache
def inspect_json(name: str) -> dict[str, Any]:
    result = runner.invoke(app, ["inspect", str(PRODUCERS / name), "--json"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)["files"]
    assert entry["error"] is None, entry["error"]
    return entry


def expected_tensors(name: str) -> list[dict[str, Any]]:
    return MANIFEST[name]["tensors"]


def elements_at(path: Path, tensor: dict[str, Any]) -> bytes:
    """The tensor's elements in C order, gathered from the file at ckpt's offset and strides."""
    if tensor["numel"] == 0:
        return b""
    itemsize = tensor["nbytes"] // tensor["numel"]
    data = np.memmap(path, dtype=np.uint8, mode="r")
    view = np.lib.stride_tricks.as_strided(
        data[tensor["offset"]:], shape=(*tensor["shape"], itemsize),
        strides=(*(step * itemsize for step in tensor["stride"]), 1), writeable=False)
    return view.tobytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- the checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", cases("inspect", FILES))
def test_inspect_lists_every_tensor_as_torch_loads_it(name: str) -> None:
    ours = [(t["name"], t["dtype"], t["shape"]) for t in inspect_json(name)["tensors"]]
    theirs = [(t["name"], t["dtype"], t["shape"]) for t in expected_tensors(name)]
    assert sorted(ours) == sorted(theirs)


@pytest.mark.parametrize("name", cases("bytes", [
    name for name in FILES if any("sha256" in t for t in expected_tensors(name))]))
def test_bytes_at_reported_offsets_are_the_tensors(name: str) -> None:
    ours = {t["name"]: t for t in inspect_json(name)["tensors"]}
    for expected in expected_tensors(name):
        if "sha256" not in expected:
            continue
        got = ours.get(expected["name"])
        assert got is not None, f"{expected['name']} is not listed"
        assert got["offset"] is not None, f"{expected['name']}: no offset"
        digest = sha256(elements_at(PRODUCERS / name, got))
        assert digest == expected["sha256"], expected["name"]


@pytest.mark.parametrize("name", cases("values", [n for n in FILES if MANIFEST[n]["values"]]))
def test_inspect_shows_every_plain_value(name: str) -> None:
    """Numbers, strings and None (hyperparameters, epochs, optimizer settings, module
    attributes), under the names and with the values torch.load gives them."""
    metadata = inspect_json(name)["metadata"]
    expected = MANIFEST[name]["values"]
    assert {key: metadata.get(key, "<missing>") for key in expected} == expected


@pytest.mark.parametrize("name", cases("weights_only", FILES))
def test_weights_only_verdict_is_torchs(name: str) -> None:
    assert inspect_json(name)["weights_only"] == MANIFEST[name]["weights_only"]["accepted"]


@pytest.mark.parametrize("name", cases("lint", FILES))
def test_lint_does_not_call_stock_output_code_execution(name: str) -> None:
    result = runner.invoke(app, ["lint", str(PRODUCERS / name), "--format", "json",
                                 "--select", "CKPT002"])
    findings = json.loads(result.stdout)["findings"]
    assert [f["message"] for f in findings if f["code"] == "CKPT002"] == []
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("folder", sorted({name.split("/")[0] for name in FILES}))
def test_lint_of_a_folder_checks_every_checkpoint_in_it(folder: str) -> None:
    """``ckpt lint DIR`` finds every file torch would load (.bin, .pkl, .ckpt, .pth.tar...)
    and no other: the folders also hold JSON, scripts and DeepSpeed's ``latest``."""
    result = runner.invoke(app, ["lint", str(PRODUCERS / folder), "--select", "CKPT002"])
    checked = re.search(r"of (\d+) files?|(\d+) files? checked", result.output)
    assert checked, result.output
    count = int(checked.group(1) or checked.group(2))
    assert count == sum(name.startswith(f"{folder}/") for name in FILES)


def convertible(name: str) -> bool:
    """A torch file whose tensors safetensors can hold (dense, not quantized or subclassed)."""
    tensors = expected_tensors(name)
    return (MANIFEST[name]["loader"] != "safetensors" and bool(tensors)
            and all("kind" not in t for t in tensors))


def read_safetensors(path: Path) -> dict[str, tuple[str, list[int], str]]:
    """{name: (dtype, shape, sha256 of the bytes)}, read from the format's header."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    header.pop("__metadata__", None)
    body = raw[8 + length:]
    return {key: (SAFETENSORS_DTYPES[info["dtype"]], info["shape"],
                  sha256(body[info["data_offsets"][0]:info["data_offsets"][1]]))
            for key, info in header.items()}


@pytest.mark.parametrize("name", cases("convert", [n for n in FILES if convertible(n)]))
def test_convert_to_safetensors_is_bit_exact(name: str, tmp_path: Path) -> None:
    out = tmp_path / "out.safetensors"
    result = runner.invoke(app, ["convert", str(PRODUCERS / name), "--to", "safetensors",
                                 "-o", str(out), "--all", "--include-optimizer", "--copy-shared",
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    written = read_safetensors(out)
    expected = {t["name"]: (t["dtype"], t["shape"], t["sha256"]) for t in expected_tensors(name)}
    assert written == expected


def has_unconvertible(name: str) -> bool:
    tensors = expected_tensors(name)
    return MANIFEST[name]["loader"] != "safetensors" and any("kind" in t for t in tensors)


@pytest.mark.parametrize("name", cases("convert_skip", [n for n in FILES if has_unconvertible(n)]))
def test_convert_refuses_what_safetensors_cannot_hold_and_keeps_the_rest(
    name: str, tmp_path: Path
) -> None:
    source = str(PRODUCERS / name)
    out = tmp_path / "out.safetensors"
    options = ["--to", "safetensors", "-o", str(out), "--all", "--include-optimizer",
               "--copy-shared"]
    refused = runner.invoke(app, ["convert", source, *options])
    assert refused.exit_code == 2
    assert not out.exists()
    result = runner.invoke(app, ["convert", source, *options, "--skip-unsupported"])
    assert result.exit_code == 0, result.output
    skipped = [t["name"] for t in expected_tensors(name) if "kind" in t]
    assert all(f"{tensor}:" in result.output for tensor in skipped), result.output
    expected = {t["name"]: (t["dtype"], t["shape"], t["sha256"])
                for t in expected_tensors(name) if "kind" not in t}
    assert read_safetensors(out) == expected


@pytest.mark.parametrize("name", cases("subclass", [
    name for name in FILES if any(t.get("kind") == "subclass" for t in expected_tensors(name))]))
def test_tensor_subclass_keeps_its_inner_tensors(name: str) -> None:
    """A wrapper subclass (torchao) has no storage of its own: its data are the inner tensors
    of ``__tensor_flatten__``, which ckpt's model must keep where the bytes are."""
    from ckpt_tool.model.tree import named_tensors
    from ckpt_tool.readers import open_checkpoint

    ours = dict(named_tensors(open_checkpoint(PRODUCERS / name).root))
    for expected in expected_tensors(name):
        if expected.get("kind") != "subclass":
            continue
        tensor = ours[expected["name"]]
        assert tensor.kind == "subclass"
        assert tensor.extra["type"] == expected["type"]
        state = tensor.extra["state"]
        for component in expected["components"]:
            inner = state[component["name"]]
            assert (inner.dtype.name, list(inner.shape)) == (component["dtype"],
                                                             component["shape"])
            entry = {"numel": inner.numel, "nbytes": inner.nbytes, "offset": inner.offset,
                     "shape": list(inner.shape), "stride": list(inner.stride)}
            assert sha256(elements_at(PRODUCERS / name, entry)) == component["sha256"]


@pytest.mark.parametrize("index", cases("index", INDEXES))
def test_sharded_index_reads_as_one_model(index: str) -> None:
    weight_map = json.loads((PRODUCERS / index).read_text())["weight_map"]
    folder = Path(index).parent.as_posix()
    expected = sorted((t["name"], t["dtype"], t["shape"]) for shard in set(weight_map.values())
                      for t in expected_tensors(f"{folder}/{shard}"))
    assert sorted(name for name, _, _ in expected) == sorted(weight_map)
    result = runner.invoke(app, ["inspect", str(PRODUCERS / index), "--json"])
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)["files"]
    assert [f["error"] for f in files if f["error"]] == []
    ours = sorted((t["name"], t["dtype"], t["shape"]) for f in files for t in f["tensors"])
    assert ours == expected


@pytest.mark.parametrize("index", cases("index_convert", INDEXES))
def test_sharded_index_converts_to_one_model(index: str, tmp_path: Path) -> None:
    """Every shard's tensors, bit-exact, in one model: ``model.safetensors`` when it fits the
    default shard size (as transformers names it), whatever the source shards were."""
    weight_map = json.loads((PRODUCERS / index).read_text())["weight_map"]
    folder = Path(index).parent.as_posix()
    result = runner.invoke(app, ["convert", str(PRODUCERS / index), "--to", "safetensors", "-o",
                                 str(tmp_path), "--copy-shared", "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
    expected = {t["name"]: (t["dtype"], t["shape"], t["sha256"])
                for shard in set(weight_map.values())
                for t in expected_tensors(f"{folder}/{shard}")}
    assert read_safetensors(tmp_path / "model.safetensors") == expected


@pytest.mark.parametrize("run", cases("zero", ZERO_RUNS))
def test_deepspeed_zero_folder_converts_to_what_its_zero_to_fp32_writes(
    run: str, tmp_path: Path
) -> None:
    out = tmp_path / "model.safetensors"
    result = runner.invoke(app, ["convert", str(PRODUCERS / run / "checkpoint"), "--to",
                                 "safetensors", "-o", str(out), "--copy-shared", "--quiet"])
    assert result.exit_code == 0, result.output
    expected = {t["name"]: (t["dtype"], t["shape"], t["sha256"])
                for t in expected_tensors(f"{run}/consolidated/pytorch_model.bin")}
    assert out.is_file() and read_safetensors(out) == expected


# ---- the manifest against torch.load in this environment ----------------------------------


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_producers",
                                                  FIXTURES / "gen_producers.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", FILES)
def test_manifest_is_what_torch_loads_here(name: str) -> None:
    """Where this environment has what a file needs, torch (or safetensors) reads the
    manifest's tensors from it; files whose classes live in an absent library are skipped."""
    pytest.importorskip("torch")
    generator = _generator()
    try:
        _, loaded = generator.load_full(PRODUCERS / name)
    except (ModuleNotFoundError, AttributeError) as error:
        pytest.skip(f"needs the producing library: {error}")
    described = [generator.describe_tensor(key, tensor)
                 for key, tensor in generator.named_tensors(loaded)]
    key = lambda t: t["name"]  # noqa: E731
    assert sorted(described, key=key) == sorted(expected_tensors(name), key=key)
