"""``inspect_one``: what one checkpoint holds, as the document ``ckpt inspect --json`` prints."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ckpt_tool.api.results import (
    ERROR,
    LimitsLike,
    as_limits,
    as_path,
    as_remote,
    guarded,
    with_outcome,
)
from ckpt_tool.containers.remote import NO_OPTIONS, RemoteOptions, is_url
from ckpt_tool.errors import ConfigError
from ckpt_tool.exitcodes import OK
from ckpt_tool.inspect.report import FileReport, TensorRow, inspect_file, select_rows
from ckpt_tool.limits import DEFAULT_LIMITS, Limits

SORT_KEYS = ("file", "name", "size")


def inspect_one(source: Any, *, limits: LimitsLike = None,
                storage_options: Mapping[str, Any] | None = None, size: int | None = None,
                stats: bool = False, pattern: str | None = None, sort: str = "file",
                limit: int | None = None, model: str | None = None) -> dict[str, Any]:
    """Read ``source`` (a path, a folder that is one checkpoint, or a URL) and return the
    ``ckpt inspect --json`` document of that one file (schema 2) with ``path``, ``exit_code``
    (0, or 2 when it could not be read) and ``error``.

    ``limits``: a ``Limits`` or a dict of limits to change; ``storage_options``: passed to
    fsspec for ``s3://``, ``hf://``... URLs (``headers`` for HTTP); ``size``: the file's size if
    a listing gave it (saves an fsspec URL its metadata request); ``stats``: per-tensor
    statistics (reads tensor bytes; local files; numpy); ``pattern``, ``sort``, ``limit``: which
    tensors to list, as ``--filter``, ``--sort`` and ``--limit``; ``model``: the model a shard
    belongs to (its index file), reported as ``model``.
    """
    path = as_path(source)

    def run() -> dict[str, Any]:
        report, rows = inspect_report(path, as_limits(limits), as_remote(storage_options, size),
                                      stats, pattern, sort, limit)
        return inspect_result(report, rows, model)

    return guarded(run, lambda message: inspect_result(FileReport(path, error=message), [],
                                                       model))


def inspect_report(path: str, limits: Limits = DEFAULT_LIMITS,
                   remote: RemoteOptions = NO_OPTIONS, stats: bool = False,
                   pattern: str | None = None, sort: str = "file", limit: int | None = None,
                   on_bytes: Callable[[int], None] | None = None
                   ) -> tuple[FileReport, list[TensorRow]]:
    """The report the Rich view shows and the rows it lists; ``on_bytes`` is told of tensor
    bytes read for ``stats``."""
    if sort not in SORT_KEYS:
        raise ConfigError(f"sort must be one of {', '.join(SORT_KEYS)}, not {sort!r}")
    if stats:
        from ckpt_tool.extras import require_numpy

        require_numpy("statistics")
    report = inspect_file(path, limits, remote)
    rows = select_rows(report.tensors, pattern, sort, limit)
    if stats and report.ok:
        add_stats(report, rows, on_bytes)
    return report, rows


def add_stats(report: FileReport, rows: list[TensorRow],
              on_bytes: Callable[[int], None] | None = None) -> None:
    """Per-tensor statistics into ``report.stats`` (or ``report.error``)."""
    from ckpt_tool.inspect.stats import tensor_stats
    from ckpt_tool.readers.tensor_bytes import TensorFiles

    assert report.checkpoint is not None
    if report.checkpoint.size == 0:
        return
    if is_url(report.path):
        report.error = "--stats reads tensor bytes: download the file first"
        return
    try:
        with TensorFiles(report.checkpoint.path) as files:
            report.stats = {row.name: tensor_stats(files, row.tensor, report.checkpoint.byteorder,
                                                   on_bytes)
                            for row in rows}
    except (OSError, ValueError) as exc:
        report.error = f"reading tensor bytes failed: {exc}"


def inspect_result(report: FileReport, rows: list[TensorRow],
                   model: str | None = None) -> dict[str, Any]:
    from ckpt_tool.render.inspect_json import inspect_document

    document = inspect_document([(report, rows)], [model])
    return with_outcome(document, report.path, OK if report.ok else ERROR, report.error)
