"""torch.distributed.checkpoint (DCP) folders, read as ``FileSystemReader`` and
``dcp_to_torch_save`` read them (torch/distributed/checkpoint/filesystem.py, default_planner.py).

``.metadata`` is a pickle of ``Metadata`` (read by the restricted unpickler into plain records):
``state_dict_metadata`` gives each flattened name a tensor (dtype, global size, chunks: offsets and
sizes) or a bytes item; ``storage_data`` maps (name, chunk offsets) to a slice of a data file
(``__<rank>_<n>.distcp``); ``planner_data`` maps each name back to its path in the nested state
dict. Each slice is a whole ``torch.save`` archive: a tensor chunk (loaded with
``weights_only=True``) or any other value (loaded with ``weights_only=False``).

A process saving without collectives writes ``__<rank>.metadata`` instead, describing only its own
files; torch reads it when no ``.metadata`` exists (rank 0's without a process group).

The safetensors-backed flavour (hf_storage.py) has no pickle at all: safetensors files whose
``DCP_SHARDING_INFO`` metadata gives each tensor's offsets in the whole.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

from ckpt_tool.containers.remote import is_url, open_url
from ckpt_tool.containers.source import FileSource, Source
from ckpt_tool.errors import FormatError, LimitExceeded, UnsupportedFormat
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import (
    Anomaly,
    Checkpoint,
    Chunk,
    Format,
    Loader,
    PickleRecord,
    TensorRef,
)
from ckpt_tool.model.dtypes import DType
from ckpt_tool.model.objects import DataRecord
from ckpt_tool.model.record import Record
from ckpt_tool.pickles.scan import scan_pickle
from ckpt_tool.readers.dcp_listing import SAFETENSORS_SUFFIX
from ckpt_tool.readers.embedded import read_embedded
from ckpt_tool.readers.pickles import collect_globals, load_pickle
from ckpt_tool.readers.safetensors import read_safetensors

METADATA_NAME = ".metadata"
RANK_METADATA = re.compile(r"__(\d+)\.metadata")
_METADATA_CLASS = ("torch.distributed.checkpoint.metadata", "Metadata")
_PICKLE_HELPERS = {("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"),
                   ("copyreg", "__newobj__")}
"""Named before the class by protocols 0 and 1."""
SHARDING_INFO_KEY = "DCP_SHARDING_INFO"
"""safetensors ``__metadata__`` key of the safetensors-backed flavour (_hf_utils.py)."""
_HEAD = 512


# ---- finding DCP checkpoints ----------------------------------------------------------------


def is_dcp_metadata(source: Source) -> bool:
    """The file is a pickle whose first global is DCP's ``Metadata`` class (told from its bytes:
    ``pickle.dump(metadata)`` starts by naming the class)."""
    head = source.read_at(0, min(source.size, _HEAD))
    names = [(use.module, use.name) for use in scan_pickle(head).globals
             if (use.module, use.name) not in _PICKLE_HELPERS]
    return bool(names) and names[0] == _METADATA_CLASS


def has_sharding_info(metadata: dict[str, str] | None) -> bool:
    return bool(metadata) and SHARDING_INFO_KEY in metadata  # type: ignore[operator]


class FolderCheckpoint(Record):
    """A checkpoint made of several files of one folder: where to read it and the files it owns."""

    __slots__ = ("path", "files", "metadata")
    path: str
    """The input it is shown as: the folder, or one rank's ``__R.metadata``."""
    files: frozenset[str]
    """Names (in the folder) of the files it is made of."""
    metadata: str | None
    """Its metadata file; None for the safetensors-backed flavour."""

    def __init__(self, path: str, files: frozenset[str], metadata: str | None) -> None:
        self.path = path
        self.files = files
        self.metadata = metadata


def find_in_folder(folder: str, names: list[str], limits: Limits, with_files: bool = True
                   ) -> list[FolderCheckpoint]:
    """The DCP checkpoints among a folder's files, each with the files it owns (read from its
    metadata unless ``with_files`` is false).

    Metadata files are found by the names torch opens, then told from their bytes:
    ``.metadata`` makes the folder one checkpoint; without it, each ``__R.metadata`` is one rank's
    own; without either, safetensors files with DCP sharding information make one.
    """
    metadata = [name for name in names if name == METADATA_NAME or RANK_METADATA.fullmatch(name)]
    metadata = [name for name in metadata if _holds_dcp_metadata(os.path.join(folder, name))]
    if METADATA_NAME in metadata:
        metadata = [METADATA_NAME]
    found = []
    for name in sorted(metadata, key=_rank_order):
        path = os.path.join(folder, name)
        owned = frozenset({name, *(_data_files(path, limits) if with_files else ())})
        found.append(FolderCheckpoint(folder if name == METADATA_NAME else path, owned, path))
    if not found:
        shards = _sharded_safetensors(folder, names, limits)
        if shards:
            found.append(FolderCheckpoint(folder, frozenset(shards), None))
    return found


