"""Files ``jobs`` at a time: worker processes for local files (reading is CPU work), threads for
URLs (waiting on the network). Results come back as each file (each small chunk of local files)
finishes, with the file's index; should a worker process die, the files it had become
``failed(path, message)`` results, and the others go on.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import (
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
)

from ckpt_tool.batch.runner import Failed, Result, Task, call_all
from ckpt_tool.containers.remote import is_url

_CHUNKS_PER_WORKER = 8
_MAX_CHUNK = 32


def run_parallel(function: Callable[..., Result], tasks: list[Task], jobs: int,
                 failed: Failed) -> Iterator[tuple[int, Result]]:
    local = [i for i, task in enumerate(tasks) if not is_url(task.path)]
    remote = [i for i, task in enumerate(tasks) if is_url(task.path)]
    chunks = _chunks(local, jobs)
    futures: dict[Future[list[Result]], list[int]] = {}
    pools: list[Executor] = []
    try:
        if chunks:
            pools.append(ProcessPoolExecutor(min(jobs, len(chunks)), mp_context=_context(),
                                             initializer=_ignore_interrupts))
            for chunk in chunks:
                batch = [tasks[i] for i in chunk]
                futures[pools[-1].submit(call_all, function, batch, failed)] = chunk
        if remote:
            pools.append(ThreadPoolExecutor(min(jobs, len(remote))))
            for i in remote:
                futures[pools[-1].submit(call_all, function, [tasks[i]], failed)] = [i]
        for future in as_completed(futures):
            indexes = futures[future]
            yield from zip(indexes, _outcome(future, [tasks[i] for i in indexes], failed),
                           strict=True)
    except BaseException:  # Ctrl-C, or the consumer stopped (a closed pipe): stop the workers
        for pool in pools:
            _stop(pool)
        raise
    for pool in pools:
        pool.shutdown(wait=True)


def _context() -> multiprocessing.context.BaseContext:
    """fork while this process has no other thread: workers start at once, with ckpt already
    imported (spawn costs each one a new interpreter and its imports, about 0.3 s); spawn
    otherwise, since a fork copies locks other threads may hold."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _chunks(indexes: list[int], jobs: int) -> list[list[int]]:
    """Small enough that results stream and the workers share the load evenly, large enough
    that sending a file to a worker costs little against reading it."""
    size = max(1, min(_MAX_CHUNK, len(indexes) // (jobs * _CHUNKS_PER_WORKER)))
    return [indexes[start:start + size] for start in range(0, len(indexes), size)]


def _outcome(future: Future[list[Result]], batch: list[Task], failed: Failed) -> list[Result]:
    try:
        return future.result()
    except Exception as exc:  # the worker died (killed, out of memory) or could not start
        message = f"the worker process failed: {type(exc).__name__}: {exc}"
        return [failed(task.path, message) for task in batch]


def _ignore_interrupts() -> None:
    """Ctrl-C is the parent's to handle: it stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop(pool: Executor) -> None:
    if not isinstance(pool, ProcessPoolExecutor):
        pool.shutdown(wait=False, cancel_futures=True)
        return
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14
    if terminate is not None:
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            process.terminate()
