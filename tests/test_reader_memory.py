"""What keeps the reader's memory small on files of many tensors (issue 15: convert under 256 MB
at 200,000 tensors), checked to change nothing it reads: the memo trim, the zip directory held
as arrays, and the one shared, read-only ``extra`` of plain tensors."""

from __future__ import annotations

import collections
import pickle
import pickletools
import zipfile
from array import array
from pathlib import Path

import pytest
import torch

from ckpt_tool.api import inspect_one
from ckpt_tool.containers import zipdir
from ckpt_tool.containers.source import FileSource
from ckpt_tool.limits import DEFAULT_LIMITS
from ckpt_tool.model.checkpoint import NO_EXTRA, TensorRef
from ckpt_tool.model.dtypes import dtype_named
from ckpt_tool.pickles.memo import without_unused_memo
from ckpt_tool.pickles.scan import scan_pickle
from ckpt_tool.readers import pickles as reader_pickles
from tests.conftest import FIXTURES, MALICIOUS, TORCH_FIXTURES


def _trimmed(data: bytes) -> bytes:
    memo_ops = array("Q")
    scan = scan_pickle(data, memo_ops=memo_ops)
    assert scan.error is None
    return bytes(without_unused_memo(data, memo_ops))


def _put_indices(data: bytes) -> set[int]:
    return {arg for op, arg, _ in pickletools.genops(data) if op.name in ("BINPUT", "LONG_BINPUT")}


def _shared_tree(width: int) -> object:
    shared = ("shared", [1, 2])
    tree: dict[str, object] = collections.OrderedDict()
    for i in range(width):
        tree[f"k{i}"] = (i, f"v{i}", [i, shared] if i % 7 == 0 else [i])
    tree["again"] = shared
    tree["self"] = [tree]  # a cycle: fetched back while the dict is still being built
    return tree


@pytest.mark.parametrize("width", [3, 200, 3_000])  # 3,000: LONG_BINPUT and LONG_BINGET
def test_trimmed_pickle_builds_the_same_tree(width: int) -> None:
    data = pickle.dumps(_shared_tree(width), protocol=2)
    trimmed = _trimmed(data)
    assert len(trimmed) == len(data)
    built, expected = pickle.loads(trimmed), pickle.loads(data)
    assert repr(built) == repr(expected)
    assert built["again"] is built["k0"][2][1]  # shared objects stay shared
    assert built["self"][0] is built
    read = {arg for op, arg, _ in pickletools.genops(data) if op.name.endswith("GET")}
    assert len(_put_indices(trimmed) - read) == 1  # every other put shares one spare index
    assert len(_put_indices(data)) > width


def test_indices_the_pickle_reads_are_kept() -> None:
    data = pickle.dumps(_shared_tree(50), protocol=2)
    read = {arg for op, arg, _ in pickletools.genops(data) if op.name.endswith("GET")}
    assert read and read <= _put_indices(_trimmed(data))


def test_reading_with_the_trim_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fixture torch wrote, inspected with and without the trim: the same document."""
    names = [name for name in TORCH_FIXTURES if name not in MALICIOUS]
    before = [inspect_one(str(FIXTURES / name)) for name in names]
    monkeypatch.setattr(reader_pickles, "TRIM_MEMO_FROM", 0)
    after = [inspect_one(str(FIXTURES / name)) for name in names]
    assert after == before


def test_shared_storages_survive_the_trim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    base = torch.arange(12.0)
    path = tmp_path / "views.pt"
    torch.save({"a": base, "b": base[2:8].view(2, 3), "c": base[::2]}, path)
    monkeypatch.setattr(reader_pickles, "TRIM_MEMO_FROM", 0)
    tensors = inspect_one(str(path))["files"][0]["tensors"]
    assert [(t["name"], t["shape"], t["offset"]) for t in tensors] == [
        ("a", [12], tensors[0]["offset"]), ("b", [2, 3], tensors[0]["offset"] + 8),
        ("c", [6], tensors[0]["offset"])]
    assert len({t["storage"] for t in tensors}) == 1


def test_the_directory_lists_what_zipfile_lists() -> None:
    path = FIXTURES / "checkpoint.pth.tar"
    with FileSource(path) as source:
        directory = zipdir.read_central_directory(source, DEFAULT_LIMITS)
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    assert len(directory) == len(infos)
    assert [(m.name, m.header_offset, m.compressed_size, m.size, m.crc32) for m in directory] == [
        (i.filename, i.header_offset, i.compress_size, i.file_size, i.CRC) for i in infos]
    assert directory[-1] == list(directory)[-1]
    assert directory[1:3] == list(directory)[1:3]


def test_plain_tensors_share_one_read_only_extra() -> None:
    dtype = dtype_named("float32")
    first, second = TensorRef(dtype, (2,), (1,)), TensorRef(dtype, (3,), (1,))
    assert first.extra is NO_EXTRA and second.extra is NO_EXTRA
    with pytest.raises(TypeError):
        first.extra["note"] = "x"  # type: ignore[index]
    first.set_extra("note", "x")
    assert first.extra == {"note": "x"} and second.extra == {} and NO_EXTRA == {}


def test_trim_is_used_on_large_pickles_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def spy(data: bytes, memo_ops: array) -> bytes | bytearray:
        calls.append(len(data))
        return without_unused_memo(data, memo_ops)

    monkeypatch.setattr(reader_pickles, "without_unused_memo", spy)
    data = pickle.dumps(list(range(100)), protocol=2)
    reader_pickles.load_pickle(data, "t", DEFAULT_LIMITS, None)
    assert calls == []
    monkeypatch.setattr(reader_pickles, "TRIM_MEMO_FROM", len(data))
    root, _, _ = reader_pickles.load_pickle(data, "t", DEFAULT_LIMITS, None)
    assert calls == [len(data)] and root == list(range(100))