def _rank_order(name: str) -> int:
    match = RANK_METADATA.fullmatch(name)
    return int(match.group(1)) if match else -1


def _holds_dcp_metadata(path: str) -> bool:
    try:
        with FileSource(path) as source:
            return is_dcp_metadata(source)
    except (OSError, FormatError):
        return False


def _data_files(metadata_path: str, limits: Limits) -> set[str]:
    try:
        with FileSource(metadata_path) as source:
            metadata, _, _ = _load_metadata(source, limits)
    except (OSError, FormatError):
        return set()
    names = (info.get("relative_path") for info in _storage_infos(metadata))
    return {name for name in names if isinstance(name, str)}




def _sharded_safetensors(folder: str, names: list[str], limits: Limits) -> list[str]:
    """The safetensors files of the folder when at least one says it is a DCP shard. Only names
    ending in ``.safetensors`` are opened, as torch's reader lists them
    (``_HuggingFaceStorageReader.read_metadata``): a folder of other files costs no read."""
    from ckpt_tool.containers.detect import Kind, sniff

    shards, marked = [], False
    for name in names:
        if not name.endswith(SAFETENSORS_SUFFIX):
            continue
        path = os.path.join(folder, name)
        try:
            with FileSource(path) as source:
                if sniff(source)[0] is not Kind.SAFETENSORS:
                    continue
                metadata = read_safetensors(source, limits).safetensors_metadata
        except (OSError, FormatError):
            continue
        shards.append(name)
        marked = marked or has_sharding_info(metadata)
    return shards if marked else []


def slices_of(metadata_path: str, relative: str, limits: Limits) -> list[tuple[int, int, str]]:
    """(start, length, item) of every torch.save archive the metadata places in the data file
    ``relative``: DCP loads each with ``torch.load`` (tensor chunks with ``weights_only=True``,
    other values without)."""
    with FileSource(metadata_path) as source:
        metadata, _, _ = _load_metadata(source, limits)
    found = []
    for (fqn, offsets), info in _index_storage(metadata).items():
        start, length = info.get("offset"), info.get("length")
        if info.get("relative_path") == relative and type(start) is int and type(length) is int:
            where = fqn if offsets is None else f"{fqn} chunk {list(offsets)}"
            found.append((start, length, where))
    return sorted(found)


# ---- reading ---------------------------------------------------------------------------------


def read_dcp(source: Source, limits: Limits) -> Checkpoint:
    """A DCP checkpoint from its metadata file; data files are opened beside it."""
    metadata, scan, referenced = _load_metadata(source, limits)
    version = metadata.get("version")
    own = os.path.basename(source.name)
    checkpoint = Checkpoint(
        path=_folder_of(source.name),
        format=Format.DCP,
        size=0,
        format_version=(str(version) if version else "unversioned")
        + ("" if own == METADATA_NAME else f" ({own}: one rank's own checkpoint)"),
        pickle_protocol=scan.protocol,
    )
    checkpoint.pickles.append(PickleRecord(own, scan, 0, source.name, Loader.PICKLE))
    with ExitStack() as stack:
        reader = _Reader(source, metadata, limits, stack)
        reader.referenced += referenced
        checkpoint.root = reader.build_root(checkpoint)
        checkpoint.files = {source.name: source.size} | {
            data.name: data.size for data in reader.sources.values()}
        checkpoint.bytes_read = sum(data.bytes_read for data in reader.sources.values())
    checkpoint.size = sum(checkpoint.files.values())
    checkpoint.globals = collect_globals(checkpoint.pickles, reader.referenced)
    return checkpoint


