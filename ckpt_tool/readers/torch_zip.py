"""torch's zip format (torch >= 1.6) and TorchScript archives.

Mirrors ``torch.serialization._load`` and caffe2's ``PyTorchStreamReader``: the archive's folder
is the part before the first ``/`` of the first member's name, records are looked up under it,
``data.pkl`` holds the object tree and ``data/<key>`` each storage's bytes.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from ckpt_tool.containers import zipdir
from ckpt_tool.containers.source import Source
from ckpt_tool.errors import FormatError, NotACheckpoint
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import Anomaly, Checkpoint, Format, Member, PickleRecord, Storage
from ckpt_tool.model.objects import ScriptArchive, StorageType, StorageView
from ckpt_tool.readers.pickles import collect_globals, load_pickle

if TYPE_CHECKING:
    from ckpt_tool.pickles.scan import PickleScan

_SMALL_RECORD = 4096


class TorchArchive:
    """The records of one torch archive, addressed as torch addresses them."""

    def __init__(self, source: Source, limits: Limits) -> None:
        self.source, self.limits = source, limits
        self.anomalies: list[Anomaly] = []
        self.members = zipdir.read_central_directory(source, limits, self.anomalies)
        if not self.members:
            raise NotACheckpoint("not a checkpoint: an empty zip archive")
        first = self.members.names[0]
        if "/" not in first:
            raise NotACheckpoint(f"not a checkpoint: a zip archive whose first member {first!r} "
                                 "is not in a folder, as torch.save writes")
        self.name = first.split("/", 1)[0]
        self.prefix = self.name + "/"
        self.scans: dict[str, PickleScan] = {}
        """Walks of records' pickles that a caller made already (lint's), so a read does not
        walk them again; only walks from byte 0 with every name read from its opcode."""
        self._found: dict[str, int] = {}
        """Member index by name as miniz compares it (``without_case``), for the members inside
        the folder: the one index on 200,000 storages, its keys the names themselves."""
        self._index()

    def _index(self) -> None:
        prefix, size = self.prefix, len(self.prefix)
        names = self.members.names
        if _plain_names(names, prefix):
            # every name is its own folded form and lies inside the folder: one C-level pass
            # (reversed, so that of equal names the first one's index stays)
            self._found = dict(zip(reversed(names), range(len(names) - 1, -1, -1), strict=True))
            inside = names
        else:
            inside = self._index_each(names)
        self._report_equal_names(inside)
        text = "\n" + "\n".join(inside)
        if ".." not in text and f"\n{prefix}/" not in text:
            return  # the quick test: no name that could climb
        climbing = [name[size:] for name in inside if ".." in name or name[size:size + 1] == "/"]
        for record in dict.fromkeys(climbing):
            if ".." in record.split("/") or record.startswith("/"):
                self.anomalies.append(Anomaly(
                    "corrupt", f"member name {prefix}{record} climbs out of the archive", record))

    def _index_each(self, names: list[str]) -> list[str]:
        """Index the names inside the folder one by one; note the others. Returns the inside
        ones, in the archive's order."""
        prefix = self.prefix
        folded_prefix = without_case(prefix)
        found = self._found
        inside: list[str] = []
        outside: list[int] = []
        for index in range(len(names) - 1, -1, -1):  # ckpt reads the first of equal names
            name = names[index]
            folded = without_case(name)
            if folded.startswith(folded_prefix):
                found[folded] = index
                inside.append(name)
            else:
                outside.append(index)
        inside.reverse()
        self.anomalies += [Anomaly(
            "ambiguous", f"member {names[index]} lies outside the folder {prefix} that torch "
            "reads: torch ignores it, other tools may not", names[index])
            for index in reversed(outside)]
        return inside

    def _report_equal_names(self, inside: list[str]) -> None:
        """miniz, torch's zip reader, compares names without ASCII case, and of equal names it
        may find any one, not the first that ckpt reads."""
        if len(self._found) == len(inside):
            return
        names = Counter(without_case(name) for name in inside)
        for folded, count in names.items():
            if count > 1:
                spellings = sorted({name for name in inside if without_case(name) == folded})
                how = " (torch compares names without case)" if len(spellings) > 1 else ""
                self.anomalies.append(Anomaly(
                    "ambiguous", f"the archive holds {count} members named "
                    f"{' or '.join(spellings)}{how}: torch and other zip readers may load "
                    "different ones", spellings[0]))

    def records(self) -> dict[str, Member]:
        """Every record in the folder by its exact name (the first of equal names, as ckpt
        reads), in the archive's order."""
        return {record: self.members[index] for record, index in self._exact().items()}

    def names(self) -> list[str]:
        """Record names in the archive's order (the first of equal names, as ckpt reads)."""
        return list(self._exact())

    def _exact(self) -> dict[str, int]:
        folded, size, names = without_case(self.prefix), len(self.prefix), self.members.names
        exact: dict[str, int] = {}
        for index, name in enumerate(names):
            if without_case(name).startswith(folded):
                exact.setdefault(name[size:], index)
        return exact

    def member(self, record: str) -> Member | None:
        """The member torch finds for ``record``: miniz looks names up without ASCII case."""
        index = self._found.get(without_case(self.prefix + record))
        return None if index is None else self.members[index]

    def has(self, record: str) -> bool:
        return self.member(record) is not None

    def read(self, record: str, max_bytes: int | None = None) -> bytes:
        member = self.member(record)
        if member is None:
            raise FormatError(f"the record {self.prefix}{record} is missing")
        return zipdir.read_member(self.source, member, max_bytes or self.limits.max_pickle_bytes)

    def read_text(self, record: str) -> str | None:
        member = self.member(record)
        if member is None or member.size > _SMALL_RECORD:
            return None
        return self.read(record).decode("utf-8", "replace").strip()


