"""torch.package archives, read as ``PackageImporter.load_pickle`` reads them
(torch/package/package_importer.py, package_exporter.py), with the restricted unpickler.

A ``PackageExporter`` zip holds resources under ``<package path>/<resource>`` (pickles, text,
binaries), the source of interned modules as ``.py`` files, storages as ``.data/<id>.storage``,
and ``.data/extern_modules`` (the modules taken from the loading environment). Its pickles use
persistent ids of their own: ``('storage', storage type, id, location, numel)`` for the bytes of
``.data/<id>.storage``, and ``('reduce_package', [object id,] function, args)`` for objects that
save themselves: TorchScript modules (``unpackage_script_module(importer, id)``, which loads the
pickle ``.data/ts_code/<id>/data.pkl``, whose storages are named ``<id>.storage``).
"""

from __future__ import annotations

from typing import Any

from ckpt_tool.containers import zipdir
from ckpt_tool.errors import FormatError, LimitExceeded
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import Anomaly, Checkpoint, Format, Loader, PickleRecord, Storage
from ckpt_tool.model.objects import StorageType, StorageView, is_placeholder_type, placeholder
from ckpt_tool.pickles.scan import PickleScan, scan_pickle
from ckpt_tool.pickles.unpickler import KnownGlobal
from ckpt_tool.readers.pickles import collect_globals, load_pickle
from ckpt_tool.readers.torch_zip import TorchArchive, read_records_metadata

DATA_DIR = ".data/"
TS_CODE = ".data/ts_code/"
UNPACKAGE_SCRIPT_MODULE = "torch.jit._script.unpackage_script_module"
_PICKLE_HEAD = 2


def read_torch_package(archive: TorchArchive, limits: Limits) -> Checkpoint:
    source = archive.source
    checkpoint = Checkpoint(path=source.name, format=Format.TORCH_PACKAGE, size=source.size,
                            members=archive.members, anomalies=archive.anomalies,
                            archive_name=archive.name)
    read_records_metadata(archive, checkpoint)
    python = archive.read_text(".data/python_version")
    if python:
        checkpoint.format_version = f"{checkpoint.format_version} (Python {python})"
    loader = _PackageLoader(archive, checkpoint, limits)
    root: dict[str, Any] = {}
    for record in pickle_resources(archive):
        if loader.parses(record):
            root[record] = loader.load(record, Loader.PACKAGE_IMPORTER)
    for record in archive.names():
        if record.startswith(TS_CODE) and record.endswith(".pkl") and record not in loader.loaded:
            loader.scan_only(record)
    checkpoint.root = root
    checkpoint.pickle_protocol = max((p.scan.protocol for p in checkpoint.pickles), default=None)
    checkpoint.globals = collect_globals(checkpoint.pickles, loader.referenced)
    return checkpoint


def pickle_resources(archive: TorchArchive) -> list[str]:
    """Resources whose bytes start like a pickle (``save_pickle`` writes protocol 2 or more),
    told from their bytes: any resource can be handed to ``load_pickle``, whatever its name."""
    records = [(record, member) for record, member in archive.records().items()
               if not record.startswith(DATA_DIR) and member.size > _PICKLE_HEAD]
    stored = [(record, member) for record, member in records if member.method == zipdir.STORED]
    heads = archive.source.read_many([
        (offset, _PICKLE_HEAD) for offset in zipdir.data_offsets(
            archive.source, [member for _, member in stored])])
    starts = {record: head for (record, _), head in zip(stored, heads, strict=True)}
    found = []
    for record, _ in records:
        # A member another tool compressed is inflated (within the limit) to see its start.
        head = starts[record] if record in starts else archive.read(record)[:_PICKLE_HEAD]
        if head[0] == 0x80 and head[1] <= 5:
            found.append(record)
    return found