def _load_metadata(source: Source, limits: Limits
                   ) -> tuple[DataRecord, Any, list[tuple[str, str]]]:
    if source.size > limits.max_pickle_bytes:
        raise LimitExceeded(f"DCP metadata of {source.size} bytes "
                            f"(limit max_pickle_bytes={limits.max_pickle_bytes})")
    data = source.read_at(0, source.size)
    metadata, scan, referenced = load_pickle(data, os.path.basename(source.name), limits, None)
    if not (isinstance(metadata, DataRecord) and metadata.type_name() == "Metadata"):
        raise FormatError("the DCP metadata pickle does not hold a Metadata record")
    if not isinstance(metadata.get("state_dict_metadata"), dict):
        raise FormatError("the DCP metadata has no state_dict_metadata")
    return metadata, scan, referenced


def _storage_infos(metadata: DataRecord) -> Iterator[DataRecord]:
    storage_data = metadata.get("storage_data")
    if isinstance(storage_data, dict):
        yield from (info for info in storage_data.values() if isinstance(info, DataRecord))


def _folder_of(path: str) -> str:
    if is_url(path):
        return path.rsplit("/", 1)[0] + "/"
    return os.path.dirname(path) or "."


def _beside(metadata_path: str, relative: str) -> str:
    if is_url(metadata_path):
        return urllib.parse.urljoin(metadata_path, urllib.parse.quote(relative))
    return os.path.join(os.path.dirname(metadata_path), relative)


class _Reader:
    """One pass over ``state_dict_metadata``, opening each data file once."""

    def __init__(self, source: Source, metadata: DataRecord, limits: Limits,
                 stack: ExitStack) -> None:
        self.metadata_path, self.limits, self.stack = source.name, limits, stack
        self.items: dict[str, Any] = metadata.get("state_dict_metadata")
        planner = metadata.get("planner_data")
        self.paths: dict[str, Any] = planner if isinstance(planner, dict) else {}
        self.slices = _index_storage(metadata)
        self.sources: dict[str, Source] = {}
        self.referenced: list[tuple[str, str]] = []
        self.byteorders: set[str] = set()

    def build_root(self, checkpoint: Checkpoint) -> dict[str, Any]:
        root: dict[str, Any] = {}
        if len(self.items) > self.limits.max_tensors:
            raise LimitExceeded(f"{len(self.items)} items (limit max_tensors="
                                f"{self.limits.max_tensors})")
        for fqn, item in self.items.items():
            if not isinstance(item, DataRecord):
                raise FormatError(f"{fqn}: its metadata is not a DCP record")
            if item.type_name() == "TensorStorageMetadata":
                value: Any = self.tensor(str(fqn), item, checkpoint)
            elif item.type_name() == "BytesStorageMetadata":
                value = self.value(str(fqn), checkpoint)
            else:
                raise FormatError(f"{fqn}: unknown DCP storage metadata {item.type_name()}")
            set_element(root, self.path_of(str(fqn)), value)
        return root

    def path_of(self, fqn: str) -> tuple[Any, ...]:
        path = self.paths.get(fqn)
        if isinstance(path, tuple | list) and path and all(
                isinstance(part, str | int) for part in path):
            return tuple(path)
        return (fqn,)

    def tensor(self, fqn: str, item: DataRecord, checkpoint: Checkpoint) -> TensorRef:
        properties = item.get("properties")
        dtype = properties.get("dtype") if isinstance(properties, DataRecord) else None
        size = item.get("size")
        if not isinstance(dtype, DType):
            raise FormatError(f"{fqn}: the metadata gives no dtype")
        if not _is_shape(size):
            raise FormatError(f"{fqn}: malformed size {size!r}")
        chunks = []
        records = item.get("chunks")
        if not isinstance(records, list) or not all(
                isinstance(record, DataRecord) for record in records):
            raise FormatError(f"{fqn}: malformed chunk list in the metadata")
        for record in records:
            offsets, sizes = record.get("offsets"), record.get("sizes")
            if not _fits(offsets, sizes, size):
                raise FormatError(f"{fqn}: chunk {offsets!r}+{sizes!r} lies outside {size!r}")
            piece = self.chunk_tensor(fqn, tuple(offsets), checkpoint)
            if piece.shape != tuple(sizes) or piece.dtype != dtype:
                raise FormatError(
                    f"{fqn}: the chunk at {list(offsets)} holds a {piece.dtype.name} "
                    f"{list(piece.shape)}, the metadata says {dtype.name} {list(sizes)}")
            chunks.append(Chunk(tuple(offsets), piece))
        tensor = TensorRef(dtype, tuple(size), contiguous_stride(tuple(size)),
                           requires_grad=properties.get("requires_grad") is True,
                           chunks=tuple(chunks))
        _check_coverage(fqn, tensor, checkpoint)
        return tensor

    def chunk_tensor(self, fqn: str, offsets: tuple[int, ...], checkpoint: Checkpoint
                     ) -> TensorRef:
        inner = self.read_slice(fqn, offsets, Loader.TORCH_LOAD_WEIGHTS_ONLY, checkpoint)
        if not isinstance(inner.root, TensorRef) or inner.root.storage is None:
            raise FormatError(f"{fqn}: the chunk at {list(offsets)} is not a saved tensor")
        return inner.root

    def value(self, fqn: str, checkpoint: Checkpoint) -> Any:
        return self.read_slice(fqn, None, Loader.TORCH_LOAD_FULL, checkpoint).root

    def read_slice(self, fqn: str, offsets: tuple[int, ...] | None, loader: Loader,
                   checkpoint: Checkpoint) -> Checkpoint:
        info = self.slices.get((fqn, offsets))
        if info is None:
            where = f" chunk at {list(offsets)}" if offsets is not None else ""
            raise FormatError(f"{fqn}{where}: not in the metadata's storage_data")
        relative, start, length = (info.get("relative_path"), info.get("offset"),
                                   info.get("length"))
        if not (isinstance(relative, str) and type(start) is int and type(length) is int):
            raise FormatError(f"{fqn}: malformed storage entry {info!r}")
        if info.get("transform_descriptors"):
            raise UnsupportedFormat(
                f"{fqn}: stored through DCP extensions {info.get('transform_descriptors')} "
                "(compressed?), which ckpt does not read yet")
        data = self.open(relative)
        inner = read_embedded(data, start, length, f"{relative}@{start}", loader, self.limits,
                              file=data.name)
        self.byteorders.add(inner.byteorder)
        if len(self.byteorders) > 1:
            raise FormatError(f"{fqn}: its data is {inner.byteorder}-endian, other items are not")
        checkpoint.byteorder = inner.byteorder
        checkpoint.storages.update((storage.key, storage) for storage in inner.storages.values())
        checkpoint.pickles += inner.pickles
        checkpoint.anomalies += inner.anomalies
        self.referenced += [(g.module, g.name) for g in inner.globals]
        return inner

    def open(self, relative: str) -> Source:
        source = self.sources.get(relative)
        if source is None:
            if os.path.isabs(relative) or ".." in relative.replace("\\", "/").split("/"):
                raise FormatError(f"the metadata names a data file {relative!r} outside its "
                                  "folder")
            path = _beside(self.metadata_path, relative)
            try:
                source = open_url(path) if is_url(path) else FileSource(path)
            except OSError as exc:
                raise FormatError(f"the data file {relative} named by the metadata: "
                                  f"{exc.strerror or exc}") from None
            self.stack.callback(source.close)
            self.sources[relative] = source
        return source


