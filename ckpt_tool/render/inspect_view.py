"""The Rich view of ``ckpt inspect``: summary, structure, metadata, tensors."""

from __future__ import annotations

import os

from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ckpt_tool.inspect import structure
from ckpt_tool.inspect.report import FileReport, TensorRow
from ckpt_tool.inspect.stats import TensorStats
from ckpt_tool.model.checkpoint import TensorRef
from ckpt_tool.model.values import short_text
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


def summary(report: FileReport) -> RenderableType:
    checkpoint = report.checkpoint
    assert checkpoint is not None
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    version = f" {checkpoint.format_version}" if checkpoint.format_version else ""
    grid.add_row("format", f"{checkpoint.format.value}{version}")
    if checkpoint.pickle_protocol is not None:
        grid.add_row("pickle protocol", str(checkpoint.pickle_protocol))
    grid.add_row("byteorder", checkpoint.byteorder)
    grid.add_row("file size", f"{human_bytes(checkpoint.size)} ({checkpoint.size:,} bytes), "
                 f"{human_bytes(checkpoint.bytes_read)} read")
    if checkpoint.files:
        grid.add_row("files", _files_text(report))
    grid.add_row("tensors", f"{len(report.tensors):,}")
    count = report.parameter_count
    grid.add_row("parameters", f"{human_count(count)} ({count:,})" if count >= 1000 else str(count))
    by_dtype = ", ".join(f"{d} {human_bytes(n)}" for d, n in report.bytes_by_dtype().items())
    grid.add_row("bytes by dtype", by_dtype or "-")
    grid.add_row("devices", ", ".join(report.devices()) or "-")
    distributed = _distributed_summary(report)
    if distributed:
        grid.add_row("distributed", distributed)
    shared = report.shared_storages()
    if shared:
        grid.add_row("shared storages", "\n".join(" = ".join(g[:4]) + (" ..." if len(g) > 4 else "")
                                                  for g in shared[:10]))
    for anomaly in checkpoint.anomalies[:10]:
        grid.add_row(Text("warning", "yellow"), anomaly.message)
    verdict = checkpoint.weights_only
    if verdict.accepted is None:
        grid.add_row("weights_only", "n/a (" + "; ".join(verdict.reasons) + ")")
    elif verdict.accepted:
        grid.add_row("weights_only", Text("accepted by torch.load(weights_only=True)", "green"))
    else:
        grid.add_row("weights_only", Text("refused: " + "; ".join(verdict.reasons), "yellow"))
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
        group = child.group
        if group is not None and not child.children:
            count = f" ×{len(group.items)}" if len(group.items) > 1 else ""
            tree.add(Text.assemble((label, "cyan"), "  ", (group.signature, "dim"), count))
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


def metadata_table(report: FileReport, expand: bool) -> RenderableType | None:
    if not report.metadata:
        return None
    entries = [(tuple(name.split(".")), short_text(value), value)
               for name, value in report.metadata.items()]
    table = Table(title="metadata", title_justify="left", show_edge=False)
    table.add_column("name", style="cyan", overflow="fold")
    table.add_column("value", overflow="fold")
    for group in structure.collapse(entries, enabled=not expand):
        count = f"  (×{len(group.items)})" if len(group.items) > 1 else ""
        table.add_row(group.name or "(root)", group.signature + count)
    return table


def tensor_table(report: FileReport, rows: list[TensorRow], expand: bool,
                 stats: dict[str, TensorStats] | None) -> RenderableType:
    table = Table(title="tensors", title_justify="left", show_edge=False)
    chunked = any(row.tensor.chunks for row in rows)
    columns = ("name", "dtype", "shape", "numel", "bytes", "device") + (
        ("chunks",) if chunked else ())
    for column in columns:
        justify = "right" if column in ("numel", "bytes") else "left"
        table.add_column(column, justify=justify, overflow="fold",
                         style="cyan" if column == "name" else None)
    if stats is not None:
        for column in ("min", "max", "mean", "std", "nan", "inf"):
            table.add_column(column, justify="right")
    entries = [(tuple(row.name.split(".")), f"{_tensor_signature(row)} {row.tensor.device}", row)
               for row in rows]
    for group in structure.collapse(entries, enabled=not (expand or stats is not None)):
        members: list[TensorRow] = group.items
        first = members[0].tensor
        count = f" ×{len(members)}" if len(members) > 1 else ""
        cells = [group.name + count, first.dtype.name, shape_text(first),
                 f"{sum(m.tensor.numel for m in members):,}",
                 human_bytes(sum(m.tensor.nbytes for m in members)), first.device]
        if chunked:
            cells.append(chunks_text(first))
        if stats is not None:
            cells += _stats_cells(stats.get(members[0].name))
        table.add_row(*cells)
    total_bytes = sum(row.tensor.nbytes for row in rows)
    table.add_section()
    total = [f"total: {len(rows):,} tensors", "", "", f"{sum(r.tensor.numel for r in rows):,}",
             human_bytes(total_bytes), ""] + ([""] if chunked else [])
    table.add_row(*(total + ([""] * 6 if stats is not None else [])), style="bold")
    return table


def _stats_cells(stats: TensorStats | None) -> list[str]:
    if stats is None or stats.note:
        note = stats.note if stats else ""
        return [note, "", "", "", "", ""]
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"
    return [fmt(stats.min), fmt(stats.max), fmt(stats.mean), fmt(stats.std), str(stats.nan),
            str(stats.inf)]


def file_view(report: FileReport, rows: list[TensorRow], expand: bool,
              show_tree: bool = True) -> RenderableType:
    parts: list[RenderableType] = [summary(report)]
    if show_tree and (report.tensors or report.metadata):
        parts += [Text(""), Text("structure", "bold underline"), structure_tree(report, expand)]
    metadata = metadata_table(report, expand)
    if metadata is not None:
        parts += [Text(""), metadata]
    parts += [Text(""), tensor_table(report, rows, expand, report.stats)]
    return Group(Rule(Text(report.path, "bold"), align="left"), *parts, Text(""))


def totals_view(reports: list[FileReport]) -> RenderableType:
    ok = [r for r in reports if r.ok]
    tensors = sum(len(r.tensors) for r in ok)
    params = sum(r.parameter_count for r in ok)
    nbytes = sum(r.total_bytes for r in ok)
    return Text(f"{len(reports)} files ({len(reports) - len(ok)} unreadable): {tensors:,} tensors, "
                f"{human_count(params)} parameters, {human_bytes(nbytes)}", "bold")
