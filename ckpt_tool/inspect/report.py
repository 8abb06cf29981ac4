"""Build the report ``ckpt inspect`` shows: summary, tensors, metadata, tied storages."""

from __future__ import annotations

import fnmatch
from collections import Counter
from functools import cached_property
from typing import Any

from ckpt_tool.containers.remote import NO_OPTIONS, RemoteOptions
from ckpt_tool.errors import CkptError
from ckpt_tool.inspect.names import NameWarning, name_warnings
from ckpt_tool.inspect.parts import Parts, split_parts
from ckpt_tool.limits import DEFAULT_LIMITS, Limits
from ckpt_tool.model.checkpoint import Checkpoint, TensorRef
from ckpt_tool.model.record import Record
from ckpt_tool.model.tree import walk
from ckpt_tool.readers import open_checkpoint


class TensorRow(Record):
    __slots__ = ("name", "tensor", "path")
    __hash__ = None  # type: ignore[assignment]  # mutable
    name: str
    tensor: TensorRef
    path: tuple[str, ...]
    """The keys from the root object down to the tensor (``name`` joins them with dots)."""

    def __init__(self, name: str, tensor: TensorRef, path: tuple[str, ...] = ()) -> None:
        self.name = name
        self.tensor = tensor
        self.path = path


class FileReport:
    """One file's report. Not a slotted record: its derived views are cached properties, which
    need an instance ``__dict__``."""

    path: str
    checkpoint: Checkpoint | None
    tensors: list[TensorRow]
    metadata: dict[str, Any]
    error: str | None
    stats: dict[str, Any] | None
    order: list[tuple[str, Any]]
    """Every leaf (TensorRow or value) by name, in the pickle's order."""

    def __init__(self, path: str, checkpoint: Checkpoint | None = None,
                 tensors: list[TensorRow] | None = None, metadata: dict[str, Any] | None = None,
                 error: str | None = None, stats: dict[str, Any] | None = None,
                 order: list[tuple[str, Any]] | None = None) -> None:
        self.path = path
        self.checkpoint = checkpoint
        self.tensors = [] if tensors is None else tensors
        self.metadata = {} if metadata is None else metadata
        self.error = error
        self.stats = stats
        self.order = [] if order is None else order

    @property
    def ok(self) -> bool:
        return self.error is None

    @cached_property
    def parts(self) -> Parts:
        """The elements of the model's parameters, of training state and of other tensors (a
        tensor that views another's storage region counted once)."""
        root = self.checkpoint.root if self.checkpoint is not None else None
        return split_parts(root, self.tensors)

    @property
    def parameter_count(self) -> int:
        """Elements of the model's parameters (the tensors under its weights root)."""
        return self.parts.parameters

    @property
    def element_count(self) -> int:
        """Elements of every tensor (optimizer state and other tensors included)."""
        return self.parts.elements

    @cached_property
    def warnings(self) -> list[NameWarning]:
        """What the file's name says against what it holds (``*.pth``, a wrong extension)."""
        if self.checkpoint is None:
            return []
        return name_warnings(self.path, self.checkpoint)

    @cached_property
    def _totals(self) -> tuple[int, dict[str, int], list[str], list[list[str]]]:
        """Total bytes, bytes by dtype, devices and tensors sharing a storage: one pass over
        the rows (a file may hold 200,000 tensors)."""
        total = 0
        by_dtype: dict[str, int] = {}
        devices: set[str] = set()
        views: dict[int, str | list[str]] = {}  # by storage: its one name, or all once shared
        for row in self.tensors:
            tensor = row.tensor
            nbytes = tensor.nbytes
            total += nbytes
            dtype = tensor.dtype.name
            by_dtype[dtype] = by_dtype.get(dtype, 0) + nbytes
            devices.add(tensor.device)
            storage = tensor.storage
            if storage is not None:
                names = views.get(id(storage))
                if names is None:
                    views[id(storage)] = row.name
                elif type(names) is str:
                    views[id(storage)] = [names, row.name]
                else:
                    names.append(row.name)
        shared = [names for names in views.values() if type(names) is list]
        largest_first = dict(sorted(by_dtype.items(), key=lambda item: -item[1]))
        return total, largest_first, sorted(devices), shared  # type: ignore[return-value]

    @property
    def total_bytes(self) -> int:
        return self._totals[0]

    def bytes_by_dtype(self) -> dict[str, int]:
        return self._totals[1]

    def bytes_by_file(self) -> dict[str, int]:
        """Tensor bytes in each file, for a checkpoint whose tensors lie in several (DCP)."""
        counts: Counter[str] = Counter()
        for row in self.tensors:
            for piece in [chunk.tensor for chunk in row.tensor.chunks] or [row.tensor]:
                if piece.storage is not None and piece.storage.file:
                    counts[piece.storage.file] += piece.nbytes
        return dict(counts)

    def devices(self) -> list[str]:
        return self._totals[2]

    def shared_storages(self) -> list[list[str]]:
        """Groups of tensor names that view one storage (tied weights, views)."""
        return self._totals[3]


def inspect_file(path: str, limits: Limits = DEFAULT_LIMITS,
                 remote: RemoteOptions = NO_OPTIONS) -> FileReport:
    report = FileReport(path)
    try:
        checkpoint = open_checkpoint(path, limits, remote)
        report.checkpoint = checkpoint
        for leaf in walk(checkpoint.root, limits):
            name = leaf.name if leaf.path else "(root)"
            if leaf.is_tensor:
                row = TensorRow(name, leaf.value, leaf.path)
                report.tensors.append(row)
                report.order.append((name, row))
            else:
                report.metadata[name] = leaf.value
                report.order.append((name, leaf.value))
        for key, value in (checkpoint.safetensors_metadata or {}).items():
            report.metadata[f"__metadata__.{key}"] = value
            report.order.append((f"__metadata__.{key}", value))
    except CkptError as exc:
        report.error = str(exc)
        report.tensors, report.metadata, report.order = [], {}, []  # never a partial listing
    return report


def select_rows(
    rows: list[TensorRow], pattern: str | None, sort: str, limit: int | None
) -> list[TensorRow]:
    if pattern:
        rows = [row for row in rows if fnmatch.fnmatchcase(row.name, pattern)]
    if sort == "size":
        rows = sorted(rows, key=lambda row: (-row.tensor.nbytes, row.name))
    elif sort == "name":
        rows = sorted(rows, key=lambda row: row.name)
    return rows[:limit] if limit is not None else rows
