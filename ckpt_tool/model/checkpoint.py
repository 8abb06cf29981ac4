"""The neutral model of a checkpoint that every reader produces and every command consumes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from ckpt_tool.model.dtypes import DType
from ckpt_tool.model.record import Record

if TYPE_CHECKING:
    from ckpt_tool.pickles.scan import PickleScan


class Safety(str, Enum):
    """How ckpt's reviewed policy (``ckpt_tool/pickles/data/reviewed_globals.txt``) rates a
    global; the first three run no code when a pickle names them."""

    WEIGHTS_ONLY = "weights-only"
    """Accepted by ``torch.load(weights_only=True)`` by default (torch version of the data file)."""
    DATA = "data"
    """Not on torch's list, but reviewed by ckpt: builds only data (numpy arrays, Namespace...)."""
    REVIEWED = "reviewed"
    """Reviewed by ckpt: harmless to construct, but not data (a torch.nn module)."""
    CODE = "code"
    """Known to run code or touch the system, or a dotted attribute path."""
    NOT_REVIEWED = "not-reviewed"
    """From torch, numpy or the standard library, and not reviewed: it may run code."""
    CUSTOM = "custom"
    """From outside torch, numpy and the standard library: code ckpt cannot vouch for."""

    @property
    def runs_no_code(self) -> bool:
        return self in (Safety.WEIGHTS_ONLY, Safety.DATA, Safety.REVIEWED)


class Format(str, Enum):
    TORCH_ZIP = "torch-zip"
    TORCH_LEGACY = "torch-legacy"
    TORCHSCRIPT = "torchscript"
    SAFETENSORS = "safetensors"
    DCP = "dcp"
    """A torch.distributed.checkpoint folder: ``.metadata`` (or ``__R.metadata``) and its data
    files, or safetensors files carrying DCP sharding information."""
    TORCH_EXPORT = "torch-export"
    """A torch.export ``.pt2`` archive."""
    TORCH_PACKAGE = "torch-package"
    """A torch.package archive (``PackageExporter``)."""
    DEEPSPEED_ZERO = "deepspeed-zero"
    """A DeepSpeed ZeRO checkpoint folder (``latest``, ``global_stepN/*_model_states.pt`` and
    ``*_optim_states.pt``), read as one model: the fp32 master weights of its partitions."""

    @property
    def is_torch(self) -> bool:
        return self is not Format.SAFETENSORS

    @property
    def opened_by_torch_load(self) -> bool:
        """A file ``torch.load`` opens (it hands TorchScript archives to ``torch.jit.load``)."""
        return self in (Format.TORCH_ZIP, Format.TORCH_LEGACY, Format.TORCHSCRIPT)


class Storage(NamedTuple):
    """One storage record: the bytes several tensors may view."""

    key: str
    dtype: DType
    nbytes: int
    location: str
    """Device string the storage was saved from (``cpu``, ``cuda:0``)."""
    offset: int | None = None
    """Absolute file offset of the storage's first byte; None when the bytes are not in the file."""
    record: str | None = None
    """Archive member holding the bytes (zip formats)."""
    file: str | None = None
    """The file holding the bytes when it is not the checkpoint's own (a DCP folder's
    ``__0_0.distcp``): a path or URL as it is opened, beside the checkpoint's metadata."""
    crc32: int | None = None
    """The CRC-32 its zip record holds, when the record is stored uncompressed, is exactly the
    storage's bytes and has one (not 0: torch can save without): convert checks a copy of the
    whole storage against it."""


class Sharding(Record):
    """Where a DTensor's local part (the tensor a rank's file holds) sits in the global tensor."""

    __slots__ = ("global_shape", "placements", "mesh_shape", "mesh_dim_names", "mesh_device",
                 "coordinate", "rank")
    global_shape: tuple[int, ...]
    placements: tuple[str, ...]
    """One per mesh dimension, as torch prints them: ``Shard(dim=0)``, ``Replicate()``..."""
    mesh_shape: tuple[int, ...] | None
    mesh_dim_names: tuple[str, ...] | None
    mesh_device: str | None
    coordinate: tuple[int, ...] | None
    """This rank's coordinate on the mesh."""
    rank: int | None

    def __init__(self, global_shape: tuple[int, ...], placements: tuple[str, ...],
                 mesh_shape: tuple[int, ...] | None = None,
                 mesh_dim_names: tuple[str, ...] | None = None, mesh_device: str | None = None,
                 coordinate: tuple[int, ...] | None = None, rank: int | None = None) -> None:
        self.global_shape = global_shape
        self.placements = placements
        self.mesh_shape = mesh_shape
        self.mesh_dim_names = mesh_dim_names
        self.mesh_device = mesh_device
        self.coordinate = coordinate
        self.rank = rank

    @property
    def partial(self) -> bool:
        return any(p.startswith("Partial") for p in self.placements)


