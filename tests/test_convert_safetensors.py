"""``convert --to safetensors`` against torch: what ``safetensors.torch.load_file`` reads from the
output equals what ``torch.load`` reads from the source, tensor by tensor, bit for bit, under the
documented names."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from ckpt_tool.convert.core import convert_file
from ckpt_tool.convert.options import CastTo, ConvertOptions, Target
from ckpt_tool.model.dtypes import DTYPES
from tests.conftest import FIXTURES, MALICIOUS, TORCH_FIXTURES
from tests.convert_helpers import (
    assert_tensors_equal,
    convert,
    digest,
    load_sharded,
    load_with_aliases,
    metadata_of,
    raw,
)
from tests.convert_strategies import checkpoints, random_bits, save
from tests.torch_reference import flatten, load_reference

BENIGN = [name for name in TORCH_FIXTURES if name not in MALICIOUS]
ROOTS = {"checkpoint.pth.tar": "state_dict", "nested.pt": "model"}
"""Fixtures whose weights are under a key; the others convert whole."""
UNSUPPORTED = {"quantized.pt": {"q", "qc"}, "sparse.pt": {"sparse"}}


def expected_tensors(path: Path) -> dict[str, torch.Tensor]:
    reference = load_reference(str(path))
    if path.name in ROOTS:
        reference = reference[ROOTS[path.name]]
    tensors = flatten(reference)
    return {name: t for name, t in tensors.items()
            if name not in UNSUPPORTED.get(path.name, set())}


@pytest.mark.parametrize("name", BENIGN)
def test_fixture_converts_like_torch_loads_it(name: str, tmp_path: Path) -> None:
    source = FIXTURES / name
    before = digest(source)
    dest = tmp_path / "out.safetensors"
    if name == "quantized.pt":  # nothing but quantized tensors
        result = convert_file(str(source), str(dest), ConvertOptions(skip_unsupported=True))
        assert "no tensors to convert" in (result.error or "")
        return
    convert(source, dest, skip_unsupported=name in UNSUPPORTED)
    assert_tensors_equal(load_with_aliases(dest), expected_tensors(source))
    assert metadata_of(dest)["format"] == "pt"
    assert digest(source) == before


def test_training_checkpoint_keeps_its_values_and_leaves_the_optimizer_out(tmp_path: Path) -> None:
    dest = tmp_path / "out.safetensors"
    result = convert(FIXTURES / "checkpoint.pth.tar", dest)
    assert result.root == "'state_dict'"
    metadata = metadata_of(dest)
    assert metadata == {"format": "pt", "epoch": "90", "arch": "resnet_tiny", "best_acc1": "76.13"}
    assert any("left out optimizer: 5 tensors" in note for note in result.notes)
    assert not any(name.startswith("optimizer") for name in load_file(str(dest)))


def test_a_tensor_beside_the_weights_root_does_not_hide_it(tmp_path: Path) -> None:
    """pytorch/examples' ImageNet script saves best_acc1 as a tensor next to state_dict."""
    source, dest = tmp_path / "imagenet.pth.tar", tmp_path / "out.safetensors"
    weights = {"fc.weight": torch.ones(2, 2), "fc.bias": torch.zeros(2)}
    torch.save({"epoch": 3, "state_dict": weights, "best_acc1": torch.tensor(76.13),
                "optimizer": {"state": {}, "param_groups": []}}, source)
    result = convert(source, dest)
    assert result.root == "'state_dict'"
    assert set(load_file(str(dest))) == {"fc.weight", "fc.bias"}
    assert "left out best_acc1: 1 tensors (--key best_acc1 or --all converts it)" in result.notes


def test_include_optimizer_adds_its_tensors_by_full_name(tmp_path: Path) -> None:
    dest = tmp_path / "out.safetensors"
    convert(FIXTURES / "checkpoint.pth.tar", dest, include_optimizer=True)
    names = set(load_file(str(dest)))
    assert "conv1.weight" in names and "optimizer.state.0.momentum_buffer" in names
    assert json.loads(metadata_of(dest)["optimizer.param_groups.0.lr"]) == 0.1


