"""The Rich view of ``ckpt diff``: what differs, then one verdict line that says what was
compared. Names and values from the files are escaped (``render.safe``)."""

from __future__ import annotations

import json

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ckpt_tool.diff import DiffResult
from ckpt_tool.render.names import fit_names
from ckpt_tool.render.safe import printable


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _names(title: str, names: list[str], width: int | None) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, show_header=False)
    table.add_column("name", style="cyan", no_wrap=True)
    for name in fit_names(names, width, 2):
        table.add_row(Text(name))
    return table


def _listing(names: list[str], limit: int) -> str:
    shown = ", ".join(printable(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def render_view(path_a: str, path_b: str, result: DiffResult,
                width: int | None = None) -> RenderableType:
    parts: list[RenderableType] = [Text(f"A: {printable(path_a)}\nB: {printable(path_b)}",
                                        "bold")]
    if result.mapping:
        parts.append(Text(f"names matched after: {printable(result.mapping)}", "dim"))
    for side, aliases in (("A", result.aliases_a), ("B", result.aliases_b)):
        if aliases:
            pairs = [f"{alias} = {kept}" for alias, kept in aliases.items()]
            parts.append(Text(f"tied weights of {side} read from its metadata: "
                              f"{_listing(pairs, 5)}", "dim"))
    for side, names in (("A", result.outside_a), ("B", result.outside_b)):
        if names:
            parts.append(Text(f"{len(names)} tensors of {side} outside the matched root, not "
                              f"compared: {_listing(names, 5)}", "dim"))
    if result.only_a:
        parts.append(_names(f"only in A ({len(result.only_a)})", result.only_a, width))
    if result.only_b:
        parts.append(_names(f"only in B ({len(result.only_b)})", result.only_b, width))
    changed = [d for d in result.tensors if d.differs or d.note]
    if changed:
        parts.append(_changed_table(result, changed, width))
    if result.metadata_changed:
        table = Table(title="metadata that differs", title_justify="left", show_edge=False)
        for column in ("key", "A", "B"):
            table.add_column(column, overflow="fold")
        for key, a, b in result.metadata_changed:
            table.add_row(Text(printable(key)), Text(printable(json.dumps(a, default=str))),
                          Text(printable(json.dumps(b, default=str))))
        parts.append(table)
    for side, keys in (("A", result.metadata_only_a), ("B", result.metadata_only_b)):
        if keys:
            parts.append(Text(f"metadata only in {side}: {_listing(keys, 20)}", "dim"))
    parts.append(verdict_text(result, len(changed)))
    return Group(*parts)


def _changed_table(result: DiffResult, changed: list, width: int | None) -> Table:
    table = Table(title="tensors that differ", title_justify="left", show_edge=False)
    columns = ("name", "A", "B", "max abs", "max rel", "allclose")
    rows = []
    for d in changed:
        verdict = d.note or ("-" if d.allclose is None else str(d.allclose))
        rows.append([f"{d.a.dtype.name} {_shape(d.a.shape)}",
                     f"{d.b.dtype.name} {_shape(d.b.shape)}",
                     _number(d.max_abs), _number(d.max_rel), printable(verdict)])
    others = [max(len(row[i]) for row in rows) for i in range(5)]
    names = fit_names([d.name for d in changed], width, sum(w + 3 for w in others) + 2)
    for column in columns:
        table.add_column(column, no_wrap=column == "name", overflow="fold",
                         style="cyan" if column == "name" else None)
    for name, row in zip(names, rows, strict=True):
        table.add_row(Text(name), *(Text(cell) for cell in row))
    return table


def verdict_text(result: DiffResult, changed: int) -> Text:
    compared = len(result.tensors)
    if result.verdict == "equal":
        unresolved = len(result.unresolved)
        caveat = (f"; {unresolved} tensors could not be compared by value (see the notes)"
                  if unresolved else "")
        return Text(f"equal: {compared - unresolved} tensors identical or allclose, same "
                    f"metadata{caveat}", "bold green")
    if result.verdict == "same-layout":
        return Text(f"same names, dtypes and shapes ({compared} tensors) and metadata; values not "
                    "compared (--values compares them)", "bold yellow")
    what = []
    if result.only_a or result.only_b:
        what.append(f"{len(result.only_a)} only in A, {len(result.only_b)} only in B")
    if changed:
        what.append(f"{changed} of {compared} shared tensors differ")
    if result.metadata_changed or result.metadata_only_a or result.metadata_only_b:
        what.append("metadata differs")
    return Text("different: " + "; ".join(what), "bold red")