def read_torch_zip(source: Source, limits: Limits, archive: TorchArchive | None = None
                   ) -> Checkpoint:
    archive = archive or TorchArchive(source, limits)
    is_torchscript = archive.has("constants.pkl")
    if not archive.has("data.pkl"):
        if any(m.name.endswith(".npy") for m in archive.members):
            raise NotACheckpoint("not a checkpoint: a numpy .npz archive")
        raise NotACheckpoint(f"not a checkpoint: a zip archive without {archive.prefix}data.pkl")
    checkpoint = Checkpoint(
        path=source.name,
        format=Format.TORCHSCRIPT if is_torchscript else Format.TORCH_ZIP,
        size=source.size,
        members=archive.members,
        anomalies=archive.anomalies,
        archive_name=archive.name,
    )
    read_records_metadata(archive, checkpoint)
    root, referenced = _load_archive_pickle(archive, checkpoint, "data")
    checkpoint.pickle_protocol = checkpoint.pickles[0].scan.protocol
    if is_torchscript:
        root, more = _read_torchscript_parts(archive, checkpoint, root)
        referenced += more
    checkpoint.root = root
    checkpoint.globals = collect_globals(checkpoint.pickles, referenced)
    return checkpoint


def _load_archive_pickle(archive: TorchArchive, checkpoint: Checkpoint,
                         name: str) -> tuple[Any, list[tuple[str, str]]]:
    """Build ``<name>.pkl``, its storages in ``<name>/`` (torch.jit reads every archive so)."""
    record = f"{name}.pkl"
    member = archive.member(record)
    if member is None:
        raise FormatError(f"the record {archive.prefix}{record} is missing")
    storages = _StorageResolver(archive, checkpoint, f"{name}/")
    # Passed, not kept: the bytes can go once the unpickler has its own (pickles.load_pickle)
    root, scan, referenced = load_pickle(archive.read(record), record, archive.limits, storages,
                                         built=checkpoint.built, scan=archive.scans.get(record))
    checkpoint.pickles.append(PickleRecord(record, scan, zipdir.data_offset(archive.source,
                                                                             member)))
    if scan.end < member.size:
        checkpoint.anomalies.append(Anomaly(
            "ambiguous", f"{record} holds {member.size - scan.end} bytes after its STOP opcode",
            record))
    return root, referenced


def _read_torchscript_parts(archive: TorchArchive, checkpoint: Checkpoint,
                            module: Any) -> tuple[ScriptArchive, list[tuple[str, str]]]:
    """The constants table ``torch.jit.load`` reads beside data.pkl. Its ``traced_inputs.pkl``
    it leaves alone (a loaded module's ``_retrieve_traced_inputs()`` is empty, and torch.jit.save
    writes their storages empty), and so does ckpt."""
    constants, referenced = _load_archive_pickle(archive, checkpoint, "constants")
    if not isinstance(constants, tuple):
        raise FormatError("constants.pkl does not hold a tuple of constants")
    return ScriptArchive(module, constants), referenced


