"""Several files as rows, one per model: a file on its own, or the shards of one model (named by
an HF ``*.index.json`` or by ``-00001-of-00003``) merged into one row."""

from __future__ import annotations

import os

from ckpt_tool.inspect.report import FileReport
from ckpt_tool.model.record import Record

_DTYPES_SHOWN = 3


class ModelRow(Record):
    __slots__ = ("label", "format", "tensors", "parameters", "size", "dtypes", "weights_only",
                 "files")
    label: str
    format: str
    tensors: int
    parameters: int
    size: int
    dtypes: str
    weights_only: str
    files: int

    def __init__(self, label: str, format: str, tensors: int, parameters: int, size: int,
                 dtypes: str, weights_only: str, files: int = 1) -> None:
        self.label = label
        self.format = format
        self.tensors = tensors
        self.parameters = parameters
        self.size = size
        self.dtypes = dtypes
        self.weights_only = weights_only
        self.files = files


def model_rows(reports: list[FileReport], models: list[str | None],
               root: str | None = None) -> list[ModelRow]:
    """One row per model, in the order of each model's first file; paths relative to ``root``
    (the one folder walked) when given."""
    groups: dict[str, list[FileReport]] = {}
    for report, model in zip(reports, models, strict=True):
        groups.setdefault(model or f"\0{report.path}", []).append(report)
    return [_row(key, members, root) for key, members in groups.items()]


def _metadata_files(report: FileReport) -> int:
    """Files of a model that hold no tensors of their own (an index, DCP metadata)."""
    checkpoint = report.checkpoint
    assert checkpoint is not None
    return sum(1 for path in checkpoint.files if path.endswith((".json", ".metadata", "latest")))


def _row(key: str, members: list[FileReport], root: str | None) -> ModelRow:
    ok = [r for r in members if r.ok and r.checkpoint is not None]
    path = members[0].path if key.startswith("\x00") else key
    label = os.path.relpath(path, root) if root else path
    files = len(members)
    if key.startswith("\x00") and members[0].checkpoint is not None:
        files = max(1, len(members[0].checkpoint.files) - _metadata_files(members[0]))
    if files > 1:
        label += f" ({files} shards)"
    if not ok:
        return ModelRow(label, "unreadable", 0, 0, 0, "-", "-", len(members))
    formats = sorted({r.checkpoint.format.value for r in ok if r.checkpoint})
    by_dtype: dict[str, int] = {}
    for report in ok:
        for dtype, nbytes in report.bytes_by_dtype().items():
            by_dtype[dtype] = by_dtype.get(dtype, 0) + nbytes
    names = sorted(by_dtype, key=lambda name: -by_dtype[name])
    dtypes = ", ".join(names[:_DTYPES_SHOWN]) + (f" +{len(names) - _DTYPES_SHOWN}"
                                                 if len(names) > _DTYPES_SHOWN else "")
    verdicts = {r.checkpoint.weights_only.accepted for r in ok if r.checkpoint}
    weights_only = ("n/a" if verdicts == {None} else "accepted" if verdicts == {True}
                    else "refused" if False in verdicts else "mixed")
    if len(ok) < len(members):
        weights_only += f" ({len(members) - len(ok)} unreadable)"
    return ModelRow(label, "/".join(formats), sum(len(r.tensors) for r in ok),
                    sum(r.parameter_count for r in ok),
                    sum(r.checkpoint.size for r in ok if r.checkpoint), dtypes or "-",
                    weights_only, len(members))
