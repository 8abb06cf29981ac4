"""Views of ``ckpt diff``: a Rich report and a JSON document (schema 1)."""

from __future__ import annotations

import json
import math
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ckpt_tool.diff import DiffResult, TensorDiff

SCHEMA = 1


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _finite(value: float | None) -> float | str | None:
    return value if value is None or math.isfinite(value) else str(value)


def tensor_json(diff: TensorDiff) -> dict[str, Any]:
    return {
        "name": diff.name, "dtype_a": diff.a.dtype.name, "dtype_b": diff.b.dtype.name,
        "shape_a": list(diff.a.shape), "shape_b": list(diff.b.shape),
        "identical": diff.identical, "max_abs": _finite(diff.max_abs),
        "max_rel": _finite(diff.max_rel),
        "allclose": diff.allclose, "note": diff.note,
    }


def render_json(path_a: str, path_b: str, result: DiffResult) -> str:
    document = {
        "schema": SCHEMA, "a": path_a, "b": path_b, "equal": result.equal,
        "mapping": result.mapping, "values_compared": result.values_compared,
        "only_a": result.only_a, "only_b": result.only_b,
        "outside_a": result.outside_a, "outside_b": result.outside_b,
        "tensors": [tensor_json(d) for d in result.tensors],
        "metadata": {
            "changed": [{"key": k, "a": a, "b": b} for k, a, b in result.metadata_changed],
            "only_a": result.metadata_only_a, "only_b": result.metadata_only_b,
        },
    }
    return json.dumps(document, ensure_ascii=False, default=str)


def _names_table(title: str, names: list[str]) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("name", style="cyan", overflow="fold")
    for name in names:
        table.add_row(name)
    return table


def render_view(path_a: str, path_b: str, result: DiffResult) -> RenderableType:
    parts: list[RenderableType] = [Text(f"A: {path_a}\nB: {path_b}", "bold")]
    if result.mapping:
        parts.append(Text(f"names matched after: {result.mapping}", "dim"))
    for side, names in (("A", result.outside_a), ("B", result.outside_b)):
        if names:
            parts.append(Text(f"{len(names)} tensors of {side} outside the matched root, not "
                              f"compared: " + ", ".join(names[:5]) + (" ..." if len(names) > 5
                                                                      else ""), "dim"))
    if result.only_a:
        parts.append(_names_table(f"only in A ({len(result.only_a)})", result.only_a))
    if result.only_b:
        parts.append(_names_table(f"only in B ({len(result.only_b)})", result.only_b))
    changed = [d for d in result.tensors if d.differs or d.note]
    if changed:
        table = Table(title="tensors that differ", title_justify="left", show_edge=False)
        for column in ("name", "A", "B", "max abs", "max rel", "allclose"):
            table.add_column(column, overflow="fold", style="cyan" if column == "name" else None)
        for d in changed:
            table.add_row(d.name, f"{d.a.dtype.name} {_shape(d.a.shape)}",
                          f"{d.b.dtype.name} {_shape(d.b.shape)}", _number(d.max_abs),
                          _number(d.max_rel), d.note or str(d.allclose if d.allclose is not None
                                                            else "-"))
        parts.append(table)
    if result.metadata_changed:
        table = Table(title="metadata that differs", title_justify="left", show_edge=False)
        for column in ("key", "A", "B"):
            table.add_column(column, overflow="fold")
        for key, a, b in result.metadata_changed:
            table.add_row(key, json.dumps(a, default=str), json.dumps(b, default=str))
        parts.append(table)
    for side, keys in (("A", result.metadata_only_a), ("B", result.metadata_only_b)):
        if keys:
            parts.append(Text(f"metadata only in {side}: " + ", ".join(keys[:20]), "dim"))
    same = len(result.tensors) - len(changed)
    how = "identical or allclose" if result.values_compared else "same dtype and shape"
    parts.append(Text(f"{same} of {len(result.tensors)} shared tensors {how}", "dim"))
    verdict = ("equal", "green") if result.equal else ("different", "red")
    parts.append(Text(verdict[0], f"bold {verdict[1]}"))
    return Group(*parts)
