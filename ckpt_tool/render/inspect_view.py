"""The Rich view of ``ckpt inspect``: one file's summary, structure, metadata, tensors (and
statistics); several files as one row each (shards of a model merged).

Every name and value taken from the file is escaped (``render.safe``): a key holding ``ESC[2J``
is shown, never obeyed. ``width`` is the terminal's (names are shortened in the middle to fit
it), or None on a pipe (names whole, nothing padded)."""

from __future__ import annotations

import os

from rich import box
from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ckpt_tool.inspect import structure
from ckpt_tool.inspect.models import ModelRow
from ckpt_tool.inspect.report import FileReport, TensorRow
from ckpt_tool.inspect.stats import TensorStats
from ckpt_tool.model.checkpoint import TensorRef
from ckpt_tool.model.values import short_text
from ckpt_tool.render.names import MIN_NAME_WIDTH, compact, fit_names, shorten
from ckpt_tool.render.safe import printable
from ckpt_tool.render.units import human_bytes, human_count

_MAX_TREE_CHILDREN = 60


def _shape(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("*" if n is None else str(n) for n in shape) + "]"


def shape_text(tensor: TensorRef) -> str:
    """``[4, 4]``; a nested tensor's ragged sizes as ``*`` (``[2, *, 3]``); a DTensor's local
    shape and the global one (``[4, 4] of [8, 4]``)."""
    nested = tensor.extra.get("nested_shape") if tensor.extra else None
    if nested is not None:
        return _shape(nested)
    sharding = tensor.sharding
    if sharding is not None and sharding.global_shape != tensor.shape:
        return f"{_shape(tensor.shape)} of {_shape(sharding.global_shape)}"
    return _shape(tensor.shape)


def _tensor_signature(row: TensorRow) -> str:
    return f"{row.tensor.dtype.name} {shape_text(row.tensor)}"


def _distributed_summary(report: FileReport) -> str | None:
    """One line for a rank's file of DTensors: which rank, which mesh, which placements."""
    shardings = [row.tensor.sharding for row in report.tensors if row.tensor.sharding]
    if not shardings:
        return None
    first = shardings[0]
    where = []
    if first.rank is not None:
        where.append(f"rank {first.rank}")
    if first.coordinate is not None:
        where.append(f"coordinate {_shape(first.coordinate)}")
    if first.mesh_shape is not None:
        names = f" ({', '.join(first.mesh_dim_names)})" if first.mesh_dim_names else ""
        device = f" {first.mesh_device}" if first.mesh_device else ""
        where.append(f"mesh {_shape(first.mesh_shape)}{names}{device}")
    placements = sorted({", ".join(s.placements) for s in shardings})
    parts = sum(1 for row in report.tensors if not row.tensor.is_whole)
    count = f"{len(shardings)} DTensor{'s' if len(shardings) != 1 else ''}"
    return (f"{count} ({parts} only this rank's part); {'; '.join(where) or 'mesh unknown'}; "
            f"placements {' | '.join(placements)}")


def _count_text(count: int) -> str:
    return f"{human_count(count)} ({count:,})" if count >= 1000 else str(count)


def summary(report: FileReport) -> RenderableType:
    checkpoint = report.checkpoint
    assert checkpoint is not None
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()

    def row(label: str | Text, value: str | Text) -> None:
        grid.add_row(label, value if isinstance(value, Text) else Text(printable(value)))

    version = f" {checkpoint.format_version}" if checkpoint.format_version else ""
    row("format", f"{checkpoint.format.value}{version}")
    if checkpoint.pickle_protocol is not None:
        row("pickle protocol", str(checkpoint.pickle_protocol))
    row("byteorder", checkpoint.byteorder)
    row("file size", f"{human_bytes(checkpoint.size)} ({checkpoint.size:,} bytes), "
        f"{human_bytes(checkpoint.bytes_read)} read")
    if checkpoint.files:
        row("files", _files_text(report))
    row("tensors", f"{len(report.tensors):,}")
    parts = report.parts
    row("parameters", f"{_count_text(parts.parameters)} in {parts.weights_root}")
    if parts.training_state:
        row("training state", f"{_count_text(parts.training_state)} elements (optimizer, "
            "scheduler, scaler)")
    if parts.other:
        row("other tensors", f"{_count_text(parts.other)} elements outside the weights")
    by_dtype = ", ".join(f"{d} {human_bytes(n)}" for d, n in report.bytes_by_dtype().items())
    row("bytes by dtype", by_dtype or "-")
    row("devices", ", ".join(report.devices()) or "-")
    distributed = _distributed_summary(report)
    if distributed:
        row("distributed", distributed)
    shared = report.shared_storages()
    if shared:
        row("shared storages", "\n".join(" = ".join(g[:4]) + (" ..." if len(g) > 4 else "")
                                          for g in shared[:10]))
    for warning in report.warnings:
        row(Text("warning", "yellow"), f"{warning.message} [{warning.code}]")
    for anomaly in checkpoint.anomalies[:10]:
        row(Text("warning", "yellow"), anomaly.message)
    verdict = checkpoint.weights_only
    if verdict.accepted is None:
        row("weights_only", "n/a (" + "; ".join(verdict.reasons) + ")")
    elif verdict.accepted:
        row("weights_only", Text("accepted by torch.load(weights_only=True)", "green"))
    else:
        row("weights_only", Text(printable("refused: " + "; ".join(verdict.reasons)), "yellow"))
    return grid


def _files_text(report: FileReport, limit: int = 10) -> str:
    """Each file of a multi-file checkpoint: its size and the tensor bytes it holds."""
    assert report.checkpoint is not None
    tensor_bytes = report.bytes_by_file()
    lines = [f"{_file_label(path, report.checkpoint.path)}  {human_bytes(size)}"
             + (f", tensors {human_bytes(tensor_bytes[path])}" if path in tensor_bytes else "")
             for path, size in report.checkpoint.files.items()]
    more = len(lines) - limit
    return "\n".join(lines[:limit] + ([f"... {more} more"] if more > 0 else []))


def _file_label(path: str, checkpoint_path: str) -> str:
    """The file's path inside the model's folder (``global_step1/mp_rank_00_model_states.pt``)."""
    folder = checkpoint_path if os.path.isdir(checkpoint_path) else os.path.dirname(
        checkpoint_path)
    if folder and not path.startswith(("http://", "https://")) and "://" not in path:
        relative = os.path.relpath(path, folder)
        if not relative.startswith(".."):
            return relative
    return os.path.basename(path.rstrip("/"))


def chunks_text(tensor: TensorRef) -> str:
    """How a tensor was saved in pieces: their count and the dimensions they split."""
    if not tensor.chunks:
        return ""
    if any(chunk.flat for chunk in tensor.chunks):
        return f"{len(tensor.chunks)} (flat)"
    split = [d for d in range(len(tensor.shape))
             if len({chunk.offsets[d] for chunk in tensor.chunks}) > 1]
    dims = f" (dim {', '.join(map(str, split))})" if split else ""
    return f"{len(tensor.chunks)}{dims}"


def structure_tree(report: FileReport, expand: bool) -> RenderableType:
    entries = [
        (tuple(name.split(".")),
         _tensor_signature(value) if isinstance(value, TensorRow) else short_text(value), value)
        for name, value in report.order
    ]
    root = structure.build_tree(structure.collapse(entries, enabled=not expand))
    tree = Tree(Text("(root)", "bold"))
    _add_children(tree, root)
    return tree


def _add_children(tree: Tree, node: structure.Node) -> None:
    for index, (key, child) in enumerate(node.children.items()):
        if index >= _MAX_TREE_CHILDREN:
            tree.add(Text(f"... {len(node.children) - index} more", "dim"))
            return
        label, child = _chain(key, child)
        label = printable(label)
        group = child.group
        if group is not None and not child.children:
            count = f" ×{len(group.items)}" if len(group.items) > 1 else ""
            tree.add(Text.assemble((label, "cyan"), "  ", (printable(group.signature), "dim"),
                                   count))
        else:
            _add_children(tree.add(Text(label, "bold")), child)


def _chain(key: str, node: structure.Node) -> tuple[str, structure.Node]:
    """Fold single-child folders into one dotted label (``state_dict.conv1``)."""
    label = key
    while node.group is None and len(node.children) == 1:
        (next_key, next_node), = node.children.items()
        if next_node.group is not None and not next_node.children:
            break
        label, node = f"{label}.{next_key}", next_node
    return label, node


def metadata_table(report: FileReport, expand: bool,
                   width: int | None = None) -> RenderableType | None:
    if not report.metadata:
        return None
    entries = [(tuple(name.split(".")), short_text(value), value)
               for name, value in report.metadata.items()]
    table = Table(title="metadata", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, collapse_padding=True)
    table.add_column("name", style="cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    groups = structure.collapse(entries, enabled=not expand)
    names = fit_names([group.name or "(root)" for group in groups],
                      width // 2 if width else None, 0)
    for name, group in zip(names, groups, strict=True):
        count = f"  (×{len(group.items)})" if len(group.items) > 1 else ""
        table.add_row(Text(name), Text(printable(group.signature) + count))
    return table


def tensor_table(rows: list[TensorRow], expand: bool, width: int | None = None,
                 collapse: bool = True) -> RenderableType:
    chunked = any(row.tensor.chunks for row in rows)
    columns = ("name", "dtype", "shape", "numel", "bytes", "device") + (
        ("chunks",) if chunked else ())
    entries = [(tuple(row.name.split(".")), f"{_tensor_signature(row)} {row.tensor.device}", row)
               for row in rows]
    cells = []
    for group in structure.collapse(entries, enabled=collapse and not expand):
        members: list[TensorRow] = group.items
        first = members[0].tensor
        count = f" ×{len(members)}" if len(members) > 1 else ""
        cells.append([group.name + count, first.dtype.name, shape_text(first),
                      f"{sum(m.tensor.numel for m in members):,}",
                      human_bytes(sum(m.tensor.nbytes for m in members)), printable(first.device)]
                     + ([chunks_text(first)] if chunked else []))
    total = [f"total: {len(rows):,} tensors", "", "", f"{sum(r.tensor.numel for r in rows):,}",
             human_bytes(sum(row.tensor.nbytes for row in rows)), ""] + ([""] if chunked else [])
    return _table("tensors", columns, cells, total, width, optional=("device", "numel"))


def _table(title: str, columns: tuple[str, ...], cells: list[list[str]], total: list[str] | None,
           width: int | None, optional: tuple[str, ...] = ()) -> Table:
    """A table whose first column holds names: kept on one line, shortened in the middle so that
    the table fits ``width``; the other columns keep their natural width, and the ``optional``
    ones are left out, in that order, while the names would otherwise be cut too short."""
    names = fit_names([row[0] for row in cells], None, 0)
    table = _build_table(title, columns, names, cells, total)
    if width is None:
        return table
    longest = max((len(name) for name in names), default=0)
    natural = measure(table)
    shortest = max((len(compact(name)) for name in names), default=0)
    comfortable = min(longest, max(COMFORTABLE_NAME_WIDTH, shortest))
    for column in optional:
        if longest - (natural - width) >= comfortable:
            break
        keep = [i for i, name in enumerate(columns) if name != column]
        columns = tuple(columns[i] for i in keep)
        cells = [[row[i] for i in keep] for row in cells]
        total = [total[i] for i in keep] if total else None
        table = _build_table(title, columns, names, cells, total)
        natural = measure(table)
    if natural <= width or not longest:
        return table
    room = max(MIN_NAME_WIDTH, longest - (natural - width))
    return _build_table(title, columns, [shorten(name, room) for name in names], cells, total)


def _build_table(title: str, columns: tuple[str, ...], names: list[str], cells: list[list[str]],
                 total: list[str] | None) -> Table:
    table = Table(title=title or None, title_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, collapse_padding=True)
    for column in columns:
        justify = "right" if column in _NUMERIC else "left"
        table.add_column(column, justify=justify, no_wrap=True,
                         style="cyan" if column == columns[0] else None)
    for name, row in zip(names, cells, strict=True):
        table.add_row(Text(name), *(Text(cell) for cell in row[1:]))
    if total:
        table.add_section()
        table.add_row(*(Text(cell) for cell in total), style="bold")
    return table


COMFORTABLE_NAME_WIDTH = 32
"""Optional columns are left out while names would be cut shorter than this."""
_NUMERIC = frozenset({"numel", "bytes", "tensors", "params", "size", "min", "max", "mean", "std",
                      "nan", "inf"})


def measure(renderable: RenderableType) -> int:
    """The width ``renderable`` takes when nothing constrains it."""
    from rich.console import Console

    console = Console(width=10_000, color_system=None)
    return console.measure(renderable).maximum


def stats_table(rows: list[TensorRow], stats: dict[str, TensorStats],
                width: int | None = None) -> RenderableType:
    """``--stats`` as its own narrow table: name, min, max, mean, std, NaN and Inf counts."""
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    cells = []
    for row in rows:
        found = stats.get(row.name)
        if found is None or found.note:
            cells.append([row.name, printable(found.note if found else ""), "", "", "", "", ""])
        else:
            cells.append([row.name, fmt(found.min), fmt(found.max), fmt(found.mean),
                          fmt(found.std), str(found.nan), str(found.inf)])
    return _table("statistics", ("name", "min", "max", "mean", "std", "nan", "inf"), cells, None,
                  width)


def file_view(report: FileReport, rows: list[TensorRow], expand: bool,
              show_tree: bool = True, width: int | None = None) -> RenderableType:
    parts: list[RenderableType] = [summary(report)]
    if show_tree and (report.tensors or report.metadata):
        parts += [Text(""), Text("structure", "bold underline"), structure_tree(report, expand)]
    metadata = metadata_table(report, expand, width)
    if metadata is not None:
        parts += [Text(""), metadata]
    parts += [Text(""), tensor_table(rows, expand, width)]
    if report.stats is not None:
        parts += [Text(""), stats_table(rows, report.stats, width)]
    title = Text(printable(report.path), "bold")
    header = Rule(title, align="left") if width else title
    return Group(header, *parts, Text(""))


def files_table(models: list[ModelRow], width: int | None = None,
                title: str = "") -> RenderableType:
    """Several files, one row each; the shards of one model as one row."""
    columns = ("file", "format", "tensors", "params", "size", "dtypes", "weights_only")
    cells = [[m.label, m.format, f"{m.tensors:,}", human_count(m.parameters),
              human_bytes(m.size), m.dtypes, m.weights_only] for m in models]
    return _table(title, columns, cells, None, width, optional=("dtypes", "format"))


def totals_view(reports: list[FileReport]) -> RenderableType:
    ok = [r for r in reports if r.ok]
    tensors = sum(len(r.tensors) for r in ok)
    params = sum(r.parameter_count for r in ok)
    nbytes = sum(r.total_bytes for r in ok)
    return Text(f"{len(reports)} files ({len(reports) - len(ok)} unreadable): {tensors:,} tensors, "
                f"{human_count(params)} parameters, {human_bytes(nbytes)}", "bold")