@pytest.mark.parametrize(("options", "expected"), [
    pytest.param({"all_tensors": True}, {"model.heads.0", "ema.shadow.head.b"}, id="all"),
    pytest.param({"key": "ema.shadow"}, {"encoder.w", "head.b"}, id="key-with-dotted-names"),
    pytest.param({"key": "model.encoder"}, {"layers.0.w", "layers.2.b"}, id="key-nested"),
])
def test_key_and_all_choose_the_tensors(options: dict, expected: set, tmp_path: Path) -> None:
    dest = tmp_path / "out.safetensors"
    convert(FIXTURES / "nested.pt", dest, **options)
    assert expected <= set(load_file(str(dest)))


def test_unknown_key_names_what_is_there(tmp_path: Path) -> None:
    result = convert_file(str(FIXTURES / "nested.pt"), str(tmp_path / "x.safetensors"),
                          ConvertOptions(key="model.decoder"))
    assert "'model' has no 'decoder'; it holds: encoder, heads" in (result.error or "")


def test_metadata_values_are_json_text(tmp_path: Path) -> None:
    dest = tmp_path / "out.safetensors"
    convert(FIXTURES / "metadata.pt", dest)
    metadata = metadata_of(dest)
    assert metadata["args.arch"] == "resnet18"
    assert json.loads(metadata["args.lr"]) == 0.1
    assert json.loads(metadata["args.nested"]) == [1, 2]
    assert json.loads(metadata["none"]) is None
    assert json.loads(metadata["tuple"]) == [1, "x"]
    assert json.loads(metadata["complex"]) == {"real": 1.0, "imag": 2.0}


def test_tied_weights_are_written_once_and_recorded(tmp_path: Path) -> None:
    dest = tmp_path / "out.safetensors"
    result = convert(FIXTURES / "tied.pt", dest)
    assert set(load_file(str(dest))) == {"embed.weight", "other"}
    assert metadata_of(dest)["lm_head.weight"] == "embed.weight"
    assert any("lm_head.weight -> embed.weight" in note for note in result.notes)


def test_copy_shared_writes_every_name(tmp_path: Path) -> None:
    dest = tmp_path / "out.safetensors"
    convert(FIXTURES / "tied.pt", dest, copy_shared=True)
    tensors = load_file(str(dest))
    assert set(tensors) == {"embed.weight", "lm_head.weight", "other"}
    assert torch.equal(tensors["embed.weight"], tensors["lm_head.weight"])
    assert "lm_head.weight" not in metadata_of(dest)


def test_unsupported_tensor_is_named(tmp_path: Path) -> None:
    result = convert_file(str(FIXTURES / "sparse.pt"), str(tmp_path / "x.safetensors"),
                          ConvertOptions())
    assert result.error is not None
    assert "tensor sparse: a sparse tensor (sparse_coo)" in result.error
    assert ".to_dense()" in result.error and "--skip-unsupported" in result.error
    assert not (tmp_path / "x.safetensors").exists()


def test_skip_unsupported_lists_what_was_left_out(tmp_path: Path) -> None:
    result = convert(FIXTURES / "sparse.pt", tmp_path / "x.safetensors", skip_unsupported=True)
    assert any(note.startswith("skipped unsupported tensors: sparse: a sparse tensor")
               for note in result.notes)


@pytest.mark.parametrize(("options", "names"), [
    pytest.param({"strip_prefixes": ("layers.",)}, {"0.weight", "3.bias"}, id="strip"),
    pytest.param({"renames": ((r"^layers\.(\d+)\.", r"h.\1."),)}, {"h.0.weight"}, id="rename"),
])
def test_names_can_be_changed(options: dict, names: set, tmp_path: Path) -> None:
    dest = tmp_path / "out.safetensors"
    convert(FIXTURES / "state_dict.pt", dest, **options)
    assert names <= set(load_file(str(dest)))


def test_colliding_names_are_refused(tmp_path: Path) -> None:
    result = convert_file(str(FIXTURES / "state_dict.pt"), str(tmp_path / "x.safetensors"),
                          ConvertOptions(renames=((r"\.(weight|bias)$", ""),)))
    assert "would both be named layers.0" in (result.error or "")