def read_records_metadata(archive: TorchArchive, checkpoint: Checkpoint) -> None:
    version = archive.read_text(".data/version") or archive.read_text("version")
    format_version = archive.read_text(".format_version")
    checkpoint.format_version = (
        f"{version} (format {format_version})" if format_version else version
    )
    byteorder = archive.read_text("byteorder")
    if byteorder is not None:
        if byteorder not in ("little", "big"):
            raise FormatError(f"byteorder record says {byteorder!r}, not little or big")
        checkpoint.byteorder = byteorder
    alignment = archive.read_text(".storage_alignment")
    if alignment and alignment.isdigit():
        checkpoint.storage_alignment = int(alignment)
    checkpoint.serialization_id = archive.read_text(".data/serialization_id")


class _StorageResolver:
    """``persistent_load`` for torch archives: ('storage', type, key, location, numel), the bytes
    in ``<folder><key>``. Storages outside ``data/`` are keyed ``constants/0``..."""

    def __init__(self, archive: TorchArchive, checkpoint: Checkpoint, folder: str) -> None:
        self.archive, self.checkpoint, self.folder = archive, checkpoint, folder
        # Over the network no request per tensor: where torch's writer puts each record's data
        self.remote = getattr(archive.source, "remote", False)

    def __call__(self, pid: Any) -> StorageView:
        if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] not in ("storage", b"storage"):
            raise FormatError(f"unexpected persistent id {_short(pid)}")
        _, storage_type, key, location, numel = pid
        if not isinstance(storage_type, StorageType):
            raise FormatError(f"persistent id names {_short(storage_type)}, not a storage type")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise FormatError(f"malformed storage id {_short(pid)}")
        record = f"{self.folder}{key}"
        store_key = key if self.folder == "data/" else record
        storage = self.checkpoint.storages.get(store_key)
        if storage is None:
            storage = self._load(store_key, record, storage_type, location, numel)
        return StorageView(storage, storage_type.dtype)

    def _load(self, key: str, record: str, storage_type: StorageType, location: Any,
              numel: int) -> Storage:
        member = self.archive.member(record)
        if member is None:
            raise FormatError(
                f"storage {key}: the record {self.archive.prefix}{record} is missing")
        nbytes = numel * storage_type.dtype.itemsize
        if nbytes > member.size:
            raise FormatError(f"storage {key} declares {nbytes} bytes but {record} holds "
                              f"{member.size}")
        if member.encrypted:
            raise FormatError(f"storage {key}: the record {record} is encrypted")
        if member.method != zipdir.STORED:
            self.checkpoint.anomalies.append(Anomaly(
                "corrupt", f"{record} is compressed; torch stores tensor data uncompressed",
                record))
        if isinstance(location, bytes):
            location = location.decode("ascii", "replace")
        # CRC 0: torch.save with serialization config save.compute_crc32=False writes none
        checked = member.method == zipdir.STORED and member.size == nbytes and member.crc32
        if self.remote:
            alignment = self.checkpoint.storage_alignment or zipdir.TORCH_ALIGNMENT
            offset = zipdir.predicted_data_offset(member, alignment)
        else:  # its local header, from the file's map
            offset = zipdir.data_offset(self.archive.source, member)
        storage = Storage(key, storage_type.dtype, nbytes, str(location), offset, record, None,
                          member.crc32 if checked else None)
        self.checkpoint.storages[key] = storage
        return storage


def _plain_names(names: list[str], prefix: str) -> bool:
    """Are all names ASCII without capitals, each starting with ``prefix``? What torch.save
    writes; told in a few passes over the names joined into one string."""
    joined = "\n".join(names)
    return (joined.isascii() and joined.lower() == joined and joined.startswith(prefix)
            and joined.count("\n") == len(names) - 1  # no name holds the separator...
            and joined.count("\n" + prefix) == len(names) - 1)  # ...so each starts so


def without_case(name: str) -> str:
    """A member name as miniz compares it: ASCII letters folded to lower case. A name that
    has none in upper case is returned itself, so an index keyed by it shares its text."""
    if name.isascii():
        folded = name.lower()
        return name if folded == name else folded
    return name.encode("utf-8", "surrogateescape").lower().decode("utf-8", "surrogateescape")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