def _index_storage(metadata: DataRecord) -> dict[tuple[str, Any], DataRecord]:
    """``storage_data`` by (name, chunk offsets), as ``MetadataIndex`` compares (``index`` is a
    hint, not part of the key)."""
    storage_data = metadata.get("storage_data")
    index: dict[tuple[str, Any], DataRecord] = {}
    if not isinstance(storage_data, dict):
        raise FormatError("the DCP metadata has no storage_data (not written by "
                          "FileSystemWriter?)")
    for key, info in storage_data.items():
        if isinstance(key, DataRecord) and isinstance(info, DataRecord):
            offset = key.get("offset")
            if offset is not None and not _is_shape(offset):
                raise FormatError(f"malformed storage_data key {key!r:.80}")
            index[(str(key.get("fqn")), tuple(offset) if offset is not None else None)] = info
    return index


def _fits(offsets: Any, sizes: Any, size: tuple[int, ...]) -> bool:
    """A chunk's place lies inside the whole tensor."""
    if not (_is_shape(offsets) and _is_shape(sizes) and len(offsets) == len(sizes) == len(size)):
        return False
    return all(o + n <= s for o, n, s in zip(offsets, sizes, size, strict=True))


def _is_shape(value: Any) -> bool:
    return isinstance(value, tuple | list) and all(type(n) is int and n >= 0 for n in value)


def contiguous_stride(shape: tuple[int, ...]) -> tuple[int, ...]:
    stride, step = [], 1
    for size in reversed(shape):
        stride.append(step)
        step *= max(size, 1)
    return tuple(reversed(stride))


