"""Read a written safetensors file back and check it against what its sources say it holds.

The header is read back with ckpt's own reader, one entry at a time (``header_items``: at 200,000
tensors the parsed dictionary would cost 100 MB), and must be the bytes laid out, name for name,
with each tensor's dtype, shape and offsets. Bytes copied unchanged were checked as they were
copied (``verify_thread``); a tensor built in blocks (strided, byte-swapped, cast) is compared
block by block with the blocks its sources give again (re-read from local files; a URL's bytes
were compared as they were written, so a remote model is not fetched twice). A verification
costs no more memory than a write.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ckpt_tool.containers.remote import is_url
from ckpt_tool.containers.source import FileSource
from ckpt_tool.convert.assemble import assembled_blocks
from ckpt_tool.convert.byte_copy import BUFFER, check_written, first_difference
from ckpt_tool.convert.pieces import byte_runs, pieces_of
from ckpt_tool.convert.plan import RESERVED_NAME, Entry
from ckpt_tool.convert.progress import Meter
from ckpt_tool.convert.safetensors_layout import Layout
from ckpt_tool.convert.sources import SourceFiles
from ckpt_tool.errors import ConversionError, FormatError
from ckpt_tool.limits import DEFAULT_LIMITS
from ckpt_tool.readers.safetensors import header_items


def verify_safetensors(path: str, layout: Layout, metadata: dict[str, str],
                       sources: SourceFiles, byteorder: str, meter: Meter,
                       built: list[int] | None = None) -> None:
    """Check the header, then the bytes of the entries at ``built`` (every entry when None)."""
    with FileSource(path) as output:
        if output.size != layout.size:
            raise _fail(f"the output holds {output.size} bytes; expected {layout.size}")
        check_header(output, layout, metadata)
        for index in range(len(layout.entries)) if built is None else built:
            entry, begin = layout.entries[index], layout.place(index)[0]
            meter.label(entry.name)
            for at, expected in expected_blocks(entry, sources, byteorder):
                check_written(output.fileno(), begin + at, expected, f"tensor {entry.name}",
                              begin)
                meter.add(len(expected))


def check_header(output: FileSource, layout: Layout, metadata: dict[str, str]) -> None:
    """The output's header is the one laid out and reads back as ``metadata`` and the entries,
    in data order, each at its place."""
    expected = layout.header
    assert expected is not None, "the header is checked once"
    if not _file_starts_with(output, expected):
        written = output.read_at(0, layout.data_start)
        raise _fail(f"the header differs from the one written at byte "
                    f"{first_difference(written, bytes(expected))}")
    del expected
    layout.release_header()  # in the file and checked; the read-back below reads the file
    try:
        items = header_items(output, DEFAULT_LIMITS)
        index = 0
        for name, info in items:
            if name == RESERVED_NAME:
                if index or info != metadata:
                    raise _fail("the output's metadata differs")
                continue
            if index >= len(layout.entries):
                raise _fail(f"the output holds an unexpected tensor {name}")
            _check_entry(name, info, layout, index)
            index += 1
    except FormatError as exc:
        raise _fail(f"the output's header cannot be read: {exc}") from None
    if index != len(layout.entries):
        raise _fail(f"the output holds {index} tensors; expected {len(layout.entries)}")


def _file_starts_with(output: FileSource, expected: bytearray) -> bool:
    """Compared in the file's map where it has one: no copy of a 20 MB header."""
    mapped = output.mapped
    if mapped is None or output.size < len(expected):
        return output.read_at(0, len(expected)) == expected
    output.note_read(0, len(expected))
    with memoryview(mapped) as view, view[: len(expected)] as written:
        return written == expected


def _check_entry(name: str, info: Any, layout: Layout, index: int) -> None:
    entry = layout.entries[index]
    if name != entry.name:
        raise _fail(f"the output holds {name} where {entry.name} was written")
    if not isinstance(info, dict):
        raise _fail(f"tensor {name} has no header entry")
    shape = list(entry.tensor.shape)
    if info.get("dtype") != entry.dtype.safetensors or info.get("shape") != shape:
        raise _fail(f"tensor {name} is {info.get('dtype')} {info.get('shape')}, expected "
                    f"{entry.dtype.safetensors} {shape}")
    begin, end = layout.place(index)
    expected = [begin - layout.data_start, end - layout.data_start]
    if info.get("data_offsets") != expected:
        raise _fail(f"tensor {name} lies at {info.get('data_offsets')}, not where it was "
                    f"written ({expected})")


def expected_blocks(entry: Entry, sources: SourceFiles, byteorder: str
                    ) -> Iterator[tuple[int, Any]]:
    """(byte offset in the tensor's output, bytes) as the sources give them again, for the
    tensor's pieces in local files."""
    pieces = pieces_of(entry.tensor, sources.own_file)
    if any(is_url(piece.file) for piece in pieces):
        return
    runs = byte_runs(entry, pieces, byteorder)
    if runs is None:
        yield from assembled_blocks(entry, pieces, sources, byteorder)
        return
    for run in runs:
        for start in range(0, run.length, BUFFER):
            count = min(BUFFER, run.length - start)
            yield run.at + start, sources.copy_of(run.file, run.offset + start, count)


def _fail(message: str) -> ConversionError:
    return ConversionError(f"verification failed: {message}")
