"""``lint_one``: one file's findings, as the document ``ckpt lint --format json`` prints."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
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
from ckpt_tool.exitcodes import FINDINGS, OK
from ckpt_tool.lint.config import LintConfig, load_config, split_commas
from ckpt_tool.lint.engine import FileLint, check_file

ConfigArg = LintConfig | bool | str | os.PathLike[str] | None


def lint_one(source: Any, *, select: str | Iterable[str] | None = None,
             ignore: str | Iterable[str] | None = None,
             allowed_globals: Iterable[str] | None = None, config: ConfigArg = None,
             limits: LimitsLike = None, storage_options: Mapping[str, Any] | None = None,
             size: int | None = None) -> dict[str, Any]:
    """Check ``source`` (a path or URL) and return the ``ckpt lint --format json`` document of
    that one file (schema 1) with ``path``, ``exit_code`` (0 nothing reported, 1 findings, 2
    bad options) and ``error``. An unreadable file is a finding (CKPT006), not an error.

    ``select``/``ignore``: rule codes, prefixes, slugs or ``ALL`` (a list, or a comma-separated
    string), as ``--select``/``--ignore``; ``allowed_globals``: extra globals to accept
    (``pkg.Class``, ``pkg.module.*``). No configuration file is read unless ``config`` asks:
    ``True`` for the nearest pyproject.toml above the working directory, a path for the nearest
    above that folder (or that pyproject.toml), or a resolved ``LintConfig``. ``limits``,
    ``storage_options``, ``size``: as for ``inspect_one``.
    """
    path = as_path(source)

    def run() -> dict[str, Any]:
        resolved = resolve_config(config, select, ignore, allowed_globals)
        return lint_result(check_file(path, resolved, as_limits(limits),
                                      as_remote(storage_options, size)))

    return guarded(run, lambda message: lint_failure(path, message))


def resolve_config(config: ConfigArg, select: str | Iterable[str] | None,
                   ignore: str | Iterable[str] | None,
                   allowed_globals: Iterable[str] | None) -> LintConfig:
    from ckpt_tool.discovery.project import Project, find_project
    from ckpt_tool.lint.policy import AllowedGlobals

    if isinstance(config, LintConfig):
        resolved = config
        if select is not None or ignore is not None:
            resolved = resolved.replace(selected=load_config(
                ".", _selectors(select), _selectors(ignore), Project()).selected)
    else:
        if config is True:
            project = find_project(os.getcwd())
        elif config in (None, False):
            project = Project(root=os.getcwd())
        else:
            start = os.fspath(config)
            project = find_project(start if os.path.isdir(start) else os.path.dirname(start)
                                   or ".")
        resolved = load_config(project.root, _selectors(select), _selectors(ignore), project)
    if allowed_globals:
        if isinstance(allowed_globals, str):
            allowed_globals = split_commas([allowed_globals])
        extra = AllowedGlobals.parse(allowed_globals)
        current = resolved.allowed_globals
        resolved = resolved.replace(allowed_globals=AllowedGlobals(
            current.names | extra.names, current.modules | extra.modules))
    return resolved


def _selectors(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    return split_commas([value] if isinstance(value, str) else list(value))


def lint_result(checked: FileLint) -> dict[str, Any]:
    from ckpt_tool.lint.paths import Selection
    from ckpt_tool.lint.report import lint_document

    document = lint_document(checked.findings, Selection(files=[checked.path]),
                             reads=[checked.read_json()])
    return with_outcome(document, checked.path, FINDINGS if checked.findings else OK)


def lint_failure(path: str, message: str) -> dict[str, Any]:
    from ckpt_tool.lint.paths import Selection
    from ckpt_tool.lint.report import lint_document

    return with_outcome(lint_document([], Selection()), path, ERROR, message)