NO_EXTRA: Mapping[str, Any] = MappingProxyType({})
"""The ``extra`` of most tensors: shared and read-only (a dict each would cost 13 MB on 200,000
tensors); ``TensorRef.set_extra`` gives a tensor its own."""


class TensorRef:
    """A tensor as the pickle describes it; its bytes stay in the file."""

    __slots__ = ("chunks", "device_override", "dtype", "extra", "kind", "layout", "numel",
                 "requires_grad", "shape", "storage", "storage_offset", "stride")

    def __init__(
        self, dtype: DType, shape: tuple[int, ...], stride: tuple[int, ...],
        storage_offset: int = 0, storage: Storage | None = None, requires_grad: bool = False,
        kind: str = "tensor", layout: str = "strided", device_override: str | None = None,
        extra: Mapping[str, Any] | None = None, chunks: tuple[Chunk, ...] = (),
    ) -> None:
        self.dtype = dtype
        self.shape = shape
        self.stride = stride
        self.storage_offset = storage_offset
        """In elements, from the start of the storage."""
        self.storage = storage
        self.requires_grad = requires_grad
        self.kind = kind
        """tensor, parameter, quantized, sparse, meta, subclass, nested, dtensor."""
        self.layout = layout
        self.device_override = device_override
        self.extra = NO_EXTRA if extra is None else extra
        """Quantizer parameters, subclass type and state, ``components`` (the parts of a sparse
        or nested tensor, by name), ``nested_shape`` (None where ragged), ``sharding`` (a
        DTensor's :class:`Sharding`; ``shape`` is then its local part's),
        ``consolidated_dtype`` (the dtype the producer's own consolidation gives it:
        zero_to_fp32.py makes floating buffers float32; convert writes that dtype unless
        ``--dtype`` says otherwise)..."""
        self.chunks = chunks
        """For a tensor saved in pieces (DCP, per-rank DTensor files, ZeRO partitions): every
        piece, each placed in the whole. The tensor itself then has no storage; its shape is the
        global shape and its stride C order."""
        self.numel = math.prod(shape)

    def __repr__(self) -> str:
        return (f"TensorRef({self.dtype.name}, shape={self.shape}, stride={self.stride}, "
                f"storage_offset={self.storage_offset}, kind={self.kind!r})")

    def set_extra(self, key: str, value: Any) -> None:
        if self.extra is NO_EXTRA:
            self.extra = {}
        self.extra[key] = value  # type: ignore[index]

    @property
    def sharding(self) -> Sharding | None:
        return self.extra.get("sharding") if self.extra else None

    @property
    def is_whole(self) -> bool:
        """False for a DTensor whose local part is not the whole tensor."""
        sharding = self.sharding
        return sharding is None or (sharding.global_shape == self.shape and not sharding.partial)

    @property
    def device(self) -> str:
        if self.device_override is not None:
            return self.device_override
        if self.storage is None and self.chunks:
            return self.chunks[0].tensor.device
        return self.storage.location if self.storage else "unknown"

    @property
    def nbytes(self) -> int:
        components = self.extra.get("components") if self.extra else None
        if components:
            return sum(part.nbytes for part in components.values() if isinstance(part, TensorRef))
        dtype = self.dtype
        if dtype.elements_per_byte == 1:
            return self.numel * dtype.itemsize
        return dtype.nbytes_of(self.shape)

    @property
    def offset(self) -> int | None:
        """Absolute file offset of the first element (of the byte holding it, for sub-byte
        dtypes), when the bytes are in the file."""
        if self.storage is None or self.storage.offset is None:
            return None
        dtype = self.dtype
        return self.storage.offset + self.storage_offset // dtype.elements_per_byte * dtype.itemsize

    @property
    def is_contiguous(self) -> bool:
        expected = 1
        for size, stride in zip(reversed(self.shape), reversed(self.stride), strict=True):
            if size != 1 and stride != expected:
                return False
            expected *= size
        return True

    @property
    def span(self) -> tuple[int, int]:
        """(first, last+1) element indices of the storage this tensor touches."""
        if self.numel == 0:
            return self.storage_offset, self.storage_offset
        steps = zip(self.shape, self.stride, strict=True)
        last = self.storage_offset + sum((n - 1) * s for n, s in steps)
        return self.storage_offset, last + 1


