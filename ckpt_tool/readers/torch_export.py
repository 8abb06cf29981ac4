"""torch.export ``.pt2`` archives, read as ``load_pt2`` reads them (torch/export/pt2_archive/
_package.py), without unpickling anything.

Each model ``<name>`` has ``models/<name>.json`` (the program) and two payload configs,
``data/weights/<name>_weights_config.json`` and ``data/constants/<name>_constants_config.json``,
giving for each fully qualified name its record (``path_name``), whether torch pickled it
(``use_pickle``) and its ``tensor_meta`` (torch/_export/serde/schema.py: a ScalarType code, sizes,
strides, storage offset, device). A raw record holds one storage's bytes, shared by every name that
views it: torch rebuilds each tensor with ``as_strided``. Pickled records (tensor subclasses,
opaque and TorchScript objects) and the sample inputs are listed as pickles, never unpickled.
"""

from __future__ import annotations

import json
from typing import Any

from ckpt_tool.containers import zipdir
from ckpt_tool.containers.source import SliceSource
from ckpt_tool.errors import FormatError, LimitExceeded
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import (
    Anomaly,
    Checkpoint,
    Format,
    Loader,
    Member,
    PickleRecord,
    Storage,
    TensorRef,
)
from ckpt_tool.model.dtypes import BY_NAME, DType
from ckpt_tool.model.record import Record
from ckpt_tool.pickles.scan import scan_pickle
from ckpt_tool.readers.embedded import read_embedded
from ckpt_tool.readers.pickles import collect_globals
from ckpt_tool.readers.torch_zip import TorchArchive, read_records_metadata

SCALAR_TYPES: dict[int, DType] = {code: BY_NAME[name] for code, name in {
    1: "uint8", 2: "int8", 3: "int16", 4: "int32", 5: "int64", 6: "float16", 7: "float32",
    8: "float64", 9: "complex32", 10: "complex64", 11: "complex128", 12: "bool", 13: "bfloat16",
    28: "uint16", 29: "float8_e4m3fn", 30: "float8_e5m2", 31: "float8_e4m3fnuz",
    32: "float8_e5m2fnuz", 33: "float8_e8m0fnu", 34: "uint32", 35: "uint64",
}.items()}
"""``schema.ScalarType`` codes (torch/_export/serde/schema.py) to dtypes."""
MODELS_DIR, WEIGHTS_DIR, CONSTANTS_DIR = "models/", "data/weights/", "data/constants/"
SAMPLE_INPUTS = "data/sample_inputs/{}.pt"
AOTINDUCTOR_DIR, EXTRA_DIR = "data/aotinductor/", "extra/"
TENSOR_PREFIX, CUSTOM_OBJ_PREFIX, OPAQUE_OBJ_PREFIX = "tensor_", "custom_obj_", "opaque_obj_"
EXTRA_FILES_KEY = "extra_files"
_MAX_CONFIG_BYTES = 64 << 20
_MAX_EXTRA_TEXT = 64 << 10


def read_torch_export(archive: TorchArchive, limits: Limits) -> Checkpoint:
    source = archive.source
    checkpoint = Checkpoint(path=source.name, format=Format.TORCH_EXPORT, size=source.size,
                            members=archive.members, anomalies=archive.anomalies,
                            archive_name=archive.name)
    read_records_metadata(archive, checkpoint)
    checkpoint.format_version = archive.read_text("archive_version") or "0"
    reader = _Reader(archive, checkpoint, limits)
    root: dict[str, Any] = {}
    for name in model_names(archive):
        root[name] = {"state_dict": reader.payloads(name, "weights"),
                      "constants": reader.payloads(name, "constants")}
        reader.scan_embedded(SAMPLE_INPUTS.format(name), Loader.TORCH_LOAD_FULL)
    for name, files in aotinductor_models(archive).items():
        root.setdefault(name, {})["aotinductor"] = files
    extra = reader.extra_files()
    if extra:
        root[EXTRA_FILES_KEY] = extra
    checkpoint.root = root
    checkpoint.globals = collect_globals(checkpoint.pickles, [])
    return checkpoint


