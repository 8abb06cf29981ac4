"""What every API function shares: options given as plain values, and results as plain data.

A result is the JSON document the command prints for a run over that one file, with three
fields first: ``path`` (the source as given), ``exit_code`` (what the command would exit with
for this file alone) and ``error`` (``None``, or ``{"message", "exit_code"}`` when the file
could not be read, checked or converted). Nothing is raised: a bug in ckpt is an ``error`` too
(``CKPT_DEBUG=1`` raises it instead, for its traceback).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ckpt_tool import exitcodes
from ckpt_tool.containers.remote import RemoteOptions
from ckpt_tool.errors import CkptError, ConfigError
from ckpt_tool.limits import DEFAULT_LIMITS, Limits

LimitsLike = Limits | Mapping[str, int] | None
T = TypeVar("T")


def as_limits(value: LimitsLike) -> Limits:
    """``Limits``, or a dict of the limits to change from their defaults."""
    if value is None:
        return DEFAULT_LIMITS
    if isinstance(value, Limits):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"limits must be a Limits or a dict, not {type(value).__name__}")
    unknown = sorted(set(value) - set(Limits.names()))
    if unknown:
        raise ConfigError(f"unknown limit(s) {', '.join(map(str, unknown))} (known: "
                          f"{', '.join(Limits.names())})")
    try:
        return DEFAULT_LIMITS.replace(**value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def as_remote(storage_options: Mapping[str, Any] | None, size: int | None) -> RemoteOptions:
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise ConfigError("storage_options must be a dict")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise ConfigError(f"size must be a byte count, not {size!r}")
    return RemoteOptions(dict(storage_options or {}), size)


def as_path(source: Any) -> str:
    if isinstance(source, str):
        return source
    try:
        return os.fspath(source)
    except TypeError:
        return str(source)


def with_outcome(document: dict[str, Any], path: str, exit_code: int,
                 error: str | None = None) -> dict[str, Any]:
    """``document`` with ``path``, ``exit_code`` and ``error`` after its schema and version."""
    head = {key: document[key] for key in ("schema", "ckpt_version")}
    rest = {key: value for key, value in document.items() if key not in head}
    outcome = None if error is None else {"message": error, "exit_code": exit_code}
    return {**head, "path": path, "exit_code": exit_code, "error": outcome, **rest}


def with_exit_code(document: dict[str, Any], exit_code: int) -> dict[str, Any]:
    """A whole run's document (the CLI's) with its ``exit_code`` after the schema and version."""
    head = {key: document[key] for key in ("schema", "ckpt_version")}
    return {**head, "exit_code": exit_code,
            **{key: value for key, value in document.items() if key not in head}}


def guarded(run: Callable[[], T], failed: Callable[[str], T]) -> T:
    """``run()``; a ``CkptError`` (bad options, a missing extra) or a bug in ckpt becomes
    ``failed(message)``."""
    try:
        return run()
    except CkptError as exc:
        return failed(str(exc))
    except Exception as exc:
        if os.environ.get("CKPT_DEBUG"):
            raise
        return failed(internal_error(exc))


def internal_error(exc: BaseException) -> str:
    return (f"internal error: {type(exc).__name__}: {exc} (set CKPT_DEBUG=1 for the "
            "traceback)")


ERROR = exitcodes.ERROR
