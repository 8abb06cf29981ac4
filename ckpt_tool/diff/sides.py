"""One side of a comparison: every tensor and value of a file, a folder, an HF ``*.index.json``
or a DCP folder, found the way ``ckpt inspect`` finds them, as one set of names.

Files of one model (shards) are merged: their names do not overlap. When the files of a side do
hold the same names (a folder of several checkpoints), each name is qualified by its file's path
inside the folder (``checkpoint-500/model.pt:fc.weight``), so two such folders compare file by
file. Tied-weight aliases that a safetensors writer recorded in ``__metadata__`` (``{alias:
kept}``, as ``ckpt convert`` and safetensors' own converter write them) become tensor names again,
and are not counted as metadata.
"""

from __future__ import annotations

import os
from typing import Any

from ckpt_tool.inputs import InputFile
from ckpt_tool.inspect.report import FileReport
from ckpt_tool.model.checkpoint import Format, TensorRef
from ckpt_tool.model.record import Record

SAFETENSORS_METADATA = "__metadata__."


class Side(Record):
    __slots__ = ("path", "tensors", "metadata", "aliases", "errors", "files")
    __hash__ = None  # type: ignore[assignment]  # mutable
    path: str
    """The path as the user gave it."""
    tensors: dict[str, tuple[TensorRef, FileReport]]
    """Name -> the tensor and the file report it was read from."""
    metadata: dict[str, Any]
    aliases: dict[str, str]
    """Tied-weight aliases resolved from safetensors metadata: alias -> kept name."""
    errors: list[tuple[str, str]]
    """(path, message) of the files that could not be read."""
    files: list[FileReport]

    def __init__(self, path: str, tensors: dict[str, tuple[TensorRef, FileReport]] | None = None,
                 metadata: dict[str, Any] | None = None, aliases: dict[str, str] | None = None,
                 errors: list[tuple[str, str]] | None = None,
                 files: list[FileReport] | None = None) -> None:
        self.path = path
        self.tensors = {} if tensors is None else tensors
        self.metadata = {} if metadata is None else metadata
        self.aliases = {} if aliases is None else aliases
        self.errors = [] if errors is None else errors
        self.files = [] if files is None else files

    @property
    def nbytes(self) -> int:
        return sum(report.checkpoint.size for report in self.files if report.checkpoint)


def side_from_reports(path: str, reports: list[FileReport], root: str | None = None) -> Side:
    side = Side(path, files=[r for r in reports if r.ok])
    side.errors = [(r.path, r.error or "") for r in reports if not r.ok]
    readable = side.files
    qualify = len(readable) > 1 and _overlap(readable)
    for report in readable:
        prefix = f"{_label(report.path, root)}:" if qualify else ""
        for row in report.tensors:
            side.tensors[prefix + row.name] = (row.tensor, report)
    side.metadata = _merged_metadata(readable, root)
    _resolve_aliases(side)
    return side


def side_from_inputs(path: str, inputs: list[InputFile], read) -> Side:
    """``read(path) -> FileReport`` for each input (an unexpandable input is an error)."""
    reports = [FileReport(item.path, error=item.error) if item.error else read(item.path)
               for item in inputs]
    root = path if os.path.isdir(path) else os.path.dirname(path) or "."
    return side_from_reports(path, reports, root)


def _overlap(reports: list[FileReport]) -> bool:
    seen: set[str] = set()
    for report in reports:
        names = {row.name for row in report.tensors}
        if names & seen:
            return True
        seen |= names
    return False


def _label(path: str, root: str | None) -> str:
    return os.path.relpath(path, root) if root else path


def _merged_metadata(reports: list[FileReport], root: str | None) -> dict[str, Any]:
    """Every file's values; a key whose value differs between files is qualified by the file."""
    values: dict[str, list[tuple[FileReport, Any]]] = {}
    for report in reports:
        for key, value in report.metadata.items():
            values.setdefault(key, []).append((report, value))
    merged: dict[str, Any] = {}
    for key, found in values.items():
        if len(found) == 1 or all(_same(value, found[0][1]) for _, value in found):
            merged[key] = found[0][1]
        else:
            for report, value in found:
                merged[f"{_label(report.path, root)}:{key}"] = value
    return merged


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # values of unknown classes compare by identity, or not at all
        return a is b


def _resolve_aliases(side: Side) -> None:
    """``__metadata__[alias] = kept`` of a safetensors file, where ``kept`` is a tensor of this
    side and ``alias`` is not: ``alias`` names the same tensor (a tied weight)."""
    if not any(report.checkpoint and report.checkpoint.format is Format.SAFETENSORS
               for report in side.files):
        return
    for key in list(side.metadata):
        if not key.startswith(SAFETENSORS_METADATA):
            continue
        alias, kept = key[len(SAFETENSORS_METADATA):], side.metadata[key]
        if isinstance(kept, str) and kept in side.tensors and alias not in side.tensors:
            side.tensors[alias] = side.tensors[kept]
            side.aliases[alias] = kept
            del side.metadata[key]