def test_every_safetensors_dtype_is_a_tensorspec_name() -> None:
    from safetensors import TensorSpec

    for dtype in DTYPES:
        if dtype.safetensors:
            spec = TensorSpec(dtype=dtype.name, shape=[1], data_ptr=0, data_len=dtype.itemsize)
            assert spec.dtype == dtype.safetensors


def test_output_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        convert(FIXTURES / "state_dict.pt", tmp_path / "out.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.safetensors").stat().st_mode) == 0o640


def _corrupt_copies(monkeypatch) -> None:
    """Every tensor byte range the copier writes lands with its first byte changed."""
    from ckpt_tool.convert import byte_copy

    real = byte_copy.RangeCopier._copy_buffered

    def corrupted(self, src: int, offset: int, at: int, count: int) -> int:
        copied = real(self, src, offset, at, count)
        os.pwrite(self.dest, bytes([os.pread(self.dest, 1, at)[0] ^ 1]), at)
        return copied

    monkeypatch.setattr(byte_copy.RangeCopier, "_copy_buffered", corrupted)


def test_verification_failure_removes_the_output(tmp_path: Path, monkeypatch) -> None:
    """Whole storages copied: checked against their zip CRC, the difference then located."""
    _corrupt_copies(monkeypatch)
    dest = tmp_path / "out.safetensors"
    result = convert_file(str(FIXTURES / "state_dict.pt"), str(dest), ConvertOptions())
    assert "verification failed: tensor layers.0.bias differs from the source at byte 0" in (
        result.error or "")
    assert os.listdir(tmp_path) == []


