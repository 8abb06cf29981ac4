"""Rewrite a legacy (pre-1.6) ``torch.save`` stream as torch's zip format, without torch.

The object pickle is kept opcode for opcode except for its persistent ids: the legacy stream
names a storage ``('storage', type, key, location, numel, view_metadata)`` and the zip format
``('storage', type, key, location, numel)`` (``torch.serialization._legacy_save`` and ``_save``).
``view_metadata`` is None since torch 0.4 (storages are no longer views), so the rewrite drops the
``NONE`` opcode that closes each storage tuple, and any ``FRAME`` opcode (frame lengths would no
longer add up; frames are optional). Storage keys stay as they are: ``data/<key>`` is found by key.
"""

from __future__ import annotations

import pickletools
from typing import Any

from ckpt_tool.containers.source import FileSource
from ckpt_tool.convert.atomic import Staging
from ckpt_tool.convert.byte_copy import RangeCopier
from ckpt_tool.convert.progress import Meter
from ckpt_tool.convert.torch_zip_writer import TorchZipWriter, archive_name
from ckpt_tool.errors import ConversionError, FormatError
from ckpt_tool.model.checkpoint import Checkpoint, Format
from ckpt_tool.model.tree import walk
from ckpt_tool.model.values import to_json
from ckpt_tool.readers import read_checkpoint

_STRINGS = frozenset({"BINUNICODE", "SHORT_BINUNICODE", "UNICODE", "BINUNICODE8",
                      "SHORT_BINSTRING", "BINSTRING", "STRING"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})


def rewrite_legacy(checkpoint: Checkpoint, dest: str, staging: Staging, verify: bool,
                   meter: Meter) -> None:
    """Each storage's bytes go through ``RangeCopier``'s buffer to the zip writer (which needs
    them for its CRC); the copier starts their writeback and, with ``verify``, compares them with
    the source in its thread. The output is then read back with ckpt's reader: same tree, same
    storages, where they were written."""
    if checkpoint.format is not Format.TORCH_LEGACY:
        raise ConversionError("--rewrite turns a legacy (pre-1.6) file into the zip format; "
                              f"this file is {checkpoint.format.value}")
    record = next(p for p in checkpoint.pickles if p.member == "object pickle")
    total = sum(storage.nbytes for storage in checkpoint.storages.values())
    meter.grow(total * (2 if verify else 1))
    with FileSource(checkpoint.path) as source:
        assert source.mapped is not None
        pickle = zip_pickle(bytes(source.mapped[record.data_offset : record.scan.end]))
        output = staging.open_for(dest)
        written: dict[str, int] = {}
        with RangeCopier(output.fileno(), verify, meter.add) as copier:
            with TorchZipWriter(output, archive_name(dest)) as writer:
                writer.write("data.pkl", pickle)
                writer.write_header_records(checkpoint.byteorder)
                for storage in checkpoint.storages.values():
                    assert storage.offset is not None
                    blocks = copier.blocks(source, storage.offset, storage.nbytes)
                    at = writer.write_blocks(f"data/{storage.key}", storage.nbytes, blocks)
                    output.flush()
                    copier.copied(source, storage.offset, storage.nbytes, at,
                                  f"storage {storage.key}")
                    written[storage.key] = at
                writer.write_trailer()
            output.flush()
            copier.finish()
        if verify:
            verify_rewrite(checkpoint, staging.readable_path(output), written)


def zip_pickle(data: bytes) -> bytes:
    """The legacy object pickle with zip-format persistent ids (see the module docstring)."""
    try:
        ops = [(op.name, arg, pos) for op, arg, pos in pickletools.genops(data)]
    except ValueError as exc:
        raise FormatError(f"object pickle: {exc}") from None
    ends = [pos for _, _, pos in ops[1:]] + [len(data)]
    drop = {index for index, (name, _, _) in enumerate(ops) if name == "FRAME"}
    strings = _memo_strings(ops)
    for index, (name, _, _) in enumerate(ops):
        if name == "BINPERSID":
            drop.add(_view_metadata_opcode(ops, index, strings))
        elif name == "PERSID":
            raise ConversionError("the object pickle uses text persistent ids (protocol 0); "
                                  "the rewrite handles torch's binary ones")
    kept = [data[pos:end] for index, ((_, _, pos), end) in enumerate(zip(ops, ends, strict=True))
            if index not in drop]
    return b"".join(kept)


