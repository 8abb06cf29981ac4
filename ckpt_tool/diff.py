"""Compare two checkpoints of any supported formats: names, dtypes, shapes, values, metadata."""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ckpt_tool.inspect.report import FileReport, TensorRow
from ckpt_tool.model.checkpoint import TensorRef
from ckpt_tool.model.values import to_json

if TYPE_CHECKING:
    from ckpt_tool.readers.tensor_bytes import TensorFiles

COMMON_PREFIXES = ("state_dict.", "model.", "module.", "model_state_dict.", "model_state.",
                   "state_dict.module.", "model.module.", "net.", "network.", "ema.",
                   "model.state_dict.")
"""``model.state_dict.``: a torch.export archive's weights (its one model is named ``model``)."""
_CHUNK = 1 << 22


@dataclass
class TensorDiff:
    name: str
    a: TensorRef
    b: TensorRef
    identical: bool | None = None
    """Byte-identical (None when values were not compared or could not be)."""
    max_abs: float | None = None
    max_rel: float | None = None
    allclose: bool | None = None
    note: str | None = None

    @property
    def layout_changed(self) -> bool:
        return self.a.dtype != self.b.dtype or self.a.shape != self.b.shape

    @property
    def differs(self) -> bool:
        return self.layout_changed or self.allclose is False


@dataclass
class DiffResult:
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    tensors: list[TensorDiff] = field(default_factory=list)
    metadata_changed: list[tuple[str, Any, Any]] = field(default_factory=list)
    metadata_only_a: list[str] = field(default_factory=list)
    metadata_only_b: list[str] = field(default_factory=list)
    mapping: str | None = None
    """How names were matched, when not as they are (``A's names under 'state_dict.'``)."""
    outside_a: list[str] = field(default_factory=list)
    """Tensors outside the matched root (not compared, not counted as differences)."""
    outside_b: list[str] = field(default_factory=list)
    values_compared: bool = False

    @property
    def equal(self) -> bool:
        return not (self.only_a or self.only_b or self.metadata_changed
                    or any(t.differs for t in self.tensors))


def _strip(names: list[str], prefix: str) -> dict[str, str]:
    return {name.removeprefix(prefix): name for name in names}


def _root(names: list[str], prefix: str) -> tuple[dict[str, str], list[str]]:
    """Names under ``prefix`` with it removed, and the names outside it."""
    inside = {name[len(prefix):]: name for name in names if name.startswith(prefix)}
    return inside, [name for name in names if not name.startswith(prefix)]


@dataclass
class NameMatch:
    a: dict[str, str]
    """Common name -> A's name."""
    b: dict[str, str]
    description: str | None = None
    outside_a: list[str] = field(default_factory=list)
    """A's tensors outside the root the names were matched under (an optimizer's state...)."""
    outside_b: list[str] = field(default_factory=list)


def match_names(a: list[str], b: list[str], strip_prefix: str | None) -> NameMatch:
    """Match names as they are, or under a prefix (``state_dict.``) on one side when that matches
    more: the way a converter takes a checkpoint's weights root."""
    if strip_prefix:
        return NameMatch(_strip(a, strip_prefix), _strip(b, strip_prefix),
                         f"stripped {strip_prefix!r}")
    best = NameMatch({n: n for n in a}, {n: n for n in b})
    best_overlap = len(set(a) & set(b))
    for prefix in COMMON_PREFIXES:
        for side in ("A", "B"):
            inside, outside = _root(a if side == "A" else b, prefix)
            other = {n: n for n in (b if side == "A" else a)}
            overlap = len(inside.keys() & other.keys())
            if overlap > best_overlap:
                best_overlap = overlap
                description = f"{side}'s names under {prefix!r}"
                best = (NameMatch(inside, other, description, outside_a=outside) if side == "A"
                        else NameMatch(other, inside, description, outside_b=outside))
    return best


def tied_names(report: FileReport) -> dict[str, TensorRow]:
    """Second names of tensors, by safetensors' convention: a ``__metadata__`` entry whose key is
    no tensor's name and whose value is one (what convert and safetensors' own convert.py
    write for tied weights)."""
    checkpoint = report.checkpoint
    metadata = (checkpoint.safetensors_metadata if checkpoint is not None else None) or {}
    rows = {row.name: row for row in report.tensors}
    return {key: TensorRow(key, rows[value].tensor) for key, value in metadata.items()
            if isinstance(value, str) and value in rows and key not in rows}


