"""Compare two sides: names, dtypes, shapes, metadata, and with ``values`` the tensor bytes.

Without ``values`` the result says what was compared (names, dtypes and shapes) and never calls
the checkpoints equal: ``verdict`` is ``same-layout``. Every list in the result is sorted, so two
runs print the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from ckpt_tool.diff.sides import SAFETENSORS_METADATA, Side
from ckpt_tool.inspect.report import FileReport
from ckpt_tool.model.checkpoint import TensorRef
from ckpt_tool.model.record import Record
from ckpt_tool.model.values import to_json

if TYPE_CHECKING:
    from ckpt_tool.readers.tensor_bytes import TensorFiles

COMMON_PREFIXES = ("state_dict.", "model.", "module.", "model_state_dict.", "model_state.",
                   "state_dict.module.", "model.module.", "net.", "network.", "ema.",
                   "model.state_dict.")
"""``model.state_dict.``: a torch.export archive's weights (its one model is named ``model``)."""
_CHUNK = 1 << 22

Progress = Callable[[int, int, str], None]
"""``progress(done, total, path)``: bytes of A's tensors compared so far, of ``total``; the file
being read."""


class TensorDiff(Record):
    __slots__ = ("name", "a", "b", "identical", "max_abs", "max_rel", "allclose", "note")
    __hash__ = None  # type: ignore[assignment]  # mutable
    name: str
    a: TensorRef
    b: TensorRef
    identical: bool | None
    """Byte-identical (None when values were not compared or could not be)."""
    max_abs: float | None
    max_rel: float | None
    allclose: bool | None
    note: str | None

    def __init__(self, name: str, a: TensorRef, b: TensorRef, identical: bool | None = None,
                 max_abs: float | None = None, max_rel: float | None = None,
                 allclose: bool | None = None, note: str | None = None) -> None:
        self.name = name
        self.a = a
        self.b = b
        self.identical = identical
        self.max_abs = max_abs
        self.max_rel = max_rel
        self.allclose = allclose
        self.note = note

    @property
    def layout_changed(self) -> bool:
        return self.a.dtype != self.b.dtype or self.a.shape != self.b.shape

    @property
    def differs(self) -> bool:
        return self.layout_changed or self.allclose is False


class DiffResult(Record):
    __slots__ = ("only_a", "only_b", "tensors", "metadata_changed", "metadata_only_a",
                 "metadata_only_b", "mapping", "outside_a", "outside_b", "values_compared",
                 "aliases_a", "aliases_b", "files_a", "files_b")
    __hash__ = None  # type: ignore[assignment]  # mutable
    only_a: list[str]
    only_b: list[str]
    tensors: list[TensorDiff]
    metadata_changed: list[tuple[str, Any, Any]]
    metadata_only_a: list[str]
    metadata_only_b: list[str]
    mapping: str | None
    """How names were matched, when not as they are (``A's names under 'state_dict.'``)."""
    outside_a: list[str]
    """Tensors outside the matched root (not compared, not counted as differences)."""
    outside_b: list[str]
    values_compared: bool
    aliases_a: dict[str, str]
    """Tied-weight aliases read from A's safetensors metadata (alias -> kept name)."""
    aliases_b: dict[str, str]
    files_a: int
    files_b: int

    def __init__(self, only_a: list[str] | None = None, only_b: list[str] | None = None,
                 tensors: list[TensorDiff] | None = None,
                 metadata_changed: list[tuple[str, Any, Any]] | None = None,
                 metadata_only_a: list[str] | None = None, metadata_only_b: list[str] | None = None,
                 mapping: str | None = None, outside_a: list[str] | None = None,
                 outside_b: list[str] | None = None, values_compared: bool = False,
                 aliases_a: dict[str, str] | None = None, aliases_b: dict[str, str] | None = None,
                 files_a: int = 1, files_b: int = 1) -> None:
        self.only_a = [] if only_a is None else only_a
        self.only_b = [] if only_b is None else only_b
        self.tensors = [] if tensors is None else tensors
        self.metadata_changed = [] if metadata_changed is None else metadata_changed
        self.metadata_only_a = [] if metadata_only_a is None else metadata_only_a
        self.metadata_only_b = [] if metadata_only_b is None else metadata_only_b
        self.mapping = mapping
        self.outside_a = [] if outside_a is None else outside_a
        self.outside_b = [] if outside_b is None else outside_b
        self.values_compared = values_compared
        self.aliases_a = {} if aliases_a is None else aliases_a
        self.aliases_b = {} if aliases_b is None else aliases_b
        self.files_a = files_a
        self.files_b = files_b

    @property
    def layout_equal(self) -> bool:
        return not (self.only_a or self.only_b or self.metadata_changed
                    or any(t.layout_changed for t in self.tensors))

    @property
    def equal(self) -> bool:
        """Equal under the chosen comparison (the exit code): with values compared, every tensor
        identical or allclose; without, the same names, dtypes, shapes and metadata."""
        return self.layout_equal and not any(t.differs for t in self.tensors)

    @property
    def verdict(self) -> str:
        """``equal`` only after a real comparison of values; ``same-layout`` when only names,
        dtypes and shapes were compared; ``different``."""
        if not self.equal:
            return "different"
        return "equal" if self.values_compared else "same-layout"

    @property
    def unresolved(self) -> list[TensorDiff]:
        """Tensors whose values could not be compared (a note says why)."""
        return [t for t in self.tensors if self.values_compared and t.allclose is None]


