"""What every command shares about output: colour, consoles sized for a terminal or a pipe,
progress bars and one-line summaries on stderr, and a quiet end when the reader of stdout leaves.

Colour follows the usual conventions, in this order: ``NO_COLOR`` (any value) turns it off,
``FORCE_COLOR`` (any value) turns it on, ``TERM=dumb`` turns it off; otherwise only a terminal
gets colour, and never under pre-commit or CI. Progress bars need a person at a terminal too.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

from ckpt_tool.render.names import middle_ellipsis
from ckpt_tool.render.safe import printable

PIPE_WIDTH = 4000
"""Width a view is laid out at when stdout is not a terminal: wide enough that no name wraps;
trailing spaces are then stripped, so nothing is padded to that width."""


class PipeClosed(Exception):
    """The reader of stdout went away (``ckpt inspect DIR | head``)."""


def automated() -> bool:
    """Run by pre-commit or a CI service rather than typed by a person."""
    return bool(os.environ.get("PRE_COMMIT") or os.environ.get("CI"))


def colour(stream: TextIO | None = None) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    stream = stream or sys.stdout
    return _isatty(stream) and not automated()


def interactive(stream: TextIO | None = None) -> bool:
    """A person is watching ``stream`` (stderr by default): progress bars are welcome."""
    return _isatty(stream or sys.stderr) and not automated() and os.environ.get("TERM") != "dumb"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _console(stream: TextIO, tty: bool) -> Any:  # -> rich.console.Console
    from rich.console import Console

    coloured = colour(stream)
    return Console(file=stream, highlight=False, soft_wrap=False,
                   width=None if tty else PIPE_WIDTH,
                   force_terminal=True if coloured else None, no_color=not coloured,
                   color_system="auto" if coloured else None)


def stdout_width() -> int | None:
    """The terminal's width, or None when stdout is a pipe or a file (no width to fit)."""
    if not _isatty(sys.stdout):
        return None
    return _console(sys.stdout, True).width


def emit(renderable: Any) -> None:
    """Print a Rich renderable on stdout: fitted to a terminal; on a pipe, laid out without
    wrapping and without trailing padding."""
    tty = _isatty(sys.stdout)
    console = _console(sys.stdout, tty)
    with pipe_guard():
        if tty:
            console.print(renderable)
            return
        with console.capture() as captured:
            console.print(renderable)
        sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def write(text: str) -> None:
    """Plain text on stdout (already escaped by the caller)."""
    with pipe_guard():
        sys.stdout.write(text)
        sys.stdout.flush()


@contextlib.contextmanager
def pipe_guard() -> Iterator[None]:
    """Turn a write to a closed pipe into ``PipeClosed`` (exit 141, nothing on stderr)."""
    try:
        yield
    except BrokenPipeError:
        _silence_stdout()
        raise PipeClosed from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit does not fail a second time."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def error_line(path: str, message: str) -> None:
    """One line on stderr naming the file and the problem (both escaped)."""
    print(f"ckpt: {printable(path)}: {printable(message)}", file=sys.stderr)


def summary_line(command: str, text: str) -> None:
    print(f"ckpt {command}: {text}", file=sys.stderr, flush=True)


class Timer:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def __str__(self) -> str:
        elapsed = time.monotonic() - self.start
        return f"{elapsed:.2f} s" if elapsed < 10 else f"{elapsed:.0f} s"


class Bar:
    """A progress bar on stderr (bytes, speed, time left, and the current file, ``3 of 10`` when
    counted); it does nothing unless a person watches (``interactive()``)."""

    def __init__(self, what: str, total: int = 0, enabled: bool = True,
                 count: int | None = None) -> None:
        self.what, self.total, self.count = what, total, count
        self.done = 0
        self.enabled = enabled and interactive()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Bar:
        if not self.enabled:
            return self
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = [TextColumn("{task.description}"), BarColumn(bar_width=24), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn(),
                   TextColumn("{task.fields[item]}")]
        self._progress = Progress(*columns, console=_console(sys.stderr, True), transient=True)
        self._progress.__enter__()
        self._task = self._progress.add_task(self.what, total=self.total or None, item="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def file(self, path: str, index: int | None = None, detail: str | None = None) -> None:
        """Name the file being worked on (``3 of 10 model.pt`` when a count was given), and
        ``detail`` within it (the tensor being written)."""
        if self._progress is None:
            return
        counted = f"{index} of {self.count} " if self.count and index else ""
        name = middle_ellipsis(printable(os.path.basename(path) or path), 30) if path else ""
        within = f" {middle_ellipsis(printable(detail), 30)}" if detail else ""
        self._progress.update(self._task, item=f"{counted}{name}{within}")

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        if self._progress is not None:
            self._progress.advance(self._task, nbytes)

    def update(self, done: int, total: int, path: str | None = None) -> None:
        self.done, self.total = done, total
        if self._progress is None:
            return
        self._progress.update(self._task, completed=done, total=total or None)
        if path is not None:
            self.file(path)