def test_part_of_a_storage_is_compared_with_the_source(tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / "views.pt"
    base = torch.arange(4096, dtype=torch.float32)
    torch.save({"middle": base[1000:3000], "whole": torch.ones(8)}, source)
    _corrupt_copies(monkeypatch)
    out = tmp_path / "out"
    out.mkdir()
    result = convert_file(str(source), str(out / "x.safetensors"), ConvertOptions())
    assert "verification failed: tensor middle differs from the source at byte 0" in (
        result.error or "")
    assert os.listdir(out) == []


def _damaged(source: Path, tensors: dict[str, torch.Tensor], name: str, at: int
             ) -> tuple[Any, bytes]:
    """Save ``tensors``, flip a bit of ``name``'s storage at byte ``at``; return that storage
    and the file's undamaged bytes."""
    from ckpt_tool.readers import open_checkpoint

    torch.save(tensors, source)
    storage = open_checkpoint(str(source)).root[name].storage
    original = source.read_bytes()
    data = bytearray(original)
    data[storage.offset + at] ^= 0x40
    source.write_bytes(bytes(data))
    return storage, original


def _crc_failure(name: str, storage: Any) -> str:
    return (f"verification failed: tensor {name}: the source's bytes do not match the CRC-32 "
            f"its zip holds for {storage.record}: the source file is damaged")


def test_a_damaged_source_fails_its_crc(tmp_path: Path) -> None:
    source = tmp_path / "damaged.pt"
    storage, _ = _damaged(source, {"a": torch.zeros(1000), "b": torch.ones(1000)}, "b", 123)
    out = tmp_path / "out"
    out.mkdir()
    result = convert_file(str(source), str(out / "x.safetensors"), ConvertOptions())
    assert result.error == _crc_failure("b", storage)
    assert os.listdir(out) == []
    no_check = convert_file(str(source), str(out / "x.safetensors"),
                            ConvertOptions(verify=False))
    assert no_check.error is None


@pytest.mark.parametrize("damaged_at", [0, 1_500_000, 2_399_999])
def test_a_large_storage_is_checked_through_its_crc(tmp_path: Path, monkeypatch,
                                                    damaged_at: int) -> None:
    """Storages past the read-ahead size are read back 1 MB at a time and checked against
    their CRC: a damaged source byte or a wrong copied byte, in any megabyte, fails."""
    from ckpt_tool.convert import byte_copy

    source = tmp_path / "large.pt"
    storage, original = _damaged(source, {"a": torch.zeros(1000), "big": torch.ones(600_000)},
                                 "big", damaged_at)
    out = tmp_path / "out"
    out.mkdir()
    result = convert_file(str(source), str(out / "x.safetensors"), ConvertOptions())
    assert result.error == _crc_failure("big", storage)
    assert os.listdir(out) == []

    source.write_bytes(original)
    real = byte_copy.RangeCopier._copy_buffered
    target = [None]

    def corrupted(self, src: int, offset: int, at: int, count: int) -> int:
        copied = real(self, src, offset, at, count)
        if offset <= storage.offset + damaged_at < offset + count:
            where = at + storage.offset + damaged_at - offset
            target[0] = where
            os.pwrite(self.dest, bytes([os.pread(self.dest, 1, where)[0] ^ 1]), where)
        return copied

    monkeypatch.setattr(byte_copy.RangeCopier, "_copy_buffered", corrupted)
    result = convert_file(str(source), str(out / "x.safetensors"), ConvertOptions())
    assert target[0] is not None
    assert result.error == ("verification failed: tensor big differs from the source at byte "
                            f"{damaged_at}")
    assert os.listdir(out) == []


@pytest.mark.parametrize("wrong_at", [None, 0, 1_048_576, 3_199_999])
def test_a_large_part_of_a_storage_is_compared_with_the_source(tmp_path: Path, monkeypatch,
                                                               wrong_at: int | None) -> None:
    """A view of part of a storage has no CRC of its own: read back 1 MB at a time and compared
    with the source's bytes, a wrong byte in any megabyte fails, at its place."""
    from safetensors.torch import load_file

    from ckpt_tool.convert import byte_copy

    source = tmp_path / "views.pt"
    base = torch.arange(1_000_000, dtype=torch.float32)
    torch.save({"middle": base[100_000:900_000]}, source)
    real = byte_copy.RangeCopier._copy_buffered
    start = [None]

    def corrupted(self, src: int, offset: int, at: int, count: int) -> int:
        copied = real(self, src, offset, at, count)
        if start[0] is None:
            start[0] = at
        where = start[0] + (wrong_at or 0)
        if wrong_at is not None and at <= where < at + count:
            os.pwrite(self.dest, bytes([os.pread(self.dest, 1, where)[0] ^ 1]), where)
        return copied

    monkeypatch.setattr(byte_copy.RangeCopier, "_copy_buffered", corrupted)
    out = tmp_path / "out"
    out.mkdir()
    result = convert_file(str(source), str(out / "x.safetensors"), ConvertOptions())
    if wrong_at is None:
        assert result.error is None
        assert torch.equal(load_file(out / "x.safetensors")["middle"], base[100_000:900_000])
        return
    assert result.error == ("verification failed: tensor middle differs from the source at byte "
                            f"{wrong_at}")
    assert os.listdir(out) == []


def test_a_tensor_built_in_blocks_is_checked_against_its_blocks(tmp_path: Path,
                                                                monkeypatch) -> None:
    import numpy as np

    from ckpt_tool.convert import verify

    source = tmp_path / "t.pt"
    torch.save({"t": torch.arange(12.0).reshape(3, 4).t()}, source)
    real = verify.expected_blocks

    def corrupted(*args, **kwargs):
        for at, block in real(*args, **kwargs):
            yield at, np.bitwise_xor(np.frombuffer(block, np.uint8), 1).astype(np.uint8)

    monkeypatch.setattr(verify, "expected_blocks", corrupted)
    out = tmp_path / "out"
    out.mkdir()
    result = convert_file(str(source), str(out / "x.safetensors"), ConvertOptions())
    assert result.error == "verification failed: tensor t differs from the source at byte 0"
    assert os.listdir(out) == []


def test_sharded_output_loads_back_whole(tmp_path: Path) -> None:
    source = tmp_path / "model.pt"
    torch.manual_seed(0)
    state = {f"layer.{i}.weight": torch.randn(16 * (i + 1), 16) for i in range(8)}
    state["big"] = torch.randn(600, 16)  # larger than a shard: a shard of its own
    torch.save(state, source)
    result = convert(source, tmp_path / "model.safetensors", shard_size=20_000)
    index = tmp_path / "model.safetensors.index.json"
    shards = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    count = len(shards)
    assert count > 2 and shards[0] == f"model-00001-of-{count:05d}.safetensors"
    assert list(result.outputs) == [str(tmp_path / s) for s in shards] + [str(index)]
    document = json.loads(index.read_text())
    assert document["metadata"]["total_size"] == sum(t.numel() * 4 for t in state.values())
    assert_tensors_equal(load_sharded(index), state)
    assert not (tmp_path / "model.safetensors").exists()


def test_shard_size_larger_than_the_model_writes_one_file(tmp_path: Path) -> None:
    convert(FIXTURES / "state_dict.pt", tmp_path / "m.safetensors", shard_size=10**9)
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]