def model_names(archive: TorchArchive) -> list[str]:
    """``models/<name>.json`` for each program, as ``_load_exported_programs`` finds them."""
    names = []
    for record in archive.names():
        if record.startswith(MODELS_DIR) and record.endswith(".json"):
            names.append(record[len(MODELS_DIR):-len(".json")])
    return names


def aotinductor_models(archive: TorchArchive) -> dict[str, list[str]]:
    """Files compiled by AOTInductor (shared libraries torch loads and runs), by model."""
    models: dict[str, list[str]] = {}
    for record in archive.names():
        if record.startswith(AOTINDUCTOR_DIR) and "/" in record[len(AOTINDUCTOR_DIR):]:
            model, rest = record[len(AOTINDUCTOR_DIR):].split("/", 1)
            models.setdefault(model, []).append(rest)
    return models


class TensorMeta(Record):
    __slots__ = ("dtype", "shape", "stride", "storage_offset", "device", "requires_grad")
    dtype: DType
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    storage_offset: int
    device: str
    requires_grad: bool

    def __init__(self, dtype: DType, shape: tuple[int, ...], stride: tuple[int, ...],
                 storage_offset: int, device: str, requires_grad: bool) -> None:
        self.dtype = dtype
        self.shape = shape
        self.stride = stride
        self.storage_offset = storage_offset
        self.device = device
        self.requires_grad = requires_grad


