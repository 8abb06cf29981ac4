"""``ckpt lint``: rules about checkpoint files, for pre-commit hooks and CI.

Reads the zip directory and the pickles, never tensor bytes, and never imports torch. The names
below are imported on first use, so that ``import ckpt_tool.cli`` stays small.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "lint_file": "ckpt_tool.lint.engine",
    "LintConfig": "ckpt_tool.lint.config",
    "DEFAULT_CONFIG": "ckpt_tool.lint.config",
    "ConfigError": "ckpt_tool.lint.config",
    "load_config": "ckpt_tool.lint.config",
    "RULES": "ckpt_tool.lint.findings",
    "Finding": "ckpt_tool.lint.findings",
    "Rule": "ckpt_tool.lint.findings",
    "Severity": "ckpt_tool.lint.findings",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
