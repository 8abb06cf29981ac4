"""``convert --to pt`` (and the other torch extensions): renamed copies, moves, legacy rewrites
that ``torch.load(mmap=True)`` can map, and safetensors back to ``torch.save``."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from safetensors.torch import load_file

from ckpt_tool.convert.core import convert_file
from ckpt_tool.convert.legacy_rewrite import zip_pickle
from ckpt_tool.convert.options import Action, ConvertOptions, Target
from ckpt_tool.readers import open_checkpoint
from tests.conftest import FIXTURES
from tests.convert_helpers import assert_tensors_equal, convert, digest
from tests.convert_strategies import checkpoints
from tests.torch_reference import flatten


@pytest.mark.parametrize(("source", "target"), [
    pytest.param("state_dict.pth", Target.PT, id="pth-to-pt"),
    pytest.param("checkpoint.pth.tar", Target.PT, id="pth.tar-to-pt"),
    pytest.param("legacy.pt", Target.PTH_TAR, id="legacy-kept"),
    pytest.param("torchscript.pt", Target.BIN, id="torchscript"),
    pytest.param("state_dict.pt", Target.CKPT, id="to-ckpt"),
])
def test_copy_is_byte_identical(source: str, target: Target, tmp_path: Path) -> None:
    dest = tmp_path / f"copy{target.extension}"
    result = convert(FIXTURES / source, dest, target=target)
    assert result.action is Action.COPY
    assert dest.read_bytes() == (FIXTURES / source).read_bytes()


def test_move_renames_the_file(tmp_path: Path) -> None:
    source = tmp_path / "model.pth"
    source.write_bytes((FIXTURES / "state_dict.pth").read_bytes())
    before = digest(source)
    result = convert(source, tmp_path / "model.pt", target=Target.PT, move=True)
    assert result.action is Action.MOVE
    assert not source.exists() and digest(tmp_path / "model.pt") == before


def test_move_refuses_an_existing_destination(tmp_path: Path) -> None:
    source, dest = tmp_path / "model.pth", tmp_path / "model.pt"
    source.write_bytes((FIXTURES / "state_dict.pth").read_bytes())
    dest.write_bytes(b"keep me")
    result = convert_file(str(source), str(dest), ConvertOptions(target=Target.PT, move=True))
    assert "exists; pass --force" in (result.error or "")
    assert dest.read_bytes() == b"keep me" and source.exists()


def assert_rewrite_loads_like_source(source: Path, dest: Path) -> None:
    rewritten = torch.load(dest, mmap=True, weights_only=True)
    original = torch.load(source, weights_only=True)
    assert_tensors_equal(flatten(rewritten), flatten(original))
    if isinstance(original, dict):
        assert list(rewritten) == list(original)
    assert open_checkpoint(dest).format.value == "torch-zip"


def test_legacy_fixture_is_rewritten_for_mmap(tmp_path: Path) -> None:
    dest = tmp_path / "legacy_zip.pt"
    result = convert(FIXTURES / "legacy.pt", dest, target=Target.PT, rewrite=True)
    assert result.action is Action.REWRITE
    assert_rewrite_loads_like_source(FIXTURES / "legacy.pt", dest)


def test_rewrite_keeps_tied_storages_and_views(tmp_path: Path) -> None:
    shared = torch.arange(12.0).reshape(3, 4)
    tree = {"a": shared, "b": shared, "t": shared.t(), "row": shared[1], "n": 3}
    source, dest = tmp_path / "tied.pt", tmp_path / "tied_zip.pt"
    torch.save(tree, source, _use_new_zipfile_serialization=False)
    convert(source, dest, target=Target.PT, rewrite=True)
    loaded = torch.load(dest, mmap=True, weights_only=True)
    assert_rewrite_loads_like_source(source, dest)
    assert loaded["a"].untyped_storage().data_ptr() == loaded["t"].untyped_storage().data_ptr()


class _LegacyPickler(pickle.Pickler):
    """Persistent ids as torch's legacy save writes them, at any protocol."""

    def persistent_id(self, obj: object) -> object:
        if isinstance(obj, bytearray):
            return ("storage", "FloatStorage", str(len(obj)), "cpu", len(obj), None)
        return None


class _ZipUnpickler(pickle.Unpickler):
    def persistent_load(self, pid: object) -> object:
        assert isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
        return pid


@pytest.mark.parametrize("protocol", [1, 2, 4])
def test_zip_pickle_rewrites_persistent_ids_at_any_binary_protocol(protocol: int) -> None:
    storage = bytearray(3)
    tree = {"x": [storage, storage], "y": bytearray(5), "s": "storage", "big": "z" * 70_000}
    buffer = io.BytesIO()
    _LegacyPickler(buffer, protocol=protocol).dump(tree)
    rewritten = zip_pickle(buffer.getvalue())
    loaded = _ZipUnpickler(io.BytesIO(rewritten)).load()
    assert loaded["x"][0] == ("storage", "FloatStorage", "3", "cpu", 3)
    assert loaded["y"][4] == 5 and loaded["s"] == "storage" and len(loaded["big"]) == 70_000
    if protocol == 4:
        assert not any(op.name == "FRAME" for op, _, _ in pickletools.genops(rewritten))


