"""The ``ckpt`` command. Only this package parses arguments, prints and picks exit codes."""

from __future__ import annotations

import gc
import os
import sys

from ckpt_tool import exitcodes
from ckpt_tool.cli import convert_cmd, diff_cmd, inspect_cmd, lint_cmd  # noqa: F401 (registers)
from ckpt_tool.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    # A short-lived process that builds one large acyclic tree: cyclic garbage collection would
    # only rescan it, again and again (a 50,000-tensor file reads 30% faster without it).
    gc.disable()
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        print("ckpt: interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # a bug in ckpt: one line, the traceback only on request
        if os.environ.get("CKPT_DEBUG"):
            raise
        print(f"ckpt: internal error: {type(exc).__name__}: {exc} (set CKPT_DEBUG=1 for the "
              "traceback)", file=sys.stderr)
        sys.exit(exitcodes.ERROR)