class _PackageLoader:
    """``load_pickle`` without importing: storages and packaged TorchScript resolved in place."""

    def __init__(self, archive: TorchArchive, checkpoint: Checkpoint, limits: Limits) -> None:
        self.archive, self.checkpoint, self.limits = archive, checkpoint, limits
        self.referenced: list[tuple[str, str]] = []
        self.loaded: set[str] = set()
        self.reduces: dict[Any, Any] = {}
        self.scripts: dict[str, Any] = {}

    def load(self, record: str, loader: Loader) -> Any:
        data = self.archive.read(record)
        root, scan, referenced = load_pickle(data, record, self.limits, self.persistent_load,
                                             built=self.checkpoint.built)
        self.add_record(record, scan, loader)
        self.referenced += referenced
        return root

    def parses(self, record: str) -> bool:
        """A resource that starts like a pickle but does not walk to STOP is binary data (or a
        broken pickle, which lint reports from its own walk)."""
        scan = scan_pickle(self.archive.read(record), 0, self.limits)
        if scan.error and "(limit " in scan.error:
            raise LimitExceeded(f"{record}: {scan.error}")
        if scan.error:
            self.checkpoint.anomalies.append(Anomaly(
                "corrupt", f"{record} starts like a pickle but does not parse: {scan.error}",
                record))
        return scan.error is None

    def scan_only(self, record: str) -> None:
        scan = scan_pickle(self.archive.read(record), 0, self.limits)
        if scan.error:
            self.checkpoint.anomalies.append(Anomaly(
                "corrupt", f"the pickle {record} is corrupt: {scan.error}", record))
        self.add_record(record, scan, Loader.TORCHSCRIPT)

    def add_record(self, record: str, scan: PickleScan, loader: Loader) -> None:
        member = self.archive.member(record)
        assert member is not None
        offset = zipdir.data_offset(self.archive.source, member)
        self.checkpoint.pickles.append(PickleRecord(record, scan, offset, loader=loader))
        self.loaded.add(record)

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise FormatError(f"unexpected persistent id {pid!r:.80}")
        typename = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
        if typename == "storage" and len(pid) == 5:
            return self.storage(*pid[1:])
        if typename == "reduce_package" and len(pid) in (3, 4):
            return self.reduce(pid[1:])
        raise FormatError(f"unknown persistent id {typename!r:.40} (torch.package knows "
                          "'storage' and 'reduce_package')")

    def storage(self, storage_type: Any, key: Any, location: Any, numel: Any) -> StorageView:
        if not isinstance(storage_type, StorageType):
            raise FormatError("a persistent id names no storage type")
        if not isinstance(key, int | str) or type(numel) is not int or numel < 0:
            raise FormatError(f"malformed storage id {key!r:.40}")
        name = str(key) if str(key).endswith(".storage") else f"{key}.storage"
        record = DATA_DIR + name
        storage = self.checkpoint.storages.get(record)
        if storage is None:
            member = self.archive.member(record)
            if member is None:
                raise FormatError(f"storage {key}: the record {self.archive.prefix}{record} "
                                  "is missing")
            nbytes = numel * storage_type.dtype.itemsize
            if nbytes > member.size:
                raise FormatError(f"storage {key} declares {nbytes} bytes but {record} holds "
                                  f"{member.size}")
            if member.method != zipdir.STORED:
                self.checkpoint.anomalies.append(Anomaly(
                    "corrupt", f"{record} is compressed; torch stores tensor data uncompressed",
                    record))
            location_text = location.decode("ascii", "replace") if isinstance(
                location, bytes) else str(location)
            storage = Storage(record, storage_type.dtype, nbytes, location_text,
                              zipdir.data_offset(self.archive.source, member), record)
            self.checkpoint.storages[record] = storage
        return StorageView(storage, storage_type.dtype)

    def reduce(self, data: tuple[Any, ...]) -> Any:
        """``func(importer, *args)``, never called: a packaged TorchScript module is read from
        its own pickle; anything else stays an inert record of the call."""
        reduce_id, func, args = (None, *data) if len(data) == 2 else data
        if reduce_id is not None and reduce_id in self.reduces:
            return self.reduces[reduce_id]
        name = _global_name(func)
        if not isinstance(args, tuple):
            raise FormatError("reduce_package arguments are not a tuple")
        if name == UNPACKAGE_SCRIPT_MODULE and len(args) == 1 and isinstance(args[0], str):
            value = self.script_module(args[0])
        else:
            module, _, qualname = name.rpartition(".")
            value = placeholder(module, qualname)("<PackageImporter>", *args)
        if reduce_id is not None:
            self.reduces[reduce_id] = value
        return value

    def script_module(self, script_id: str) -> Any:
        if script_id not in self.scripts:
            record = f"{TS_CODE}{script_id}/data.pkl"
            if not self.archive.has(record):
                raise FormatError(f"the TorchScript module {script_id}: the record "
                                  f"{self.archive.prefix}{record} is missing")
            self.scripts[script_id] = self.load(record, Loader.TORCHSCRIPT)
        return self.scripts[script_id]


def _global_name(func: Any) -> str:
    if is_placeholder_type(func):
        return func.global_name_of()
    if isinstance(func, KnownGlobal):
        return func.full_name
    raise FormatError(f"reduce_package names {func!r:.60}, not a global")
