"""Run a command as a whole process: wall time, exit code, and peak anonymous memory.

Peak ``RssAnon`` is not kept by the kernel (``VmHWM`` counts file-backed pages too, and a
memory-mapped checkpoint is file-backed), so a thread reads ``/proc/PID/status`` every
``SAMPLE_INTERVAL`` seconds while the process runs. Only the process itself is sampled, not
its children.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SAMPLE_INTERVAL = 0.01
STDERR_TAIL = 4_000
# What users pay: an installed package has its byte-code cached. This workplace sets
# PYTHONDONTWRITEBYTECODE, which would make every measured process compile the editable
# checkout again (+40-60 ms); measured processes run without it, after ``compile_package``.
CHILD_ENV = {key: value for key, value in os.environ.items()
             if key != "PYTHONDONTWRITEBYTECODE"}


def compile_package() -> None:
    """Write the byte-code cache of ckpt (and of anything it imports) before timing."""
    import compileall

    import ckpt_tool

    for folder in ckpt_tool.__path__:
        compileall.compile_dir(folder, quiet=1)


class NotAvailable(Exception):
    """A measurement could not be made; the message says why (shown in the table)."""


@dataclass(frozen=True)
class RunResult:
    seconds: float
    returncode: int
    peak_rss_anon: int | None  # bytes; None when never sampled (the process was too short)
    stdout: str  # empty unless captured
    stderr: str  # the last STDERR_TAIL characters


@dataclass(frozen=True)
class Measurement:
    """Timed runs of one command after an untimed warm-up run."""

    seconds: tuple[float, ...]
    peak_rss_anon: int | None  # the largest over the timed runs
    warmup: RunResult
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


Check = Callable[[RunResult], str]  # returns a note for the table, or raises NotAvailable


@dataclass(frozen=True)
class Command:
    """A command to measure and how to judge its runs."""

    argv: Sequence[str]
    ok_codes: tuple[int, ...] = (0,)
    check: Check | None = None  # applied to the warm-up run, whose stdout is captured
    before: Callable[[], None] | None = None  # untimed, before every run (e.g. remove outputs)
    sample_memory: bool = True


class RssSampler(threading.Thread):
    """Polls ``/proc/PID/status`` for ``RssAnon`` until stopped; keeps the largest value."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.status = Path(f"/proc/{pid}/status")
        self.peak: int | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            self._sample()
            if self._stop_event.wait(SAMPLE_INTERVAL):
                return

    def stop(self) -> int | None:
        self._stop_event.set()
        self.join()
        return self.peak

    def _sample(self) -> None:
        try:
            text = self.status.read_text()
        except OSError:  # the process has gone
            return
        for line in text.splitlines():
            if line.startswith("RssAnon:"):
                value = int(line.split()[1]) * 1024  # reported in kB
                self.peak = value if self.peak is None else max(self.peak, value)
                return


def run_once(command: Command, timeout: float, capture_stdout: bool) -> RunResult:
    """Run the command once; raise NotAvailable if it cannot start or runs past ``timeout``."""
    if command.before:
        command.before()
    with tempfile.TemporaryFile() as err, _stdout_sink(capture_stdout) as out:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                list(command.argv),
                stdin=subprocess.DEVNULL,
                env=CHILD_ENV,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group, so a timeout ends it whole
            )
        except OSError as exc:
            raise NotAvailable(f"cannot run {command.argv[0]}: {exc.strerror}") from exc
        sampler = RssSampler(proc.pid) if command.sample_memory else None
        if sampler:
            sampler.start()
        try:
            returncode = _wait(proc, timeout)
        finally:
            seconds = time.perf_counter() - start
            peak = sampler.stop() if sampler else None
        return RunResult(seconds, returncode, peak, _read(out), _read(err)[-STDERR_TAIL:])


def measure(command: Command, runs: int, timeout: float) -> Measurement:
    """A checked warm-up run, then ``runs`` timed runs; NotAvailable on any failed run."""
    warmup = _checked_run(command, timeout, capture_stdout=command.check is not None)
    note = command.check(warmup) if command.check else ""
    timed = [_checked_run(command, timeout, capture_stdout=False) for _ in range(runs)]
    peaks = [r.peak_rss_anon for r in timed if r.peak_rss_anon is not None]
    return Measurement(tuple(r.seconds for r in timed), max(peaks, default=None), warmup, note)


def measure_together(commands: Sequence[Command], runs: int, timeout: float
                     ) -> list[Measurement | NotAvailable]:
    """Commands compared by their ratio, measured side by side: a checked warm-up run of each,
    then ``runs`` rounds that run each once in turn, so a load that comes and goes on a shared
    machine falls on all of them alike. A command that fails is NotAvailable; the others go on.
    Dirty pages are written out before every run (untimed): a copy without fsync leaves its
    output for the kernel to write while the next command runs."""
    outcomes: list[list[RunResult] | NotAvailable] = []
    warmups: list[RunResult | None] = []
    notes = []
    for command in commands:
        try:
            warmup = _checked_run(_settled(command), timeout,
                                  capture_stdout=command.check is not None)
            notes.append(command.check(warmup) if command.check else "")
            warmups.append(warmup)
            outcomes.append([])
        except NotAvailable as exc:
            notes.append("")
            warmups.append(None)
            outcomes.append(exc)
    for _ in range(runs):
        for index, command in enumerate(commands):
            timed = outcomes[index]
            if isinstance(timed, NotAvailable):
                continue
            try:
                timed.append(_checked_run(_settled(command), timeout, capture_stdout=False))
            except NotAvailable as exc:
                outcomes[index] = exc
    results: list[Measurement | NotAvailable] = []
    for timed, warmup, note in zip(outcomes, warmups, notes, strict=True):
        if isinstance(timed, NotAvailable) or warmup is None:
            results.append(timed if isinstance(timed, NotAvailable) else NotAvailable("failed"))
            continue
        peaks = [r.peak_rss_anon for r in timed if r.peak_rss_anon is not None]
        results.append(Measurement(tuple(r.seconds for r in timed), max(peaks, default=None),
                                   warmup, note))
    return results


def _settled(command: Command) -> Command:
    def before() -> None:
        if command.before:
            command.before()
        os.sync()

    return Command(command.argv, command.ok_codes, command.check, before, command.sample_memory)


def _checked_run(command: Command, timeout: float, capture_stdout: bool) -> RunResult:
    result = run_once(command, timeout, capture_stdout)
    if result.returncode not in command.ok_codes:
        raise NotAvailable(f"exit {result.returncode}: {last_line(result.stderr)}")
    return result


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:160] if lines else "(no message)"


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """A blocking wait, so the time is exact (``Popen.wait(timeout)`` polls in steps of up to
    50 ms); a timer thread ends the process group if it runs past ``timeout``."""
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, expire)
    timer.start()
    try:
        returncode = proc.wait()
    except BaseException:  # Ctrl-C: do not leave the child running
        _kill_group(proc)
        raise
    finally:
        timer.cancel()
    if timed_out.is_set():
        raise NotAvailable(f"timed out after {timeout:g} s")
    return returncode


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """End the process group this script started (its leader is our child, by its pid)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@contextlib.contextmanager
def _stdout_sink(capture: bool):  # -> Iterator[IO[bytes] | int]
    if not capture:
        yield subprocess.DEVNULL
        return
    with tempfile.TemporaryFile() as sink:
        yield sink


def _read(sink: IO[bytes] | int) -> str:
    if isinstance(sink, int):
        return ""
    sink.seek(0)
    return sink.read().decode("utf-8", "replace")
