"""torch's legacy stream (torch < 1.6, or ``_use_new_zipfile_serialization=False``).

Mirrors ``torch.serialization._legacy_load``: five pickles (magic number, protocol version,
sys_info, the object tree, the list of storage keys) and then, per key in that order, an 8-byte
element count and the storage's bytes. Each storage's offset is found by seeking past the
previous one; no tensor byte is read.
"""

from __future__ import annotations

from typing import Any

from ckpt_tool.containers.source import Source
from ckpt_tool.errors import FormatError, LimitExceeded
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import (
    Anomaly,
    BuiltFacts,
    Checkpoint,
    Format,
    PickleRecord,
    Storage,
)
from ckpt_tool.model.objects import StorageType, StorageView, is_placeholder_type
from ckpt_tool.readers.pickles import collect_globals, load_pickle

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_FIRST_READ = 1 << 16


class _Stream:
    """The pickle region at the start of the file, read in growing pieces as far as needed."""

    def __init__(self, source: Source, limits: Limits) -> None:
        self.source, self.limits = source, limits
        self.data = b""

    def ensure(self, end: int) -> None:
        if end > len(self.data) and len(self.data) < self.source.size:
            want = min(self.source.size, max(end, 2 * len(self.data), _FIRST_READ))
            if want > self.limits.max_pickle_bytes:
                raise LimitExceeded(f"the pickles exceed {self.limits.max_pickle_bytes} bytes "
                                    "(limit max_pickle_bytes)")
            self.data += self.source.read_at(len(self.data), want - len(self.data))

    def load(self, start: int, where: str, persistent: Any = None,
             built: BuiltFacts | None = None) -> tuple[Any, Any, list]:
        self.ensure(start + 1)
        while True:
            try:
                return load_pickle(self.data, where, self.limits, persistent, start, built)
            except FormatError as exc:
                if "ends before STOP" not in str(exc) or len(self.data) >= self.source.size:
                    raise
                self.ensure(2 * len(self.data))


def read_legacy(source: Source, limits: Limits) -> Checkpoint:
    stream = _Stream(source, limits)
    checkpoint = Checkpoint(path=source.name, format=Format.TORCH_LEGACY, size=source.size)
    pos = 0
    header: list[Any] = []
    for where in ("magic number", "protocol version", "sys_info"):
        value, scan, _ = stream.load(pos, where, built=checkpoint.built)
        checkpoint.pickles.append(PickleRecord(where, scan, pos))
        header.append(value)
        pos = scan.end
    magic, protocol_version, sys_info = header
    if magic != MAGIC_NUMBER:
        raise FormatError("invalid magic number: not a torch legacy file")
    if protocol_version != PROTOCOL_VERSION:
        raise FormatError(f"unknown legacy protocol version {protocol_version!r}")
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        checkpoint.byteorder = "big"
    checkpoint.format_version = str(protocol_version)
    # The storages' dtypes are in the object pickle and their offsets after the key list, so the
    # object pickle is built twice: once to learn the storages, once with them located.
    resolver = _LegacyStorages(checkpoint)
    _, scan, _ = stream.load(pos, "object pickle", resolver)
    object_start, pos = pos, scan.end
    keys, keys_scan, _ = stream.load(pos, "storage keys")
    _locate_storages(source, checkpoint, resolver, keys, keys_scan.end)
    resolver.located = True
    root, scan, referenced = stream.load(object_start, "object pickle", resolver,
                                         built=checkpoint.built)
    checkpoint.pickles.append(PickleRecord("object pickle", scan, object_start))
    checkpoint.pickles.append(PickleRecord("storage keys", keys_scan, pos))
    checkpoint.root = root
    checkpoint.pickle_protocol = scan.protocol
    checkpoint.globals = collect_globals(checkpoint.pickles, referenced)
    return checkpoint


class _LegacyStorages:
    """``persistent_load`` for the legacy stream; storage offsets are found afterwards."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.declared: dict[str, tuple[StorageType, str, int]] = {}
        self.located = False

    def __call__(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise FormatError(f"unexpected persistent id {pid!r:.80}")
        if pid[0] == "module" and len(pid) == 4:
            return self._module_record(pid)
        if pid[0] != "storage" or len(pid) != 6:
            raise FormatError(f"unexpected persistent id {pid!r:.80}")
        _, storage_type, key, location, numel, view = pid
        if not isinstance(storage_type, StorageType) or not isinstance(key, str):
            raise FormatError(f"malformed storage id {pid!r:.80}")
        self.declared.setdefault(key, (storage_type, str(location), int(numel)))
        view_offset = 0
        if isinstance(view, tuple) and len(view) == 3 and isinstance(view[1], int):
            view_offset = view[1]
        storage = self.checkpoint.storages.get(key) if self.located else None
        return StorageView(storage, storage_type.dtype, view_offset)


    def _module_record(self, pid: tuple) -> Any:
        """``('module', class, file, source)``: torch.save's legacy writer records each module
        class's source; ``_legacy_load`` compares it with the installed class's (writing a
        ``<Class>.patch`` file where ``dump_patches`` is set) and returns the class."""
        cls = pid[1]
        name = cls.global_name_of() if is_placeholder_type(cls) else getattr(
            cls, "full_name", type(cls).__name__)
        if pid[2] and pid[3] and name not in self.checkpoint.source_records:
            self.checkpoint.source_records.append(name)
        return cls


def _locate_storages(
    source: Source, checkpoint: Checkpoint, resolver: _LegacyStorages, keys: Any, pos: int
) -> None:
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise FormatError("the storage key list is malformed")
    for key in keys:
        if key not in resolver.declared:
            raise FormatError(f"storage key {key!r} is not used by the object pickle")
        storage_type, location, _ = resolver.declared[key]
        itemsize = storage_type.dtype.itemsize
        count = int.from_bytes(source.read_at(pos, 8), checkpoint.byteorder, signed=True)
        nbytes = count * itemsize
        if count < 0 or pos + 8 + nbytes > source.size:
            raise FormatError(f"storage {key} declares {count} elements of {itemsize} bytes, "
                              f"past the end of the file ({source.size} bytes; truncated?)")
        checkpoint.storages[key] = Storage(key, storage_type.dtype, nbytes, location, pos + 8)
        pos += 8 + nbytes
    missing = set(resolver.declared) - set(checkpoint.storages)
    if missing:
        raise FormatError(f"storages {sorted(missing)[:5]} have no data in the file")
    if pos < source.size:
        checkpoint.anomalies.append(Anomaly(
            "ambiguous", f"{source.size - pos} bytes follow the last storage"))