def test_rewrite_refuses_legacy_whole_modules(tmp_path: Path) -> None:
    source = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), source, _use_new_zipfile_serialization=False)
    result = convert_file(str(source), str(tmp_path / "out.pt"),
                          ConvertOptions(target=Target.PT, rewrite=True))
    assert "whole module classes" in (result.error or "")
    assert sorted(os.listdir(tmp_path)) == ["module.pt"]


def test_rewrite_of_a_zip_file_copies_it(tmp_path: Path) -> None:
    result = convert(FIXTURES / "state_dict.pth", tmp_path / "x.pt", target=Target.PT,
                     rewrite=True)
    assert result.action is Action.COPY and "copied as it is" in result.notes[0]


def test_zip_pickle_drops_one_none_per_storage() -> None:
    legacy = open_checkpoint(FIXTURES / "legacy.pt")
    record = next(p for p in legacy.pickles if p.member == "object pickle")
    data = (FIXTURES / "legacy.pt").read_bytes()[record.data_offset : record.scan.end]
    rewritten = zip_pickle(data)
    assert len(data) - len(rewritten) == len(legacy.storages) == 8


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=checkpoints())
def test_generated_legacy_files_rewrite_for_mmap(tree: dict, tmp_path_factory) -> None:
    if any(t.dtype.itemsize == 1 and t.dtype.is_floating_point for t in flatten(tree).values()):
        return  # torch cannot load the legacy float8 files it writes
    folder = tmp_path_factory.mktemp("legacy")
    source, dest = folder / "legacy.pt", folder / "zip.pt"
    buffer = io.BytesIO()
    torch.save(tree, buffer, _use_new_zipfile_serialization=False)
    source.write_bytes(buffer.getvalue())
    convert(source, dest, target=Target.PT, rewrite=True)
    assert_rewrite_loads_like_source(source, dest)


def test_safetensors_to_pt_with_torch(tmp_path: Path) -> None:
    dest = tmp_path / "model.pt"
    result = convert(FIXTURES / "model.safetensors", dest, target=Target.PT)
    assert result.action is Action.TORCH_SAVE
    assert any("metadata not carried" in note and "epoch" in note for note in result.notes)
    assert_tensors_equal(torch.load(dest, weights_only=True),
                         load_file(str(FIXTURES / "model.safetensors")))


def test_tied_weights_come_back_tied_in_the_pt_file(tmp_path: Path) -> None:
    middle, dest = tmp_path / "tied.safetensors", tmp_path / "tied.pt"
    convert(FIXTURES / "tied.pt", middle)
    convert(middle, dest, target=Target.PT)
    loaded = torch.load(dest, weights_only=True)
    assert_tensors_equal(loaded, torch.load(FIXTURES / "tied.pt", weights_only=True))
    assert loaded["embed.weight"].data_ptr() == loaded["lm_head.weight"].data_ptr()


@pytest.mark.parametrize("unnamed", [True, False], ids=["o_tmpfile", "named-temp"])
def test_staged_files_get_the_umask_mode_and_leave_no_temporary(unnamed: bool, tmp_path: Path,
                                                                monkeypatch) -> None:
    import stat

    if not unnamed:
        monkeypatch.setenv("CKPT_NO_O_TMPFILE", "1")
    old = os.umask(0o002)
    try:
        convert(FIXTURES / "legacy.pt", tmp_path / "copy.pt", target=Target.PT)
        convert(FIXTURES / "legacy.pt", tmp_path / "zip.pt", target=Target.PT, rewrite=True)
        convert(FIXTURES / "legacy.pt", tmp_path / "zip.pt", target=Target.PT, rewrite=True,
                force=True)
    finally:
        os.umask(old)
    assert sorted(os.listdir(tmp_path)) == ["copy.pt", "zip.pt"]
    for name in ("copy.pt", "zip.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o664


def test_failed_rewrite_leaves_no_temporary_named_file(tmp_path: Path, monkeypatch) -> None:
    from ckpt_tool.convert import legacy_rewrite

    monkeypatch.setenv("CKPT_NO_O_TMPFILE", "1")
    real = legacy_rewrite.RangeCopier.blocks

    def flipped(self, *args):
        for block in real(self, *args):
            changed = bytearray(block)
            changed[0] ^= 1
            yield changed

    monkeypatch.setattr(legacy_rewrite.RangeCopier, "blocks", flipped)
    result = convert_file(str(FIXTURES / "legacy.pt"), str(tmp_path / "zip.pt"),
                          ConvertOptions(target=Target.PT, rewrite=True))
    assert "verification failed: storage" in (result.error or "")
    assert os.listdir(tmp_path) == []


def test_a_kernel_copy_that_copies_nothing_falls_back_to_reading(tmp_path: Path,
                                                                  monkeypatch) -> None:
    """Some filesystems answer copy_file_range with 0 bytes for a range they cannot copy: that
    is not the source shrinking; the range is read and written instead."""
    from ckpt_tool.convert import byte_copy

    monkeypatch.setattr(byte_copy, "_copy_kernel", lambda *args: 0)
    source = FIXTURES / "checkpoint.pth.tar"
    result = convert_file(str(source), str(tmp_path / "out.pt"), ConvertOptions(target=Target.PT))
    assert result.error is None
    assert digest(tmp_path / "out.pt") == digest(source)