def _check_coverage(fqn: str, tensor: TensorRef, checkpoint: Checkpoint) -> None:
    covered = sum(chunk.tensor.numel for chunk in tensor.chunks)
    if covered != tensor.numel:
        checkpoint.anomalies.append(Anomaly(
            "corrupt", f"{fqn}: its chunks hold {covered} of its {tensor.numel} elements "
            "(torch leaves the rest uninitialized, or some overlap)", fqn))


def set_element(root: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    """Place ``value`` at ``path`` as torch's ``_traverse.set_element`` does: a string key makes a
    dict, an integer a list (grown with None)."""
    container: Any = root
    for index, key in enumerate(path[:-1]):
        fresh: Any = {} if type(path[index + 1]) is str else []
        if isinstance(container, dict):
            container = container.setdefault(key, fresh)
        else:
            _extend(container, key)
            if container[key] is None:
                container[key] = fresh
            container = container[key]
        if not isinstance(container, dict | list):
            raise FormatError(f"planner_data places two values at {'.'.join(map(str, path))}")
    last = path[-1]
    if isinstance(container, list):
        if type(last) is not int:
            raise FormatError(f"planner_data indexes a list with {last!r}")
        _extend(container, last)
    container[last] = value


def _extend(items: list[Any], index: Any) -> None:
    if type(index) is not int or index < 0 or index > 1 << 20:
        raise FormatError(f"planner_data indexes a list with {index!r}")
    while len(items) <= index:
        items.append(None)


# ---- the safetensors-backed flavour ------------------------------------------------------------


def read_dcp_safetensors(folder: str, names: list[str], limits: Limits) -> Checkpoint:
    """Safetensors shards of one DCP checkpoint (``HuggingFaceStorageReader.read_metadata``): each
    tensor's pieces placed by ``saved_offsets``, its size the furthest piece's end."""
    checkpoint = Checkpoint(path=folder, format=Format.DCP, size=0)
    pieces: dict[str, list[Chunk]] = {}
    versions = set()
    for name in names:
        path = os.path.join(folder, name)
        with FileSource(path) as source:
            shard = read_safetensors(source, limits)
            checkpoint.files[path] = source.size
            checkpoint.bytes_read += source.bytes_read
        metadata = shard.safetensors_metadata or {}
        versions.add(metadata.get("DCP_VERSION"))
        offsets = _saved_offsets(name, metadata)
        for fqn, tensor in shard.root.items():
            assert tensor.storage is not None
            tensor.storage = tensor.storage._replace(key=f"{name}:{fqn}", file=path)
            checkpoint.storages[tensor.storage.key] = tensor.storage
            start = offsets.get(fqn, (0,) * len(tensor.shape))
            if len(start) != len(tensor.shape):
                raise FormatError(f"{name}: {fqn} has {len(tensor.shape)} dimensions but its "
                                  f"saved_offsets {list(start)}")
            pieces.setdefault(fqn, []).append(Chunk(start, tensor))
    root: dict[str, Any] = {}
    for fqn, chunks in pieces.items():
        dtypes = {chunk.tensor.dtype for chunk in chunks}
        if len(dtypes) > 1:
            raise FormatError(f"{fqn}: its pieces have different dtypes "
                              f"{sorted(d.name for d in dtypes)}")
        size = tuple(max(c.offsets[d] + c.sizes[d] for c in chunks)
                     for d in range(len(chunks[0].sizes)))
        root[fqn] = TensorRef(chunks[0].tensor.dtype, size, contiguous_stride(size),
                              chunks=tuple(chunks))
        _check_coverage(fqn, root[fqn], checkpoint)
    checkpoint.root = root
    checkpoint.size = sum(checkpoint.files.values())
    version = ", ".join(sorted(v for v in versions if v)) or "?"
    checkpoint.format_version = f"{version} (safetensors shards)"
    return checkpoint


def _saved_offsets(name: str, metadata: dict[str, str]) -> dict[str, tuple[int, ...]]:
    text = metadata.get(SHARDING_INFO_KEY)
    if text is None:
        return {}
    try:
        info = json.loads(text)
        result = {str(fqn): tuple(entry["saved_offsets"]) for fqn, entry in info.items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        raise FormatError(f"{name}: malformed {SHARDING_INFO_KEY} metadata") from None
    if not all(_is_shape(offsets) for offsets in result.values()):
        raise FormatError(f"{name}: malformed saved_offsets in {SHARDING_INFO_KEY}")
    return result