def _metadata(report: FileReport) -> dict[str, Any]:
    """Metadata as JSON values; safetensors ``__metadata__`` strings decoded where they are JSON
    (entries that name tied tensors are names, not metadata)."""
    result: dict[str, Any] = {}
    tied = tied_names(report)
    for name, value in report.metadata.items():
        if name.startswith("__metadata__."):
            key = name.removeprefix("__metadata__.")
            if key in tied:
                continue
            try:
                result[key] = json.loads(value)
            except (ValueError, TypeError):
                result[key] = value
        else:
            result[name] = to_json(value)
    return result


def diff_reports(
    a: FileReport, b: FileReport, values: bool = False, rtol: float = 1e-5, atol: float = 1e-8,
    strip_prefix: str | None = None,
) -> DiffResult:
    rows_a = {row.name: row for row in a.tensors} | tied_names(a)
    rows_b = {row.name: row for row in b.tensors} | tied_names(b)
    match = match_names(list(rows_a), list(rows_b), strip_prefix)
    map_a, map_b = match.a, match.b
    result = DiffResult(mapping=match.description, values_compared=values,
                        outside_a=match.outside_a, outside_b=match.outside_b)
    result.only_a = [map_a[n] for n in map_a if n not in map_b]
    result.only_b = [map_b[n] for n in map_b if n not in map_a]
    for name in (n for n in map_a if n in map_b):
        result.tensors.append(TensorDiff(name, rows_a[map_a[name]].tensor,
                                         rows_b[map_b[name]].tensor))
    meta_a, meta_b = _metadata(a), _metadata(b)
    for key in meta_a.keys() & meta_b.keys():
        if meta_a[key] != meta_b[key]:
            result.metadata_changed.append((key, meta_a[key], meta_b[key]))
    result.metadata_only_a = [k for k in meta_a if k not in meta_b and not _bookkeeping(k)]
    result.metadata_only_b = [k for k in meta_b if k not in meta_a and not _bookkeeping(k)]
    if values:
        _compare_values(a, b, result.tensors, rtol, atol)
    return result


def _bookkeeping(key: str) -> bool:
    """Keys a converter adds (``format``, ckpt's own records), not the user's metadata."""
    return key == "format" or key.startswith("ckpt.")


def _compare_values(a: FileReport, b: FileReport, diffs: list[TensorDiff], rtol: float,
                    atol: float) -> None:
    from ckpt_tool.readers.tensor_bytes import TensorFiles

    assert a.checkpoint is not None and b.checkpoint is not None
    with ExitStack() as stack:
        files_a = stack.enter_context(TensorFiles(a.checkpoint.path))
        files_b = stack.enter_context(TensorFiles(b.checkpoint.path))
        for diff in diffs:
            if diff.layout_changed and diff.a.shape != diff.b.shape:
                diff.note = "shapes differ"
                continue
            compare_tensor(diff, files_a, a.checkpoint.byteorder, files_b,
                           b.checkpoint.byteorder, rtol, atol)


def compare_tensor(diff: TensorDiff, files_a: TensorFiles, order_a: str, files_b: TensorFiles,
                   order_b: str, rtol: float, atol: float) -> None:
    """Stream both tensors in chunks: byte identity first, then the numeric differences."""
    import numpy as np

    try:
        view_a = files_a.values(diff.a, order_a)
        view_b = files_b.values(diff.b, order_b)
    except ValueError as exc:
        diff.note = str(exc)
        return
    same_encoding = diff.a.dtype == diff.b.dtype and order_a == order_b
    identical = same_encoding
    max_abs = max_rel = 0.0
    close = True
    for start in range(0, view_a.size, _CHUNK):
        chunk_a, chunk_b = view_a[start : start + _CHUNK], view_b[start : start + _CHUNK]
        if identical and chunk_a.tobytes() == chunk_b.tobytes():
            continue
        identical = False
        if diff.a.dtype.is_complex or diff.b.dtype.is_complex:
            x, y = chunk_a.astype(np.complex128), chunk_b.astype(np.complex128)
        else:
            x, y = chunk_a.astype(np.float64), chunk_b.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = np.abs(x - y)
            both_nan = np.isnan(x) & np.isnan(y)
            delta = np.where(both_nan | (x == y), 0.0, delta)
            rel = np.where(delta == 0, 0.0, delta / np.abs(y))
        if delta.size:
            max_abs = max(max_abs, float(np.nanmax(np.where(np.isnan(delta), np.inf, delta))))
            max_rel = max(max_rel, float(np.nanmax(np.where(np.isnan(rel), np.inf, rel))))
        close = close and bool(np.all(delta <= atol + rtol * np.abs(y)))
    diff.identical = identical
    diff.max_abs, diff.max_rel = max_abs, max_rel
    diff.allclose = identical or close
