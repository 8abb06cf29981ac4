"""The ``ckpt`` command. Only this package parses arguments, prints and picks exit codes."""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
from typing import Any, NoReturn

from ckpt_tool import exitcodes

__all__ = ["app", "main"]

COMPLETE_VAR = "_CKPT_COMPLETE"

# Each command's module registers it on the app when imported. A run imports only the command
# it was asked for: the others' imports are most of a start-up's cost (a pre-commit hook pays
# start-up once per batch of files).
COMMANDS = {"inspect": "inspect_cmd", "lint": "lint_cmd", "convert": "convert_cmd",
            "diff": "diff_cmd", "rule": "rule_cmd", "completion": "completion_cmd"}


def main() -> NoReturn:
    """The console script: ``run``, then exit without tearing the interpreter down."""
    _leave(run(sys.argv[1:]))


def run(arguments: list[str]) -> int:
    """Run ckpt with ``arguments`` in this process; return the exit status ``main`` exits with
    (a test or an embedding calls this, not ``main``, which ends the process)."""
    collecting = gc.isenabled()
    try:
        _run(arguments)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)  # sys.exit("text"): Python prints it and exits 1
        return 1
    finally:
        if collecting:  # _run turns collection off for its own tree; an embedding gets it back
            gc.enable()
    return 0


def _run(arguments: list[str]) -> None:
    if arguments == ["--version"]:  # answered without building the app
        from ckpt_tool import __version__

        print(f"ckpt {__version__}")
        return
    # A short-lived process that builds one large acyclic tree: cyclic garbage collection would
    # only rescan it, again and again (a 50,000-tensor file reads 30% faster without it).
    gc.disable()
    if os.environ.get(COMPLETE_VAR):  # the shell asks for completions (`ckpt completion`)
        from typer._completion_classes import completion_init

        completion_init()
        application = _app_with(COMMANDS)
    else:
        application = _app_with(_invoked(arguments))
    from ckpt_tool.cli.output import PipeClosed

    try:
        application(arguments, standalone_mode=True, prog_name="ckpt")
    except SystemExit as exc:
        if _interrupted(exc):
            _say_interrupted()
        raise
    except KeyboardInterrupt:
        _say_interrupted()
    except PipeClosed:
        sys.exit(exitcodes.PIPE_CLOSED)
    except Exception as exc:  # a bug in ckpt: one line, the traceback only on request
        if os.environ.get("CKPT_DEBUG"):
            raise
        print(f"ckpt: internal error: {type(exc).__name__}: {exc} (set CKPT_DEBUG=1 for the "
              "traceback)", file=sys.stderr)
        sys.exit(exitcodes.ERROR)


def _leave(status: int) -> NoReturn:
    """``sys.exit(status)`` without the interpreter's teardown: freeing a model of 200,000
    tensors object by object, and a last full garbage collection, took longer than a small
    file's whole run. Everything ckpt writes is flushed or closed by then (a convert has synced
    and linked its output, its threads are joined). A run that started worker processes or
    threads (``--jobs``) exits the usual way, so that no worker outlives it."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # the reader left (ckpt inspect | head), or closed
        status = status or exitcodes.PIPE_CLOSED
    with contextlib.suppress(BrokenPipeError, ValueError):
        sys.stderr.flush()
    if "concurrent.futures" in sys.modules or "multiprocessing" in sys.modules:
        sys.exit(status)  # a --jobs run: the pools' exit handlers reap their workers
    os._exit(status)


def _invoked(arguments: list[str]) -> list[str]:
    """The command a run names (its first argument, root options come only before it); every
    command when it names none or one that does not exist, for the help and the error."""
    first = next((argument for argument in arguments if not argument.startswith("-")), None)
    return [first] if first in COMMANDS else list(COMMANDS)


def _app_with(commands: Any) -> Any:
    for command in commands:
        importlib.import_module(f"ckpt_tool.cli.{COMMANDS[command]}")
    from ckpt_tool.cli.application import app

    return app


def __getattr__(name: str) -> Any:
    """``from ckpt_tool.cli import app``: the app with every command (tests, embedding)."""
    if name == "app":
        return _app_with(COMMANDS)
    raise AttributeError(name)


def _interrupted(exc: BaseException) -> bool:
    """Typer turns Ctrl-C into a silent exit 130: find the KeyboardInterrupt behind it."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _say_interrupted() -> None:
    print("ckpt: interrupted", file=sys.stderr)
    sys.exit(exitcodes.INTERRUPTED)