class _Reader:
    def __init__(self, archive: TorchArchive, checkpoint: Checkpoint, limits: Limits) -> None:
        self.archive, self.checkpoint, self.limits = archive, checkpoint, limits
        self.storages: dict[str, Storage] = {}
        members = [m for record, m in archive.records().items()
                   if record.startswith((WEIGHTS_DIR, CONSTANTS_DIR))]
        offsets = zipdir.data_offsets(archive.source, members)
        self.offsets = {m.header_offset: offset
                        for m, offset in zip(members, offsets, strict=True)}

    def payloads(self, model: str, kind: str) -> dict[str, Any]:
        """One model's weights or constants, by fully qualified name (``_load_state_dict``)."""
        folder = WEIGHTS_DIR if kind == "weights" else CONSTANTS_DIR
        legacy = f"{folder}{model}.pt"
        if self.archive.has(legacy):  # written before torch 2.7: one torch.save file
            return self.legacy(legacy)
        config = self.config(f"{folder}{model}_{kind}_config.json")
        result: dict[str, Any] = {}
        for fqn, payload in config.items():
            result[fqn] = self.payload(folder, str(fqn), payload)
        return result

    def config(self, record: str) -> dict[str, Any]:
        if not self.archive.has(record):
            raise FormatError(f"the record {self.archive.prefix}{record} is missing")
        text = self.archive.read(record, _MAX_CONFIG_BYTES)
        try:
            config = json.loads(text)["config"]
        except (ValueError, KeyError, TypeError):
            raise FormatError(f"{record} is not a payload config") from None
        if not isinstance(config, dict):
            raise FormatError(f"{record} is not a payload config")
        if len(config) > self.limits.max_tensors:
            raise LimitExceeded(f"{record} lists {len(config)} payloads "
                                f"(limit max_tensors={self.limits.max_tensors})")
        return config

    def payload(self, folder: str, fqn: str, payload: Any) -> Any:
        if not isinstance(payload, dict) or not isinstance(payload.get("path_name"), str):
            raise FormatError(f"{folder}: malformed payload entry for {fqn}")
        path_name: str = payload["path_name"]
        record = folder + path_name
        if folder == CONSTANTS_DIR and path_name.startswith(CUSTOM_OBJ_PREFIX):
            self.scan_raw(record, Loader.TORCHSCRIPT)
            return f"a TorchScript object pickled in {record} (torch._C._pickle_load_obj)"
        if folder == CONSTANTS_DIR and path_name.startswith(OPAQUE_OBJ_PREFIX):
            self.scan_raw(record, Loader.PICKLE)
            return f"an object pickled in {record} (pickle.loads)"
        if folder == CONSTANTS_DIR and not path_name.startswith(TENSOR_PREFIX):
            raise FormatError(f"{fqn}: unsupported constant record {path_name}")
        meta = tensor_meta(fqn, payload.get("tensor_meta"))
        is_param = payload.get("is_param") is True
        if payload.get("use_pickle") is True:
            self.scan_embedded(record, Loader.TORCH_LOAD_FULL)
            return TensorRef(meta.dtype, meta.shape, meta.stride, meta.storage_offset, None,
                             meta.requires_grad, kind="subclass", device_override=meta.device,
                             extra={"pickled_in": record})
        return self.raw_tensor(fqn, record, meta, is_param)

    def raw_tensor(self, fqn: str, record: str, meta: TensorMeta, is_param: bool) -> TensorRef:
        member = self.member(record)
        storage = self.storages.get(record)
        if storage is None:
            if member.size % meta.dtype.itemsize:
                raise FormatError(f"{record}: {member.size} bytes is not a whole number of "
                                  f"{meta.dtype.name} elements")
            if member.method != zipdir.STORED:
                self.checkpoint.anomalies.append(Anomaly(
                    "corrupt", f"{record} is compressed; torch writes tensor data uncompressed",
                    record))
            storage = Storage(record, meta.dtype, member.size, meta.device,
                              self.offsets[member.header_offset], record)
            self.storages[record] = self.checkpoint.storages[record] = storage
        kind = "parameter" if is_param else "tensor"
        if storage.nbytes == 0:  # torch.zeros(size): the tensor had no data (a fake tensor)
            return TensorRef(storage.dtype, meta.shape, meta.stride, meta.storage_offset, None,
                             meta.requires_grad, kind=kind, device_override=meta.device,
                             extra={"note": f"{record} is empty: torch.export.load makes zeros"})
        # as_strided over the record's elements, in the dtype of the first name that used it
        tensor = TensorRef(storage.dtype, meta.shape, meta.stride, meta.storage_offset, storage,
                           meta.requires_grad, kind=kind)
        first, end = tensor.span
        if tensor.numel and (first < 0 or end * storage.dtype.itemsize > storage.nbytes):
            raise FormatError(f"{fqn} reaches element {end} of {record}, which holds "
                              f"{storage.nbytes // storage.dtype.itemsize}")
        return tensor

    def member(self, record: str) -> Member:
        member = self.archive.member(record)
        if member is None:
            raise FormatError(f"the record {self.archive.prefix}{record} is missing")
        return member

    def legacy(self, record: str) -> Any:
        inner = self.embedded(record, Loader.TORCH_LOAD_FULL)
        self.checkpoint.storages.update((s.key, s) for s in inner.storages.values())
        return inner.root

    def embedded(self, record: str, loader: Loader) -> Checkpoint:
        member = self.member(record)
        if member.method != zipdir.STORED:
            raise FormatError(f"{record} is compressed; torch stores it uncompressed")
        start = zipdir.data_offset(self.archive.source, member)
        inner = read_embedded(self.archive.source, start, member.size,
                              f"{self.archive.prefix}{record}", loader, self.limits)
        self.checkpoint.pickles += inner.pickles
        self.checkpoint.anomalies += inner.anomalies
        return inner

    def scan_embedded(self, record: str, loader: Loader) -> None:
        """List the pickle of a torch.save file stored as a member (opcodes only)."""
        member = self.archive.member(record)
        if member is None:
            return
        where = f"{self.archive.prefix}{record}"
        if member.method != zipdir.STORED:
            self.checkpoint.anomalies.append(Anomaly(
                "corrupt", f"{record} is compressed; torch stores it uncompressed", record))
            return
        start = zipdir.data_offset(self.archive.source, member)
        inner = TorchArchive(SliceSource(self.archive.source, start, member.size, where),
                             self.limits)
        pickle_member = inner.member("data.pkl")
        if pickle_member is None:
            self.checkpoint.anomalies.append(Anomaly(
                "corrupt", f"{record} is not a torch.save archive (no data.pkl)", record))
            return
        data = inner.read("data.pkl")
        offset = start + zipdir.data_offset(inner.source, pickle_member)
        self.add_pickle(f"{where}/{pickle_member.name}", data, offset, loader)

    def scan_raw(self, record: str, loader: Loader) -> None:
        member = self.member(record)
        data = self.archive.read(record)
        offset = zipdir.data_offset(self.archive.source, member)
        self.add_pickle(f"{self.archive.prefix}{record}", data, offset, loader)

    def add_pickle(self, where: str, data: bytes, offset: int, loader: Loader) -> None:
        scan = scan_pickle(data, 0, self.limits)
        if scan.error:
            self.checkpoint.anomalies.append(Anomaly(
                "corrupt", f"the pickle {where} is corrupt: {scan.error}", where))
        self.checkpoint.pickles.append(PickleRecord(where, scan, offset, loader=loader))

    def extra_files(self) -> dict[str, str]:
        """``extra/<name>`` records, the text ``torch.export.load(extra_files=...)`` returns."""
        extra = {}
        for record, member in self.archive.records().items():
            if record.startswith(EXTRA_DIR):
                if member.size > _MAX_EXTRA_TEXT:
                    extra[record[len(EXTRA_DIR):]] = f"<{member.size} bytes>"
                else:
                    text = self.archive.read(record).decode("utf-8", "replace")
                    extra[record[len(EXTRA_DIR):]] = text
        return extra


