"""Convert many files, in this process or in ``--jobs N`` worker processes.

One failing file never stops the others: every file gets a ``ConvertResult``, with ``error`` set
when it failed, whatever went wrong (a worker that died included). Progress comes back from the
workers through a queue, at most every ``_REPORT_EVERY`` seconds per file.
"""

from __future__ import annotations

import contextlib
import os
import queue as queue_module
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ckpt_tool.convert.core import convert_file
from ckpt_tool.convert.options import ConvertOptions, ConvertResult
from ckpt_tool.model.record import Record

if TYPE_CHECKING:  # multiprocessing only for --jobs N: one conversion never imports it
    from concurrent.futures import Future, ProcessPoolExecutor

_REPORT_EVERY = 0.1
_POLL = 0.1


class Job(Record):
    """``size``: the source's size in bytes, the job's share of the progress bar."""

    __slots__ = ("dest", "size", "source")

    def __init__(self, source: str, dest: str, size: int) -> None:
        self.source, self.dest, self.size = source, dest, size


OnProgress = Callable[[int, int, int, str | None], None]
"""``on_progress(job_index, done, total, label)`` in the job's own units; ``label`` names what
is being written (a tensor), or None."""
OnResult = Callable[[int, ConvertResult], None]


def run_jobs(jobs: list[Job], options: ConvertOptions, workers: int = 1,
             on_progress: OnProgress | None = None,
             on_result: OnResult | None = None) -> list[ConvertResult]:
    """Convert every job; results in the jobs' order."""
    if workers <= 1 or len(jobs) <= 1:
        return _run_here(jobs, options, on_progress, on_result)
    return _run_in_processes(jobs, options, min(workers, len(jobs)), on_progress, on_result)


def _run_here(jobs: list[Job], options: ConvertOptions, on_progress: OnProgress | None,
              on_result: OnResult | None) -> list[ConvertResult]:
    results = []
    for index, job in enumerate(jobs):
        reporter = _Reporter(lambda done, total, label, i=index: on_progress(i, done, total, label)
                             ) if on_progress else None
        result = _guarded(job, options, reporter)
        results.append(result)
        if on_result:
            on_result(index, result)
    return results


def _guarded(job: Job, options: ConvertOptions, reporter: _Reporter | None) -> ConvertResult:
    """``convert_file``, with a bug in ckpt reported against this file only."""
    try:
        if reporter is None:
            return convert_file(job.source, job.dest, options)
        return convert_file(job.source, job.dest, options, reporter.report, reporter.label)
    except Exception as exc:
        if os.environ.get("CKPT_DEBUG"):
            raise
        return ConvertResult(job.source, error=f"internal error: {type(exc).__name__}: {exc} "
                                               "(set CKPT_DEBUG=1 for the traceback)")


class _Reporter:
    """Progress of one conversion, sent at most every ``_REPORT_EVERY`` seconds (and at the end),
    with the label last given."""

    def __init__(self, send: Callable[[int, int, str | None], None]) -> None:
        self.send = send
        self.last = 0.0
        self.current: str | None = None

    def report(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self.last >= _REPORT_EVERY:
            self.last = now
            self.send(done, total, self.current)

    def label(self, text: str) -> None:
        self.current = text


# ---- worker processes --------------------------------------------------------------------

_WORKER_QUEUE: Any = None
_WORKER_STOP: Any = None


def _init_worker(progress_queue: Any, stop: Any) -> None:
    """Ctrl-C is the parent's to handle: it stops the workers with SIGTERM, which interrupts the
    running conversion like Ctrl-C would (its temporary files are removed) and ends the worker."""
    global _WORKER_QUEUE, _WORKER_STOP
    _WORKER_QUEUE, _WORKER_STOP = progress_queue, stop
    progress_queue.cancel_join_thread()  # never wait at exit for progress nobody reads
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _work(index: int, job: Job, options: ConvertOptions) -> ConvertResult:
    if _WORKER_STOP.is_set():  # a job queued before Ctrl-C reached the parent
        return ConvertResult(job.source, error="not converted: interrupted")
    reporter = _Reporter(lambda done, total, label: _WORKER_QUEUE.put((index, done, total, label)))
    return _guarded(job, options, reporter)


def _run_in_processes(jobs: list[Job], options: ConvertOptions, workers: int,
                      on_progress: OnProgress | None,
                      on_result: OnResult | None) -> list[ConvertResult]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    progress_queue, stop = context.Queue(), context.Event()
    results: list[ConvertResult | None] = [None] * len(jobs)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(progress_queue, stop))
    try:
        futures = {pool.submit(_work, i, job, options): i for i, job in enumerate(jobs)}
        pending: set[Future[ConvertResult]] = set(futures)
        while pending:
            done, pending = wait(pending, timeout=_POLL, return_when=FIRST_COMPLETED)
            _drain(progress_queue, on_progress)
            for future in done:
                index = futures[future]
                results[index] = _outcome(future, jobs[index])
                if on_result:
                    on_result(index, results[index])
        _drain(progress_queue, on_progress)
    except BaseException:  # Ctrl-C: start nothing more, interrupt what runs
        stop.set()
        _terminate_workers(pool)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [result for result in results if result is not None]


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    """SIGTERM to every worker (``ProcessPoolExecutor`` has no public way before Python 3.14)."""
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    for process in list(getattr(pool, "_processes", {}).values()):
        with contextlib.suppress(OSError, ValueError):
            process.terminate()


def _outcome(future: Future[ConvertResult], job: Job) -> ConvertResult:
    try:
        return future.result()
    except Exception as exc:  # the worker died (killed, out of memory) or could not start
        return ConvertResult(job.source, error=f"the worker process failed: "
                                               f"{type(exc).__name__}: {exc}")


def _drain(progress_queue: Any, on_progress: OnProgress | None) -> None:
    while True:
        try:
            index, done, total, label = progress_queue.get_nowait()
        except queue_module.Empty:
            return
        if on_progress:
            on_progress(index, done, total, label)


class ByteProgress:
    """Turns each job's (done, total) into bytes of its source, for one bar over all jobs."""

    def __init__(self, jobs: list[Job]) -> None:
        self.sizes = [job.size for job in jobs]
        self.shown = [0] * len(jobs)

    @property
    def total(self) -> int:
        return sum(self.sizes)

    def advance(self, index: int, done: int, total: int) -> int:
        """Bytes to add to the bar for this report. A job of unknown size (a URL) takes the
        size of its first report's total (the bar's total grows)."""
        if not self.sizes[index]:
            self.sizes[index] = total
        now = self.sizes[index] * min(done, total) // max(total, 1)
        delta, self.shown[index] = max(0, now - self.shown[index]), max(now, self.shown[index])
        return delta

    def complete(self, index: int) -> int:
        return self.advance(index, 1, 1)