def _strip(names: list[str], prefix: str) -> dict[str, str]:
    return {name.removeprefix(prefix): name for name in names}


def _root(names: list[str], prefix: str) -> tuple[dict[str, str], list[str]]:
    """Names under ``prefix`` with it removed, and the names outside it."""
    inside = {name[len(prefix):]: name for name in names if name.startswith(prefix)}
    return inside, [name for name in names if not name.startswith(prefix)]


class NameMatch(Record):
    __slots__ = ("a", "b", "description", "outside_a", "outside_b")
    __hash__ = None  # type: ignore[assignment]  # mutable
    a: dict[str, str]
    """Common name -> A's name."""
    b: dict[str, str]
    description: str | None
    outside_a: list[str]
    """A's tensors outside the root the names were matched under (an optimizer's state...)."""
    outside_b: list[str]

    def __init__(self, a: dict[str, str], b: dict[str, str], description: str | None = None,
                 outside_a: list[str] | None = None, outside_b: list[str] | None = None) -> None:
        self.a = a
        self.b = b
        self.description = description
        self.outside_a = [] if outside_a is None else outside_a
        self.outside_b = [] if outside_b is None else outside_b


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


def _metadata(side: Side) -> dict[str, Any]:
    """Metadata as JSON values; safetensors ``__metadata__`` strings decoded where they are JSON."""
    result: dict[str, Any] = {}
    for name, value in side.metadata.items():
        if name.startswith(SAFETENSORS_METADATA):
            key = name.removeprefix(SAFETENSORS_METADATA)
            try:
                result[key] = json.loads(value)
            except (ValueError, TypeError):
                result[key] = value
        else:
            result[name] = to_json(value)
    return result


def _bookkeeping(key: str) -> bool:
    """Keys a converter adds (``format``, ckpt's own records), not the user's metadata."""
    return key == "format" or key.startswith("ckpt.")


def diff_sides(a: Side, b: Side, values: bool = False, rtol: float = 1e-5, atol: float = 1e-8,
               strip_prefix: str | None = None, progress: Progress | None = None) -> DiffResult:
    match = match_names(list(a.tensors), list(b.tensors), strip_prefix)
    map_a, map_b = match.a, match.b
    result = DiffResult(mapping=match.description, values_compared=values,
                        outside_a=sorted(match.outside_a), outside_b=sorted(match.outside_b),
                        aliases_a=dict(sorted(a.aliases.items())),
                        aliases_b=dict(sorted(b.aliases.items())),
                        files_a=len(a.files), files_b=len(b.files))
    result.only_a = sorted(map_a[n] for n in map_a if n not in map_b)
    result.only_b = sorted(map_b[n] for n in map_b if n not in map_a)
    for name in sorted(n for n in map_a if n in map_b):
        result.tensors.append(TensorDiff(name, a.tensors[map_a[name]][0],
                                         b.tensors[map_b[name]][0]))
    meta_a, meta_b = _metadata(a), _metadata(b)
    for key in sorted(meta_a.keys() & meta_b.keys()):
        if meta_a[key] != meta_b[key]:
            result.metadata_changed.append((key, meta_a[key], meta_b[key]))
    result.metadata_only_a = sorted(k for k in meta_a if k not in meta_b and not _bookkeeping(k))
    result.metadata_only_b = sorted(k for k in meta_b if k not in meta_a and not _bookkeeping(k))
    if values:
        sources = {d.name: (a.tensors[map_a[d.name]][1], b.tensors[map_b[d.name]][1])
                   for d in result.tensors}
        _compare_values(result.tensors, sources, rtol, atol, progress)
    return result


def diff_reports(a: FileReport, b: FileReport, values: bool = False, rtol: float = 1e-5,
                 atol: float = 1e-8, strip_prefix: str | None = None) -> DiffResult:
    """Two single files (inspect reports)."""
    from ckpt_tool.diff.sides import side_from_reports

    return diff_sides(side_from_reports(a.path, [a]), side_from_reports(b.path, [b]), values,
                      rtol, atol, strip_prefix)


def _compare_values(diffs: list[TensorDiff], sources: dict[str, tuple[FileReport, FileReport]],
                    rtol: float, atol: float, progress: Progress | None) -> None:
    from ckpt_tool.readers.tensor_bytes import TensorFiles

    with ExitStack() as stack:
        opened: dict[str, TensorFiles] = {}

        def files_for(report: FileReport) -> TensorFiles:
            assert report.checkpoint is not None
            path = report.checkpoint.path
            if path not in opened:
                opened[path] = stack.enter_context(TensorFiles(path))
            return opened[path]

        done, total = 0, sum(diff.a.nbytes for diff in diffs)
        for diff in diffs:
            report_a, report_b = sources[diff.name]
            if diff.layout_changed and diff.a.shape != diff.b.shape:
                diff.note = "shapes differ"
            else:
                assert report_a.checkpoint is not None and report_b.checkpoint is not None
                compare_tensor(diff, files_for(report_a), report_a.checkpoint.byteorder,
                               files_for(report_b), report_b.checkpoint.byteorder, rtol, atol)
            if progress is not None:
                progress(done, total, report_a.path)
            done += diff.a.nbytes
        if progress is not None:
            progress(done, total, "")


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
