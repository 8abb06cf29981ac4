"""The pieces of the fast copy path: the header laid out without a dictionary, read back one
entry at a time, and byte for byte what safetensors itself writes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ckpt_tool.convert.byte_copy import first_difference
from ckpt_tool.errors import FormatError
from ckpt_tool.limits import DEFAULT_LIMITS
from ckpt_tool.readers.safetensors import header_items
from tests.convert_helpers import convert


class _Header:
    def __init__(self, text: str) -> None:
        raw = text.encode("utf-8")
        self.data = struct.pack("<Q", len(raw)) + raw

    def read_at(self, offset: int, length: int) -> bytes:
        return self.data[offset:offset + length]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=6),
       st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]))
def test_header_items_reads_what_json_loads_reads(header: dict, separators: tuple) -> None:
    text = " " + json.dumps(header, ensure_ascii=False, separators=separators) + "   "
    assert dict(header_items(_Header(text), DEFAULT_LIMITS)) == json.loads(text)


@pytest.mark.parametrize("text", ['{"a":1,}', '{"a":1', '{"a":1}x', '{a:1}', '{"a" 1}',
                                  '{"a":}', "[1]"])
def test_header_items_refuses_what_json_refuses(text: str) -> None:
    if text != "[1]":  # valid JSON, but no header: not an object
        with pytest.raises(ValueError):
            json.loads(text)
    with pytest.raises(FormatError):
        list(header_items(_Header(text), DEFAULT_LIMITS))


def test_first_difference() -> None:
    a = bytes(range(256)) * 40
    for at in (0, 1, 255, 4000, len(a) - 1):
        b = bytearray(a)
        b[at] ^= 0x80
        assert first_difference(a, bytes(b)) == at
    assert first_difference(a, a) == len(a)
    assert first_difference(a, a[:10]) == 10


def test_unusual_names_are_byte_for_byte_what_safetensors_writes(tmp_path: Path) -> None:
    """Names that JSON escapes or that are not ASCII, empty and scalar tensors, ties in the data
    order: the layout, header text and padding are safetensors' own."""
    from safetensors.torch import save_file

    torch.manual_seed(1)
    state = {"é.weight": torch.randn(3), "a\"b\\c\n": torch.randn(2, 2), "\u00ff": torch.zeros(0),
             "scalar": torch.tensor(2.5), "Z": torch.arange(5, dtype=torch.int32),
             "z": torch.arange(5, dtype=torch.int32), "日本": torch.ones(4, dtype=torch.float16),
             "\U0001f600": torch.ones(3, dtype=torch.bool)}
    source = tmp_path / "model.pt"
    torch.save(state, source)
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    convert(source, ours)
    save_file(state, str(theirs), metadata={"format": "pt"})
    assert ours.read_bytes() == theirs.read_bytes()


def test_a_broken_check_fails_the_conversion(tmp_path: Path, monkeypatch) -> None:
    """An unexpected error in the verification thread is a failure, never a pass."""
    import os

    from ckpt_tool.convert import verify_thread
    from ckpt_tool.convert.core import convert_file
    from ckpt_tool.convert.options import ConvertOptions

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(verify_thread.Verifier, "_check_one", broken)
    out = tmp_path / "out"
    out.mkdir()
    result = convert_file(str(Path(__file__).parent.parent / "fixtures" / "state_dict.pt"),
                          str(out / "x.safetensors"), ConvertOptions())
    assert result.error == "verification failed: RuntimeError: boom"
    assert os.listdir(out) == []


def _writeback_threads() -> list[object]:
    import threading

    return [t for t in threading.enumerate() if t.name == "ckpt-writeback"]


