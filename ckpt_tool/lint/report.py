"""A lint run as plain data: the JSON document (schema 1) and the ``--statistics`` counts. No
printing: the CLI (and the Python API) turn these into output.

``reads`` (added in schema 1): one entry per checked file, ``{"path", "size", "bytes_read",
"requests"}``, what reading it cost; the summary adds their ``bytes_read`` and ``requests``."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ckpt_tool import __version__
from ckpt_tool.lint.findings import RULES, Finding
from ckpt_tool.lint.paths import Selection

SCHEMA = 1
"""Fields may be added within a schema version; none are removed or change meaning."""


def lint_document(findings: list[Finding], selection: Selection,
                  renamed: list[tuple[str, str]] = (),
                  reads: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """``{"schema", "ckpt_version", "findings", "summary", "files", "reads"}`` (documented in the
    README)."""
    return {
        "schema": SCHEMA,
        "ckpt_version": __version__,
        "findings": [finding.to_dict() for finding in findings],
        "summary": {**summary(findings, selection, len(renamed)),
                    "bytes_read": sum(read["bytes_read"] for read in reads),
                    "requests": sum(read["requests"] for read in reads)},
        "files": {
            "checked": list(selection.files),
            "skipped": [{"path": path, "reason": reason} for path, reason in selection.skipped],
            "excluded": [{"path": item.path, "reason": item.reason} for item in selection.excluded],
            "renamed": [{"from": source, "to": target} for source, target in renamed],
        },
        "reads": list(reads),
    }


def summary(findings: list[Finding], selection: Selection, fixed: int = 0) -> dict[str, Any]:
    by_code = Counter(finding.code for finding in findings)
    by_severity = Counter(finding.severity.value for finding in findings)
    return {
        "findings": len(findings),
        "by_code": dict(sorted(by_code.items())),
        "by_severity": dict(sorted(by_severity.items())),
        "files_checked": len(selection.files),
        "files_with_findings": len({finding.path for finding in findings}),
        "files_skipped": len(selection.skipped),
        "paths_excluded": len(selection.excluded),
        "fixed": fixed,
    }


def statistics(findings: list[Finding]) -> list[dict[str, Any]]:
    """Findings counted by rule, most frequent first (``--statistics``)."""
    counts = Counter(finding.code for finding in findings)
    fixable = Counter(finding.code for finding in findings
                      if finding.code == "CKPT001" and finding.read_back_by is None)
    return [{"code": code, "rule": RULES[code].slug, "count": count,
             "fixable": fixable.get(code, 0)}
            for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