def test_safetensors_source_is_rewritten_with_its_metadata(tmp_path: Path) -> None:
    dest = tmp_path / "half.safetensors"
    convert(FIXTURES / "model.safetensors", dest, cast=CastTo.FP16)
    assert metadata_of(dest) == {"format": "pt", "epoch": "3"}
    original = load_file(str(FIXTURES / "model.safetensors"))
    assert_tensors_equal(load_file(str(dest)), {k: v.half() for k, v in original.items()})


def test_malicious_fixture_converts_without_running_its_payload(canary_dir: Path) -> None:
    dest = canary_dir / "out.safetensors"
    convert(FIXTURES / "malicious.pt", dest)
    assert set(load_file(str(dest))) == {"w"}
    assert not (canary_dir / "ckpt_canary.txt").exists()


# ---- generated checkpoints -----------------------------------------------------------------

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=checkpoints(), layout=st.sampled_from(["zip", "legacy", "big-endian"]))
def test_generated_checkpoints_convert_like_torch_loads_them(tree: dict, layout: str,
                                                             tmp_path_factory) -> None:
    tensors = flatten(tree)
    if layout == "legacy" and any(t.dtype.itemsize == 1 and t.dtype.is_floating_point
                                  for t in tensors.values()):
        layout = "zip"  # torch cannot load the legacy float8 files it writes
    folder = tmp_path_factory.mktemp("gen")
    source, dest = folder / "generated.pt", folder / "out.safetensors"
    save(tree, source, legacy=layout == "legacy", big_endian=layout == "big-endian")
    convert(source, dest, all_tensors=True, include_optimizer=True)
    expected = flatten(torch.load(source, weights_only=True))
    assert_tensors_equal(load_with_aliases(dest), expected)


FLOATS = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dtypes=st.lists(st.sampled_from([*FLOATS, torch.int32, torch.float8_e4m3fn]),
                       min_size=1, max_size=4),
       cast=st.sampled_from(list(CastTo)), transposed=st.booleans(), seed=st.integers(0, 999))
def test_dtype_cast_matches_torch_to(dtypes: list, cast: CastTo, transposed: bool, seed: int,
                                     tmp_path_factory) -> None:
    tree = {f"t{i}": random_bits(dtype, [7, 5], seed + i) for i, dtype in enumerate(dtypes)}
    if transposed:
        tree = {name: t.t() for name, t in tree.items()}
    folder = tmp_path_factory.mktemp("cast")
    source, dest = folder / "source.pt", folder / "out.safetensors"
    save(tree, source)
    convert(source, dest, cast=cast)
    target = getattr(torch, cast.dtype_name)
    got = load_file(str(dest))
    for name, tensor in tree.items():
        expected = tensor.to(target) if tensor.dtype in FLOATS else tensor
        assert_same_bits_nan_aside(got[name], expected)


