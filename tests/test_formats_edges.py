"""Edges of issue 12's formats: records whose CRC-32 torch never checks, bytes after the zip,
older DTensor layouts, OmegaConf read without omegaconf, and hostile pickles that reuse the new
reconstructors (self-referencing state) failing in one line or reading, never looping."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from ckpt_tool.inspect.report import inspect_file
from ckpt_tool.lint import lint_file
from ckpt_tool.model.checkpoint import Storage, TensorRef
from ckpt_tool.model.dtypes import BY_NAME
from ckpt_tool.model.objects import placeholder
from ckpt_tool.model.tree import named_tensors
from ckpt_tool.pickles.tensor_parts import as_dtensor
from ckpt_tool.readers import open_checkpoint
from tests.formats_reference import FORMATS
from tests.test_reader_differential import assert_matches_torch


def _with_crc(data: bytes, crc: int) -> bytes:
    """Every local and central header of the archive given one CRC-32 value."""
    patched = bytearray(data)
    for signature, field in ((b"PK\x03\x04", 14), (b"PK\x01\x02", 16)):
        at = patched.find(signature)
        while at >= 0:
            struct.pack_into("<I", patched, at + field, crc)
            at = patched.find(signature, at + 4)
    return bytes(patched)


def test_wrong_crc32_reads_as_torch_reads_it(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(6.0).reshape(2, 3)}, buffer)
    path = tmp_path / "wrong_crc.pt"
    path.write_bytes(_with_crc(buffer.getvalue(), 0x12345678))
    torch.load(path, weights_only=True)  # torch's miniz checks no CRC
    assert_matches_torch(path)


@pytest.mark.parametrize("name", ["no_crc32.pt", "trailing_signature.pt",
                                  "trailing_eocd_bytes.pt"])
def test_torch_readable_archives_are_not_called_unreadable(name: str) -> None:
    path = FORMATS / name
    assert_matches_torch(path)
    assert not [f for f in lint_file(str(path)) if f.code == "CKPT006"]


def test_trailing_data_that_fills_the_end_record_search_is_still_refused(tmp_path: Path) -> None:
    """torch (miniz) looks for the end record in the last 64 KiB + 22 bytes only."""
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer)
    path = tmp_path / "far.pt"
    path.write_bytes(buffer.getvalue() + b"\x00" * (70 * 1024))
    with pytest.raises(RuntimeError):
        torch.load(path, weights_only=True)
    assert "end-of-central-directory" in (inspect_file(str(path)).error or "")


def _opaque(module: str, name: str, state: dict) -> object:
    obj = placeholder(module, name)()
    obj.__setstate__(state)
    return obj


def test_dtensor_of_torch_2_4_keeps_its_mesh_as_a_tensor() -> None:
    """Before torch 2.9 a DeviceMesh pickled its ranks as the tensor ``mesh``."""
    int64, float32 = BY_NAME["int64"], BY_NAME["float32"]
    mesh = _opaque("torch.distributed.device_mesh", "DeviceMesh", {
        "device_type": "cpu", "mesh_dim_names": ("dp", "tp"), "_coordinate_on_dim": [1, 0],
        "mesh": TensorRef(int64, (2, 2), (2, 1), 0, Storage("1", int64, 32, "cpu", 0)),
    })
    placements = (_opaque("torch.distributed._tensor.placement_types", "Shard", {"dim": 0}),
                  _opaque("torch.distributed._tensor.placement_types", "Replicate", {}))
    spec = _opaque("torch.distributed._tensor.placement_types", "DTensorSpec",
                   {"mesh": mesh, "placements": placements})
    local = TensorRef(float32, (4, 4), (4, 1), 0, Storage("0", float32, 64, "cpu", 0))
    wrapper = TensorRef(float32, (8, 4), (4, 1), kind="subclass")
    result = as_dtensor(wrapper, {"_local_tensor": local, "_spec": spec})
    assert result is local and result.kind == "dtensor" and not result.is_whole
    sharding = result.sharding
    assert sharding is not None
    assert sharding.mesh_shape == (2, 2) and sharding.mesh_dim_names == ("dp", "tp")
    assert sharding.placements == ("Shard(dim=0)", "Replicate()")
    assert sharding.coordinate == (1, 0) and sharding.mesh_device == "cpu"


def test_omegaconf_reads_without_omegaconf_or_torch() -> None:
    code = ("import sys; sys.modules['torch'] = None; sys.modules['omegaconf'] = None; "
            "from ckpt_tool.inspect.report import inspect_file; "
            f"r = inspect_file({str(FORMATS / 'omegaconf.pt')!r}); "
            "print(r.error, r.metadata['hyper_parameters.model.layers'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip() == "None [64, 32]", result.stderr


SELF_REFERENCING = {
    "script-object": b"\x80\x02ctorch\nScriptObject\n)\x81q\x00h\x00b.",
    "scripted-class": b"\x80\x02c__torch__\nFoo\n)\x81q\x00h\x00b.",
    "dict-config": (b"\x80\x02comegaconf.dictconfig\nDictConfig\n)\x81q\x00}"
                    b"X\x08\x00\x00\x00_contenth\x00sb."),
    "list-config": (b"\x80\x02comegaconf.listconfig\nListConfig\n)\x81q\x00}"
                    b"X\x08\x00\x00\x00_content]h\x00asb."),
}
"""Objects whose state holds the object itself, built opcode by opcode."""


@pytest.mark.parametrize("name", sorted(SELF_REFERENCING))
def test_self_referencing_state_ends_at_the_cycle(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", SELF_REFERENCING[name])
        archive.writestr("archive/version", "3\n")
    report = inspect_file(str(path))
    assert report.error is None
    assert "<cycle>" in repr(report.metadata)


def test_private_attributes_repeating_parameters_are_not_named_twice(tmp_path: Path) -> None:
    """An LSTM keeps its parameters again in the private list ``_flat_weights``."""
    path = tmp_path / "lstm.pt"
    model = torch.nn.LSTM(3, 4)
    torch.save(model, path)
    names = [name for name, _ in named_tensors(open_checkpoint(path).root)]
    assert names == list(model.state_dict())


def test_a_quantized_parameter_stays_quantized(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weight = torch.quantize_per_tensor(torch.randn(2, 2), 0.1, 0, torch.qint8)
    path = tmp_path / "qparam.pt"
    torch.save({"w": torch.nn.Parameter(weight, requires_grad=False)}, path)
    (tensor,) = [t for _, t in named_tensors(open_checkpoint(path).root)]
    assert tensor.kind == "quantized"