def test_writeback_is_started_for_every_byte_in_its_own_thread(tmp_path: Path,
                                                               monkeypatch) -> None:
    """The disk is asked to write each range as the copy passes it, from a thread that has
    ended (every range handed over) when the copy is finished."""
    import threading

    from ckpt_tool.convert import byte_copy

    calls: list[tuple[int, int, str]] = []
    monkeypatch.setattr(byte_copy, "WRITEBACK_EVERY", 1 << 16)
    monkeypatch.setattr(byte_copy, "start_writeback", lambda fd, offset, count: calls.append(
        (offset, count, threading.current_thread().name)))
    source = tmp_path / "model.pt"
    torch.save({f"w{i}": torch.full((50_000,), float(i)) for i in range(4)}, source)
    out = tmp_path / "out.safetensors"
    convert(source, out)
    assert {name for _, _, name in calls} == {"ckpt-writeback"}
    assert not _writeback_threads()
    covered = sorted((offset, offset + count) for offset, count, _ in calls)
    data_start = 8 + struct.unpack("<Q", out.read_bytes()[:8])[0]
    end = data_start
    for low, high in covered:
        assert low <= end
        end = max(end, high)
    assert end == out.stat().st_size


def test_a_failed_copy_ends_the_writeback_thread(tmp_path: Path, monkeypatch) -> None:
    from ckpt_tool.convert import byte_copy
    from ckpt_tool.convert.core import convert_file
    from ckpt_tool.convert.options import ConvertOptions

    monkeypatch.setattr(byte_copy, "WRITEBACK_EVERY", 1 << 16)
    real = byte_copy.RangeCopier._copy_buffered
    copies = [0]

    def failing(self, src: int, offset: int, at: int, count: int) -> int:
        copies[0] += 1
        if copies[0] == 3:
            raise OSError(28, "No space left on device")
        return real(self, src, offset, at, count)

    monkeypatch.setattr(byte_copy.RangeCopier, "_copy_buffered", failing)
    source = tmp_path / "model.pt"
    torch.save({f"w{i}": torch.full((50_000,), float(i)) for i in range(4)}, source)
    out = tmp_path / "out"
    out.mkdir()
    result = convert_file(str(source), str(out / "x.safetensors"), ConvertOptions())
    assert result.error == f"writing {out / 'x.safetensors'} failed: No space left on device"
    assert not _writeback_threads()
    assert list(out.iterdir()) == []


def test_the_output_is_allocated_ahead(tmp_path: Path) -> None:
    import os

    from ckpt_tool.convert.byte_copy import preallocate

    with open(tmp_path / "out", "wb") as out:
        preallocate(out.fileno(), 3 << 20)
        status = os.fstat(out.fileno())
    assert status.st_size == 3 << 20
    assert (tmp_path / "out").read_bytes() == bytes(3 << 20)
    if status.st_blocks == 0:
        pytest.skip("this filesystem does not allocate ahead")
    assert status.st_blocks * 512 >= 3 << 20


def _fallocate_failing_with(code: int):
    import ctypes

    def fallocate(fd: int, mode: int, offset: int, length: int) -> int:
        ctypes.set_errno(code)
        return -1

    return fallocate


def test_a_filesystem_that_cannot_allocate_ahead_gets_a_sparse_file(tmp_path: Path,
                                                                     monkeypatch) -> None:
    import errno

    from ckpt_tool.convert import byte_copy

    monkeypatch.setattr(byte_copy, "_fallocate", [_fallocate_failing_with(errno.EOPNOTSUPP)])
    source = tmp_path / "model.pt"
    state = {"a": torch.arange(1000.0), "b": torch.ones(3, 5, dtype=torch.float16)}
    torch.save(state, source)
    out = tmp_path / "out.safetensors"
    convert(source, out)
    from safetensors.torch import load_file

    loaded = load_file(out)
    assert all(torch.equal(loaded[name], value) for name, value in state.items())


def test_no_room_fails_before_anything_is_copied(tmp_path: Path, monkeypatch) -> None:
    import errno
    import os

    from ckpt_tool.convert import byte_copy
    from ckpt_tool.convert.core import convert_file
    from ckpt_tool.convert.options import ConvertOptions

    monkeypatch.setattr(byte_copy, "_fallocate", [_fallocate_failing_with(errno.ENOSPC)])
    copies = []
    monkeypatch.setattr(byte_copy.RangeCopier, "copy", lambda *args, **kwargs: copies.append(1))
    source = tmp_path / "model.pt"
    torch.save({"a": torch.arange(1000.0)}, source)
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "x.safetensors"
    result = convert_file(str(source), str(dest), ConvertOptions())
    assert result.error == f"writing {dest} failed: No space left on device"
    assert copies == []
    assert os.listdir(out) == []
