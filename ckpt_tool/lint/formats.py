"""Render findings: concise or full text lines, JSON, GitHub workflow annotations, SARIF 2.1.0.

Every renderer returns a string (the CLI prints it); none needs torch or Rich.
"""

from __future__ import annotations

import os
from enum import Enum
from typing import Any

from ckpt_tool import __version__
from ckpt_tool.lint.findings import RULES, Finding, Severity
from ckpt_tool.render.safe import printable

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


class OutputFormat(str, Enum):
    CONCISE = "concise"
    FULL = "full"
    JSON = "json"
    JSONL = "jsonl"
    GITHUB = "github"
    SARIF = "sarif"

    @property
    def is_text(self) -> bool:
        return self in (OutputFormat.CONCISE, OutputFormat.FULL)


_COLOURS = {Severity.ERROR: "\x1b[1;31m", Severity.WARNING: "\x1b[1;33m",
            Severity.INFO: "\x1b[1;36m"}
_BOLD, _RESET = "\x1b[1m", "\x1b[0m"


def render(findings: list[Finding], output_format: OutputFormat, colour: bool = False,
           document: dict[str, Any] | None = None) -> str:
    """The report in ``output_format``; JSON renders ``document`` (``lint.report``)."""
    if output_format.is_text:
        return render_text(findings, colour, full=output_format is OutputFormat.FULL)
    if output_format is OutputFormat.JSON:
        assert document is not None
        return render_json(document)
    if output_format is OutputFormat.GITHUB:
        return render_github(findings)
    return render_sarif(findings)


def render_text(findings: list[Finding], colour: bool = False, full: bool = False) -> str:
    """``path: CODE slug message``, one line each, the concise message unless ``full``; control
    characters escaped (a name in a hostile file can hold a newline or a terminal escape); the
    code coloured if asked."""
    lines = []
    for finding in findings:
        text = finding.message if full or not finding.concise else finding.concise
        path, message = printable(finding.path), printable(text)
        if colour:
            code = f"{_COLOURS[finding.severity]}{finding.code}{_RESET}"
            lines.append(f"{_BOLD}{path}{_RESET}: {code} {finding.rule} {message}")
        else:
            lines.append(f"{path}: {finding.code} {finding.rule} {message}")
    return "".join(line + "\n" for line in lines)


def render_json(document: dict[str, Any]) -> str:
    import json

    return json.dumps(document, indent=2) + "\n"


_GITHUB_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(findings: list[Finding]) -> str:
    """Workflow commands: ``::error file=PATH,title=CODE slug::message``."""
    lines = []
    for finding in findings:
        properties = (f"file={_escape_property(finding.path)},"
                      f"title={_escape_property(f'{finding.code} {finding.rule}')}")
        message = _escape_data(finding.message)
        lines.append(f"::{_GITHUB_LEVELS[finding.severity]} {properties}::{message}")
    return "".join(line + "\n" for line in lines)


_SARIF_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_SECURITY_SEVERITY = {"CKPT002": "9.3", "CKPT003": "6.5", "CKPT001": "5.0", "CKPT007": "5.0"}


def _sarif_rule(code: str) -> dict[str, Any]:
    rule = RULES[code]
    descriptor: dict[str, Any] = {
        "id": rule.code,
        "name": rule.slug,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": f"{rule.summary} {rule.remedy}"},
        # No helpUri: the project has no public address yet; the rule's README section is
        # named after its code and slug.
        "help": {"text": f"{rule.remedy} (README: {rule.code} {rule.slug})"},
        "defaultConfiguration": {"level": _SARIF_LEVELS[rule.severity],
                                 "enabled": rule.default},
        "properties": {"tags": ["security", "pytorch", "checkpoint"], "precision": "high"},
    }
    if code in _SECURITY_SEVERITY:
        descriptor["properties"]["security-severity"] = _SECURITY_SEVERITY[code]
    return descriptor


def artifact_uri(path: str) -> str:
    """A relative, forward-slash, percent-encoded URI (what code scanning expects), or a
    ``file://`` URI for a file outside the working directory."""
    import urllib.parse

    relative = os.path.relpath(os.path.abspath(path))
    if relative.startswith(".."):
        return "file://" + urllib.parse.quote(os.path.abspath(path).replace(os.sep, "/"))
    return urllib.parse.quote(relative.replace(os.sep, "/"))


def _sarif_result(finding: Finding, index: dict[str, int]) -> dict[str, Any]:
    location: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": {"uri": artifact_uri(finding.path)},
            "region": {"startLine": 1},  # a binary file has no lines; code scanning needs one
        }
    }
    if finding.member:
        location["logicalLocations"] = [{"name": finding.member, "kind": "member"}]
    import hashlib

    key = f"{finding.code}\0{finding.path}\0{finding.member}\0{finding.message}"
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "ruleIndex": index[finding.code],
        "level": _SARIF_LEVELS[finding.severity],
        "message": {"text": finding.message},
        "locations": [location],
        # Given here so that the upload action does not try to hash "lines" of a binary file.
        "partialFingerprints": {
            "primaryLocationLineHash": hashlib.sha256(key.encode()).hexdigest()[:16] + ":1"},
    }
    if finding.offset is not None:
        result["properties"] = {"member": finding.member, "offset": finding.offset}
    return result


def render_sarif(findings: list[Finding]) -> str:
    import json

    codes = sorted(RULES)
    index = {code: position for position, code in enumerate(codes)}
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "ckpt",
                "version": __version__,
                "rules": [_sarif_rule(code) for code in codes],
            }},
            "results": [_sarif_result(finding, index) for finding in findings],
            "columnKind": "unicodeCodePoints",
        }],
    }
    return json.dumps(document, indent=2) + "\n"
