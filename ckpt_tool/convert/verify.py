"""Read a written safetensors file back and compare it with what the source says it should hold.

Names and metadata come from ``safetensors.safe_open``, as any consumer would read them; each
tensor's dtype, shape and offsets from the header; its bytes are compared block by block between
memory maps of the output and the source, so a verification costs no more memory than a write.
"""

from __future__ import annotations

from typing import Any

from ckpt_tool.containers.source import FileSource
from ckpt_tool.convert.plan import Entry
from ckpt_tool.convert.progress import Meter
from ckpt_tool.convert.tensordata import output_blocks
from ckpt_tool.errors import ConversionError
from ckpt_tool.limits import DEFAULT_LIMITS
from ckpt_tool.readers.safetensors import read_header
from ckpt_tool.readers.tensor_bytes import open_map


def verify_safetensors(path: str, entries: list[Entry], metadata: dict[str, str],
                       source_map: Any, byteorder: str, meter: Meter) -> None:
    _check_names_and_metadata(path, entries, metadata)
    with FileSource(path) as source:
        header, data_start = read_header(source, DEFAULT_LIMITS)
    with open_map(path) as output_map:
        for entry in entries:
            begin, end = _check_header_entry(header.get(entry.name), entry)
            _compare_bytes(output_map, data_start + begin, data_start + end, entry, source_map,
                           byteorder, meter)


def _fail(message: str) -> ConversionError:
    return ConversionError(f"verification failed: {message}")


def _check_names_and_metadata(path: str, entries: list[Entry], metadata: dict[str, str]) -> None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="numpy") as reader:
            names, written = set(reader.keys()), reader.metadata() or {}
    except SafetensorError as exc:
        raise _fail(f"safetensors cannot open the output: {exc}") from None
    expected = {entry.name for entry in entries}
    if names != expected:
        missing, extra = sorted(expected - names)[:5], sorted(names - expected)[:5]
        raise _fail(f"the output's tensors differ (missing {missing}, unexpected {extra})")
    if written != metadata:
        keys = sorted(k for k in set(written) | set(metadata) if written.get(k) != metadata.get(k))
        raise _fail(f"the output's metadata differs at {keys[:5]}")


def _check_header_entry(info: Any, entry: Entry) -> tuple[int, int]:
    if not isinstance(info, dict):
        raise _fail(f"tensor {entry.name} is missing from the header")
    shape = list(entry.tensor.shape)
    if info.get("dtype") != entry.dtype.safetensors or info.get("shape") != shape:
        raise _fail(f"tensor {entry.name} is {info.get('dtype')} {info.get('shape')}, expected "
                    f"{entry.dtype.safetensors} {list(entry.tensor.shape)}")
    begin, end = info["data_offsets"]
    if end - begin != entry.nbytes:
        raise _fail(f"tensor {entry.name} holds {end - begin} bytes, expected {entry.nbytes}")
    return begin, end


def _compare_bytes(output_map: Any, start: int, end: int, entry: Entry, source_map: Any,
                   byteorder: str, meter: Meter) -> None:
    import numpy as np

    position = start
    for block in output_blocks(source_map, entry, byteorder):
        written = np.frombuffer(output_map, np.uint8, count=block.size, offset=position)
        differs = _first_difference(written, block)
        if differs is not None:
            raise _fail(f"tensor {entry.name} differs from the source at byte "
                        f"{position - start + differs}")
        position += block.size
        meter.add(block.size)
    if position != end:
        raise _fail(f"tensor {entry.name}: {position - start} bytes compared, "
                    f"{end - start} written")


_COMPARE_BYTES = 1 << 20


def _first_difference(a: Any, b: Any) -> int | None:
    """Where two equal-length uint8 arrays first differ, compared 1 MB at a time."""
    import numpy as np

    for start in range(0, a.size, _COMPARE_BYTES):
        x, y = a[start : start + _COMPARE_BYTES], b[start : start + _COMPARE_BYTES]
        if not np.array_equal(x, y):
            return start + int(np.argmax(x != y))
    return None