def tensor_meta(fqn: str, meta: Any) -> TensorMeta:
    """schema.TensorMeta as JSON: a ScalarType code, SymInt sizes/strides/offset, a Device."""
    if not isinstance(meta, dict):
        raise FormatError(f"{fqn}: no tensor_meta")
    code = meta.get("dtype")
    dtype = SCALAR_TYPES.get(code) if type(code) is int else None
    if dtype is None:
        raise FormatError(f"{fqn}: unknown ScalarType {meta.get('dtype')!r}")
    shape = tuple(_sym_int(fqn, n) for n in _list(fqn, meta.get("sizes")))
    stride = tuple(_sym_int(fqn, n) for n in _list(fqn, meta.get("strides")))
    if len(stride) != len(shape) or any(n < 0 for n in shape + stride):
        raise FormatError(f"{fqn}: sizes {list(shape)} and strides {list(stride)} disagree")
    offset = _sym_int(fqn, meta.get("storage_offset", {"as_int": 0}))
    if offset < 0:
        raise FormatError(f"{fqn}: negative storage offset")
    return TensorMeta(dtype, shape, stride, offset, _device(meta.get("device")),
                      meta.get("requires_grad") is True)


def _list(fqn: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise FormatError(f"{fqn}: malformed tensor_meta")
    return value


def _sym_int(fqn: str, value: Any) -> int:
    """A SymInt: ``{"as_int": n}``, or a symbol whose hint is an int."""
    if isinstance(value, dict):
        if type(value.get("as_int")) is int:
            return value["as_int"]
        hint = value.get("as_expr", {}).get("hint") if isinstance(value.get("as_expr"),
                                                                  dict) else None
        if isinstance(hint, dict) and type(hint.get("as_int")) is int:
            return hint["as_int"]
    raise FormatError(f"{fqn}: a size without a value ({value!r})")


def _device(value: Any) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return "cpu"
    index = value.get("index")
    return f"{value['type']}:{index}" if type(index) is int else value["type"]