def assert_same_bits_nan_aside(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Bit for bit, except that a NaN's payload and sign are not specified (see casting.py)."""
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if not expected.dtype.is_floating_point or expected.dtype.itemsize == 1:
        assert raw(got) == raw(expected)
        return
    nan = expected.isnan()
    assert torch.equal(got.isnan(), nan)
    assert raw(got[~nan]) == raw(expected[~nan])


def test_deflated_storage_record_is_refused(tmp_path: Path) -> None:
    """Another zip tool may deflate the records; their bytes cannot be streamed as they are."""
    import zipfile

    buffer = io.BytesIO()
    torch.save({"w": torch.ones(100)}, buffer)
    source = tmp_path / "deflated.pt"
    with zipfile.ZipFile(buffer) as original, zipfile.ZipFile(source, "w") as rewritten:
        for info in original.infolist():
            method = zipfile.ZIP_DEFLATED if "/data/" in info.filename else zipfile.ZIP_STORED
            rewritten.writestr(info.filename, original.read(info), compress_type=method)
    result = convert_file(str(source), str(tmp_path / "out.safetensors"), ConvertOptions())
    assert "tensor w: its storage data/0 is compressed in the zip" in (result.error or "")


def test_missing_destination_folder_is_named(tmp_path: Path) -> None:
    dest = tmp_path / "nowhere" / "out.safetensors"
    result = convert_file(str(FIXTURES / "state_dict.pt"), str(dest), ConvertOptions())
    assert result.error == f"the destination's folder {dest.parent} does not exist"


@pytest.mark.parametrize("target", [Target.SAFETENSORS, Target.PT])
def test_destination_is_refused_before_the_source_is_read(tmp_path: Path, monkeypatch,
                                                          target: Target) -> None:
    """A 200,000-tensor file takes seconds to read: a missing folder (and, for a torch target,
    an existing file) is said at once."""
    from ckpt_tool.convert import core

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the source was read")

    monkeypatch.setattr(core, "open_checkpoint", never)
    source = str(FIXTURES / "state_dict.pt")
    dest = tmp_path / "nowhere" / "out.x"
    result = convert_file(source, str(dest), ConvertOptions(target=target))
    assert result.error == f"the destination's folder {dest.parent} does not exist"
    if target is Target.PT:
        taken = tmp_path / "taken.pt"
        taken.write_bytes(b"keep")
        result = convert_file(source, str(taken), ConvertOptions(target=target))
        assert result.error == f"{taken} exists; pass --force to replace it"
        assert taken.read_bytes() == b"keep"


def test_a_value_equal_to_a_tied_alias_is_not_kept(tmp_path: Path) -> None:
    """Found by hypothesis: {'00': t, '0': t, 'epoch': 0} wrote epoch="0", read as a tie to '0'."""
    source = tmp_path / "tied.pt"
    t = torch.ones(3)
    torch.save({"00": t, "0": t, "epoch": 0}, source)
    out = tmp_path / "tied.safetensors"
    convert_file(str(source), str(out), ConvertOptions())
    assert metadata_of(out) == {"format": "pt", "0": "00"}


def test_ctrl_c_while_copying_leaves_nothing_and_stops_the_check(tmp_path: Path,
                                                                 monkeypatch) -> None:
    import threading

    from ckpt_tool.convert import byte_copy

    monkeypatch.setenv("CKPT_NO_O_TMPFILE", "1")  # a named temporary: it must be removed
    source = tmp_path / "big.pt"
    torch.save({f"w{i}": torch.full((600_000,), float(i)) for i in range(6)}, source)
    real, calls = byte_copy.RangeCopier._copy_buffered, []

    def interrupted(self, *args):
        calls.append(1)
        if len(calls) == 12:  # past the first hand-offs to the verification thread
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(byte_copy.RangeCopier, "_copy_buffered", interrupted)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        convert_file(str(source), str(out / "x.safetensors"), ConvertOptions())
    assert os.listdir(out) == []
    assert not [t for t in threading.enumerate() if t.name == "ckpt-verify"]


def test_an_interrupt_while_probing_for_unnamed_files_leaves_no_probe(tmp_path,
                                                                      monkeypatch) -> None:
    """The O_TMPFILE probe gives a file a name for a moment: Ctrl-C (or a worker's SIGTERM, which
    ckpt turns into one) landing then must not leave that name behind."""
    from ckpt_tool.convert import atomic

    real_link = atomic._link_fd

    def link_then_interrupt(fd: int, dest: str) -> None:
        real_link(fd, dest)
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic, "_link_fd", link_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic._try_unnamed_file(str(tmp_path))
    assert os.listdir(tmp_path) == []
