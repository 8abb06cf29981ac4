"""What torch writes inside its own formats (issue 12), read by ckpt as torch reads it: every
fixture of ``fixtures/formats/`` against torch.load / torch.jit.load, tensor by tensor (names,
dtypes, shapes, strides, the bytes at the reported offsets), then converted bit-exact."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from ckpt_tool.convert.core import convert_file
from ckpt_tool.convert.options import ConvertOptions
from ckpt_tool.inspect.report import inspect_file
from ckpt_tool.model.checkpoint import TensorRef
from ckpt_tool.model.tree import named_tensors
from ckpt_tool.readers import open_checkpoint
from tests.convert_helpers import load_with_aliases, metadata_of, same_bits
from tests.formats_reference import (
    FORMATS,
    fixture_classes,
    load,
    nested_parts,
    storage_bytes,
    torch_tensors,
)

FILES = sorted(str(p.relative_to(FORMATS)) for p in FORMATS.rglob("*.pt"))
MADE_BY_STATE_DICT = {f"{layer}.{name}" for layer in (0, 2) for name in ("scale", "zero_point")}
"""quantized Linear's ``state_dict()`` builds these tensors from float attributes: the file holds
the floats (ckpt lists them as values)."""


def file_bytes(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def expected_tensors(path: Path) -> dict[str, torch.Tensor]:
    tensors = torch_tensors(path)
    if path.name == "quantized_dynamic.pt":
        tensors = {k: v for k, v in tensors.items() if k not in MADE_BY_STATE_DICT}
    return tensors


def assert_same_storage(path: Path, ours: TensorRef, theirs: torch.Tensor, name: str) -> None:
    """The storage ckpt reports holds torch's bytes, and the tensor's offset is inside it."""
    assert ours.storage is not None and ours.storage.offset is not None, name
    assert file_bytes(path, ours.storage.offset, ours.storage.nbytes) == storage_bytes(theirs), name
    assert ours.offset == ours.storage.offset + ours.storage_offset * ours.dtype.itemsize \
        // ours.dtype.elements_per_byte, name


def assert_dense_matches(path: Path, ours: TensorRef, theirs: torch.Tensor, name: str) -> None:
    assert ours.dtype.name == str(theirs.dtype).removeprefix("torch."), name
    assert ours.shape == tuple(theirs.shape), name
    assert ours.stride == theirs.stride(), name
    assert ours.storage_offset == theirs.storage_offset(), name
    assert ours.requires_grad == theirs.requires_grad, name
    assert_same_storage(path, ours, theirs, name)


def assert_nested_matches(path: Path, ours: TensorRef, theirs: torch.Tensor, name: str) -> None:
    assert ours.kind == "nested" and ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
    assert ours.shape == (theirs.size(0),), name
    assert ours.layout == ("jagged" if theirs.layout == torch.jagged else "strided"), name
    parts = nested_parts(theirs)
    components = ours.extra["components"]
    assert sorted(components) == sorted(parts), name
    for part, tensor in parts.items():
        assert_dense_matches(path, components[part], tensor, f"{name}.{part}")
    assert ours.nbytes == sum(p.untyped_storage().nbytes() for p in parts.values()), name
    if theirs.layout == torch.jagged:
        ragged = theirs._ragged_idx
        expected = tuple(None if i == ragged else n for i, n in enumerate(theirs.shape))
        assert ours.extra["nested_shape"] == expected, name


def assert_dtensor_matches(path: Path, ours: TensorRef, theirs: torch.Tensor, name: str) -> None:
    local = theirs.to_local()
    assert ours.kind == "dtensor", name
    assert_dense_matches(path, ours, local, name)
    sharding = ours.sharding
    assert sharding is not None
    assert sharding.global_shape == tuple(theirs.shape), name
    assert sharding.placements == tuple(repr(p) for p in theirs.placements), name
    assert sharding.mesh_shape == tuple(theirs.device_mesh.shape), name
    assert sharding.mesh_device == theirs.device_mesh.device_type, name
    assert ours.is_whole == (tuple(local.shape) == tuple(theirs.shape)), name


@pytest.mark.parametrize("name", FILES)
def test_fixture_reads_as_torch_loads_it(name: str) -> None:
    path = FORMATS / name
    ours = dict(named_tensors(open_checkpoint(path).root))
    theirs = expected_tensors(path)
    assert sorted(ours) == sorted(theirs)
    for key, tensor in theirs.items():
        if tensor.is_nested:
            assert_nested_matches(path, ours[key], tensor, key)
        elif type(tensor).__name__ == "DTensor":
            assert_dtensor_matches(path, ours[key], tensor, key)
        else:
            assert_dense_matches(path, ours[key], tensor, key)
            assert ours[key].kind == ("quantized" if tensor.is_quantized else ours[key].kind)


@pytest.mark.parametrize("name", [n for n in FILES if "torchscript" in n or "scripted" in n])
def test_every_storage_of_a_torchscript_archive_is_named(name: str) -> None:
    """No tensor dropped: each data/ and constants/ record torch.jit.load reads backs a name."""
    path = FORMATS / name
    with zipfile.ZipFile(path) as archive:
        records = {n.split("/", 1)[1] for n in archive.namelist()
                   if n.split("/")[1] in ("data", "constants") and n.count("/") == 2}
    used = {t.storage.record for _, t in named_tensors(open_checkpoint(path).root)
            if t.storage is not None}
    assert records == used


def test_sub_byte_tensors_count_bytes_as_torch_does() -> None:
    path = FORMATS / "subbyte.pt"
    ours = dict(named_tensors(open_checkpoint(path).root))
    for name, tensor in load(path).items():
        assert ours[name].nbytes == tensor.untyped_storage().nbytes(), name


def test_quantized_module_values_are_the_floats_the_file_holds() -> None:
    report = inspect_file(str(FORMATS / "quantized_dynamic.pt"))
    model = load(FORMATS / "quantized_dynamic.pt")
    for layer in (0, 2):
        assert report.metadata[f"{layer}.scale"] == model[layer].scale
        assert report.metadata[f"{layer}.zero_point"] == model[layer].zero_point


def test_omegaconf_config_reads_as_its_plain_data() -> None:
    from omegaconf import OmegaConf

    path = FORMATS / "omegaconf.pt"
    report = inspect_file(str(path))
    with fixture_classes():
        loaded = load(path)
    config = OmegaConf.to_container(loaded["hyper_parameters"], resolve=False)
    assert report.metadata["hyper_parameters.model.hidden"] == config["model"]["hidden"]
    assert report.metadata["hyper_parameters.model.layers"] == config["model"]["layers"]
    assert report.metadata["hyper_parameters.model.dropout"] is None
    assert report.metadata["hyper_parameters.run_name"] == "${model.name}_run"
    assert report.metadata["hyper_parameters.seed"] == "???"
    assert report.metadata["hyper_parameters.optimizer.betas"] == [0.9, 0.999]
    assert report.metadata["datamodule_hparams.0.batch_size"] == 8
    assert not any("_content" in name or "_metadata" in name for name in report.metadata)
    scalars = {k: v for k, v in _leaves(config, "hyper_parameters").items()
               if isinstance(v, str | int | float | bool | list) or v is None}
    assert {k: report.metadata[k] for k in scalars} == scalars


def _leaves(value: object, prefix: str) -> dict[str, object]:
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            out.update(_leaves(item, f"{prefix}.{key}"))
        return out
    return {prefix: value}


def test_omegaconf_values_reach_the_safetensors_metadata(tmp_path: Path) -> None:
    dest = tmp_path / "out.safetensors"
    result = convert_file(str(FORMATS / "omegaconf.pt"), str(dest), ConvertOptions())
    assert result.ok, result.error
    metadata = metadata_of(dest)
    assert metadata["hyper_parameters.trainer.max_epochs"] == "3"
    assert metadata["hyper_parameters.model.layers"] == "[64, 32]"
    assert metadata["hyper_parameters.run_name"] == "${model.name}_run"
    assert not any("_content" in key or "_metadata" in key for key in metadata)


REFUSED = {
    "nested_tensors.pt": {"nt": "nested tensor", "njt": "nested tensor"},
    "subbyte.pt": {"q4": "quantized", "q4_odd_rows": "quantized", "q2": "quantized",
                   "q4_per_row": "quantized"},
    "quantized_dynamic.pt": {"0._packed_params._packed_params.0": "quantized",
                             "2._packed_params._packed_params.0": "quantized"},
    "quantized_dynamic_scripted.pt": {"0._packed_params._packed_params.0": "quantized",
                                      "2._packed_params._packed_params.0": "quantized"},
    "packed_params.pt": {"0": "quantized"},
    "dtensor_2ranks/rank0.pt": {f"{n}.{p}": "DTensor" for n in (0, 2)
                                for p in ("weight", "bias")},
    "dtensor_2ranks/rank1.pt": {f"{n}.{p}": "DTensor" for n in (0, 2)
                                for p in ("weight", "bias")},
}
"""What convert leaves out, and a word of its reason; everything else converts."""


@pytest.mark.parametrize("name", FILES)
def test_fixture_converts_bit_exact(name: str, tmp_path: Path) -> None:
    path = FORMATS / name
    dest = tmp_path / "out.safetensors"
    options = ConvertOptions(skip_unsupported=True, all_tensors=True)
    result = convert_file(str(path), str(dest), options)
    assert result.ok, result.error
    refused = REFUSED.get(name, {})
    (skipped,) = [n for n in result.notes if n.startswith("skipped")] or [""]
    for tensor_name, reason in refused.items():
        assert f" {tensor_name}: a {reason}" in skipped.replace(";", " "), tensor_name
    assert skipped.count(": a ") == len(refused)
    written = load_with_aliases(dest)
    expected = {k: v for k, v in expected_tensors(path).items() if k not in refused}
    assert sorted(written) == sorted(expected)
    for key, tensor in expected.items():
        if type(tensor).__name__ == "DTensor":
            tensor = tensor.to_local()  # whole: one rank, or replicated
        assert same_bits(written[key], tensor.detach()), key


@pytest.mark.parametrize("name", sorted({n for n in REFUSED if "nested" in n or "dtensor" in n}))
def test_refused_without_skip_says_why(name: str, tmp_path: Path) -> None:
    result = convert_file(str(FORMATS / name), str(tmp_path / "out.safetensors"),
                          ConvertOptions())
    assert not result.ok
    assert "safetensors holds dense tensors only" in result.error \
        or "convert the folder holding every rank's file" in result.error
    assert "--skip-unsupported" in result.error