class Chunk(Record):
    """One saved piece of a logical tensor (a DCP shard, a rank's DTensor part, a slice of a ZeRO
    partition): where it sits in the whole tensor, and the tensor that holds its bytes. Its
    storage says which file and where; it is contiguous in C order unless the producer kept
    another layout (its stride says)."""

    __slots__ = ("offsets", "tensor", "flat")
    offsets: tuple[int, ...]
    """Index of the piece's first element along each dimension of the whole tensor; for a flat
    piece, the one index of its first element in the whole tensor's C order."""
    tensor: TensorRef
    """The piece itself: shape = the chunk's sizes (one dimension for a flat piece), dtype = the
    whole tensor's."""
    flat: bool
    """A run of consecutive elements of the whole tensor in C order, whatever its shape: how
    DeepSpeed ZeRO partitions a parameter (``narrow(0, offset, numel).view(shape)`` of a flat
    fp32 group)."""

    def __init__(self, offsets: tuple[int, ...], tensor: TensorRef, flat: bool = False) -> None:
        self.offsets = offsets
        self.tensor = tensor
        self.flat = flat

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.tensor.shape

    @property
    def file(self) -> str | None:
        storage = self.tensor.storage
        return storage.file if storage is not None else None


class GlobalRef(Record):
    __slots__ = ("module", "name", "safety")
    module: str
    name: str
    safety: Safety

    def __init__(self, module: str, name: str, safety: Safety) -> None:
        self.module = module
        self.name = name
        self.safety = safety

    @property
    def full_name(self) -> str:
        return f"{self.module}.{self.name}"

    @property
    def safe(self) -> bool:
        return self.safety.runs_no_code


class Member(NamedTuple):
    """One entry of a zip archive's central directory."""

    name: str
    header_offset: int
    compressed_size: int
    size: int
    method: int
    crc32: int
    flags: int = 0
    """General-purpose bit flags (bit 0: encrypted)."""

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & 1)


class Anomaly(Record):
    """Something about the container that readers may disagree on; lint reports these."""

    __slots__ = ("code", "message", "member")
    code: str
    """``ambiguous`` (readers may load different data) or ``corrupt``."""
    message: str
    member: str | None

    def __init__(self, code: str, message: str, member: str | None = None) -> None:
        self.code = code
        self.message = message
        self.member = member


class WeightsOnlyVerdict(Record):
    __slots__ = ("accepted", "reasons", "blocking_globals")
    accepted: bool | None
    """None where torch.load does not apply (safetensors)."""
    reasons: tuple[str, ...]
    blocking_globals: tuple[str, ...]

    def __init__(self, accepted: bool | None, reasons: tuple[str, ...] = (),
                 blocking_globals: tuple[str, ...] = ()) -> None:
        self.accepted = accepted
        self.reasons = reasons
        self.blocking_globals = blocking_globals


class Loader(str, Enum):
    """What the producing library unpickles a pickle with, where that is not the format's own
    ``torch.load`` (readers of DCP, torch.export and torch.package archives say which)."""

    TORCH_LOAD = "torch.load"
    """``torch.load`` with its default ``weights_only``."""
    TORCH_LOAD_WEIGHTS_ONLY = "torch.load(weights_only=True)"
    TORCH_LOAD_FULL = "torch.load(weights_only=False)"
    PICKLE = "pickle.load"
    """The standard library's unpickler: any global is imported and called."""
    PACKAGE_IMPORTER = "torch.package.PackageImporter"
    """``load_pickle``: globals come from the archive's own code or the environment."""
    TORCHSCRIPT = "torch.jit.load"


class PickleRecord(Record):
    """One pickle in the file: where it lives and what its opcodes name."""

    __slots__ = ("member", "scan", "data_offset", "file", "loader")
    __hash__ = None  # type: ignore[assignment]  # mutable
    member: str
    scan: PickleScan
    data_offset: int
    """Absolute file offset of the pickle's first byte (scan offsets are relative to it)."""
    file: str | None
    """The file holding the pickle when it is not the checkpoint's own (DCP data files)."""
    loader: Loader | None
    """What unpickles it; None: ``torch.load``, as for every torch.save file."""

    def __init__(self, member: str, scan: PickleScan, data_offset: int = 0,
                 file: str | None = None, loader: Loader | None = None) -> None:
        self.member = member
        self.scan = scan
        self.data_offset = data_offset
        self.file = file
        self.loader = loader


