"""Run one API function over many files: in this process, or ``jobs`` at a time in worker
processes and threads (``pool``, imported only then: a one-file run does not pay for
``multiprocessing``).

The function returns plain data and never raises; should it raise anyway, the file becomes a
``failed(path, message)`` result, and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ckpt_tool.model.record import Record

Result = dict[str, Any]
Failed = Callable[[str, str], Result]
"""``failed(path, message)``: the result of a file that could not be handled."""


class Task(Record):
    __slots__ = ("path", "options")
    path: str
    options: Mapping[str, Any]
    """Keyword arguments for this file alone (``size``, ``model``)."""

    def __init__(self, path: str, options: Mapping[str, Any] | None = None) -> None:
        self.path = path
        self.options = {} if options is None else options


def run_tasks(function: Callable[..., Result], tasks: list[Task], jobs: int,
              failed: Failed) -> Iterator[tuple[int, Result]]:
    """``(index, function(task.path, **task.options))`` for every task, as each finishes."""
    if jobs <= 1 or len(tasks) <= 1:
        for index, task in enumerate(tasks):
            yield index, call(function, task, failed)
        return
    from ckpt_tool.batch.pool import run_parallel

    yield from run_parallel(function, tasks, jobs, failed)


def call(function: Callable[..., Result], task: Task, failed: Failed) -> Result:
    try:
        return function(task.path, **task.options)
    except Exception as exc:
        from ckpt_tool.api.results import internal_error

        return failed(task.path, internal_error(exc))


def call_all(function: Callable[..., Result], batch: list[Task],
             failed: Failed) -> list[Result]:
    return [call(function, task, failed) for task in batch]