def _memo_strings(ops: list[tuple[str, Any, int]]) -> dict[int, str]:
    """Memo slot -> string, for strings the pickle memoizes (``'storage'`` is fetched again)."""
    strings: dict[int, str] = {}
    next_slot = 0
    for index, (name, arg, _) in enumerate(ops):
        if name not in _PUTS:
            continue
        slot = next_slot if name == "MEMOIZE" else int(arg)
        next_slot = max(next_slot, slot + 1)
        previous, value, _ = ops[index - 1]
        if previous in _STRINGS:
            strings[slot] = value
    return strings


def _view_metadata_opcode(ops: list[tuple[str, Any, int]], persid: int,
                          strings: dict[int, str]) -> int:
    """The index of the ``NONE`` that ends the storage tuple this ``BINPERSID`` consumes."""
    close = persid - 1
    while close >= 0 and ops[close][0] in _PUTS:
        close -= 1
    mark = _matching_mark(ops, close) if ops[close][0] == "TUPLE" else -1
    kind = _string_at(ops, mark + 1, strings) if mark >= 0 else None
    if kind == "module":
        raise ConversionError("the file pickles whole module classes with their source code "
                              "(a legacy nn.Module save); the rewrite handles tensors and "
                              "containers only: load it with torch and save its state_dict")
    if kind != "storage" or ops[close - 1][0] != "NONE":
        raise ConversionError(f"persistent id at byte {ops[persid][2]} of the object pickle is "
                              "not a storage id ending in None (a storage view from torch < "
                              "0.4?); it cannot be rewritten")
    return close - 1


def _matching_mark(ops: list[tuple[str, Any, int]], close: int) -> int:
    depth = 0
    for index in range(close - 1, -1, -1):
        name = ops[index][0]
        if name == "MARK":
            if depth == 0:
                return index
            depth -= 1
        elif name in _MARK_CONSUMERS:
            depth += 1
    return -1


_MARK_CONSUMERS = frozenset(
    op.name for op in pickletools.opcodes if pickletools.markobject in op.stack_before
)


def _string_at(ops: list[tuple[str, Any, int]], index: int, strings: dict[int, str]) -> Any:
    name, arg, _ = ops[index]
    if name in _STRINGS:
        return arg
    if name in _GETS:
        return strings.get(int(arg))
    return None


def verify_rewrite(source: Checkpoint, path: str, written: dict[str, int]) -> None:
    """Read the output back with ckpt's reader: same tree, same storages, each where its bytes
    were written (and checked while copying)."""
    with FileSource(path) as output_source:
        output = read_checkpoint(output_source)
    _compare_trees(source, output)
    for key, storage in source.storages.items():
        found = output.storages[key]
        if found.offset != written[key] or found.nbytes != storage.nbytes:
            raise ConversionError(f"verification failed: storage {key} is not where its bytes "
                                  "were written")


def _compare_trees(source: Checkpoint, output: Checkpoint) -> None:
    before, after = list(walk(source.root)), list(walk(output.root))
    if [leaf.path for leaf in before] != [leaf.path for leaf in after]:
        raise ConversionError("verification failed: the rewritten file's tree differs")
    for old, new in zip(before, after, strict=True):
        if _describe(old.value) != _describe(new.value):
            raise ConversionError(f"verification failed: {old.name} differs after the rewrite")
    if set(source.storages) != set(output.storages):
        raise ConversionError("verification failed: the rewritten file's storages differ")


def _describe(value: Any) -> Any:
    from ckpt_tool.model.checkpoint import TensorRef

    if isinstance(value, TensorRef):
        storage = value.storage
        return (value.dtype.name, value.shape, value.stride, value.storage_offset, value.kind,
                value.requires_grad, storage.key if storage else None,
                storage.nbytes if storage else None)
    return repr(to_json(value))