class BuiltFacts(Record):
    """What building a file's pickles showed that their opcodes alone do not: the facts a
    verdict on some globals needs (what a class is called with, what state it is given)."""

    __slots__ = ("called", "script_classes", "forged_numpy_dtypes")
    __hash__ = None  # type: ignore[assignment]  # mutable
    called: set[str]
    """Classes the pickle calls (REDUCE, INST, OBJ): their ``__init__`` would run."""
    script_classes: set[str]
    """TorchScript classes the ``torch.ScriptObject`` values name (their ``__setstate__`` runs)."""
    forged_numpy_dtypes: list[str]
    """numpy dtypes whose state carries flags numpy does not give that type."""

    def __init__(self, called: set[str] | None = None, script_classes: set[str] | None = None,
                 forged_numpy_dtypes: list[str] | None = None) -> None:
        self.called = set() if called is None else called
        self.script_classes = set() if script_classes is None else script_classes
        self.forged_numpy_dtypes = [] if forged_numpy_dtypes is None else forged_numpy_dtypes


class Checkpoint(Record):
    __slots__ = ("path", "format", "size", "root", "format_version", "pickle_protocol",
                 "byteorder", "storages", "globals", "pickles", "members", "anomalies",
                 "archive_name", "serialization_id", "storage_alignment", "safetensors_metadata",
                 "weights_only", "bytes_read", "requests", "files", "built", "source_records")
    __hash__ = None  # type: ignore[assignment]  # mutable
    path: str
    format: Format
    size: int
    root: Any
    format_version: str | None
    pickle_protocol: int | None
    byteorder: str
    storages: dict[str, Storage]
    globals: list[GlobalRef]
    pickles: list[PickleRecord]
    members: list[Member]
    anomalies: list[Anomaly]
    archive_name: str | None
    serialization_id: str | None
    storage_alignment: int | None
    safetensors_metadata: dict[str, str] | None
    weights_only: WeightsOnlyVerdict
    bytes_read: int
    """Bytes read to build this model (headers and pickles only, never tensor data)."""
    requests: int
    """Range requests made to read a remote file (0 for a local one)."""
    files: dict[str, int]
    """For a model made of several files (a DCP or ZeRO folder, an HF index and its shards,
    per-rank DTensor files): each file, as opened, and its size; ``size`` is their sum."""
    built: BuiltFacts
    source_records: list[str]
    """Classes whose source code a legacy stream carries (its ``('module', class, file,
    source)`` persistent ids): torch compares that source with the installed class's."""

    def __init__(
        self, path: str, format: Format, size: int, root: Any = None,
        format_version: str | None = None, pickle_protocol: int | None = None,
        byteorder: str = "little", storages: dict[str, Storage] | None = None,
        globals: list[GlobalRef] | None = None, pickles: list[PickleRecord] | None = None,
        members: list[Member] | None = None, anomalies: list[Anomaly] | None = None,
        archive_name: str | None = None, serialization_id: str | None = None,
        storage_alignment: int | None = None, safetensors_metadata: dict[str, str] | None = None,
        weights_only: WeightsOnlyVerdict | None = None, bytes_read: int = 0, requests: int = 0,
        files: dict[str, int] | None = None, built: BuiltFacts | None = None,
        source_records: list[str] | None = None,
    ) -> None:
        self.path = path
        self.format = format
        self.size = size
        self.root = root
        self.format_version = format_version
        self.pickle_protocol = pickle_protocol
        self.byteorder = byteorder
        self.storages = {} if storages is None else storages
        self.globals = [] if globals is None else globals
        self.pickles = [] if pickles is None else pickles
        self.members = [] if members is None else members
        self.anomalies = [] if anomalies is None else anomalies
        self.archive_name = archive_name
        self.serialization_id = serialization_id
        self.storage_alignment = storage_alignment
        self.safetensors_metadata = safetensors_metadata
        self.weights_only = WeightsOnlyVerdict(None) if weights_only is None else weights_only
        self.bytes_read = bytes_read
        self.requests = requests
        self.files = {} if files is None else files
        self.built = BuiltFacts() if built is None else built
        self.source_records = [] if source_records is None else source_records
