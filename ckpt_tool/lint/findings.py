"""What ``ckpt lint`` reports: the rules (code, slug, severity, summary) and the findings.

Codes are stable: a rule is never renumbered, and a retired code is never reused. Each rule has a
section in the README (what it finds, why it matters, an example, what to do instead).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from ckpt_tool.model.record import Record


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Rule(Record):
    __slots__ = ("code", "slug", "severity", "default", "summary", "remedy")
    code: str
    slug: str
    severity: Severity
    default: bool
    """Checked unless the configuration says otherwise."""
    summary: str
    """One line: what the rule finds."""
    remedy: str
    """One line: what to do instead."""

    def __init__(self, code: str, slug: str, severity: Severity, default: bool, summary: str,
                 remedy: str) -> None:
        self.code = code
        self.slug = slug
        self.severity = severity
        self.default = default
        self.summary = summary
        self.remedy = remedy


_RULES = (
    Rule("CKPT001", "pth-extension", Severity.WARNING, True,
         "A checkpoint named *.pth, the extension of Python's site-packages path-configuration "
         "files.",
         "Rename it to *.pt (`ckpt lint --fix`) or rewrite it with `ckpt convert --to pt`."),
    Rule("CKPT002", "code-execution", Severity.ERROR, True,
         "A pickle in the file names a global that runs code or touches the system, or one from "
         "torch, numpy or the standard library that ckpt has not reviewed.",
         "Do not load the file; if its source is trusted, rewrite it with `ckpt convert`."),
    Rule("CKPT003", "custom-class", Severity.WARNING, True,
         "The pickle names classes outside torch, numpy and the standard library.",
         "Save `model.state_dict()` instead of the model object."),
    Rule("CKPT004", "weights-only-refused", Severity.WARNING, True,
         "torch.load(weights_only=True), the default since torch 2.6, would refuse the file.",
         "Allow-list the globals ckpt reviewed (the message lists them) with "
         "torch.serialization.add_safe_globals, or convert the file."),
    Rule("CKPT005", "legacy-format", Severity.WARNING, True,
         "A pre-1.6 torch stream (or pre-0.4 tar) that torch.load(mmap=True) cannot map.",
         "Rewrite it in the zip format with `ckpt convert SRC --to pt --rewrite -o NEW.pt`."),
    Rule("CKPT006", "unreadable", Severity.ERROR, True,
         "The file is corrupt, truncated, ambiguous, or not a checkpoint although named as one.",
         "Fetch or write the file again; an ambiguous archive must be rewritten."),
    Rule("CKPT007", "extension-mismatch", Severity.WARNING, True,
         "The file's content and its extension disagree.",
         "Rename the file to match what it holds."),
    Rule("CKPT008", "device-tensors", Severity.INFO, False,
         "Tensors were saved on cuda, mps or xla; a CPU-only machine needs map_location.",
         "Move tensors to the CPU before saving, or load with map_location=\"cpu\"."),
)
RULES: dict[str, Rule] = {rule.code: rule for rule in _RULES}
BY_SLUG: dict[str, Rule] = {rule.slug: rule for rule in _RULES}


class Finding(Record):
    __slots__ = ("path", "code", "rule", "severity", "message", "member", "offset", "concise",
                 "globals", "allow_list", "read_back_by")
    path: str
    code: str
    rule: str
    """The rule's slug."""
    severity: Severity
    message: str
    member: str | None
    """Archive member or pickle the finding is about (``archive/data.pkl``, ``object pickle``)."""
    offset: int | None
    """Byte offset inside ``member`` (inside the file when ``member`` is None)."""
    concise: str
    """The message in a few words, for the default output (``--output-format full`` prints
    ``message``)."""
    globals: tuple[str, ...]
    """The globals the finding is about (CKPT002, CKPT003, CKPT004)."""
    allow_list: tuple[str, ...]
    """CKPT004: the globals ckpt reviewed, which ``add_safe_globals`` may take if the file is
    trusted."""
    read_back_by: str | None
    """CKPT001: the producer that reads the file back by this name (``--fix`` leaves it)."""

    def __init__(self, path: str, code: str, rule: str, severity: Severity, message: str,
                 member: str | None = None, offset: int | None = None, concise: str = "",
                 globals: tuple[str, ...] = (), allow_list: tuple[str, ...] = (),
                 read_back_by: str | None = None) -> None:
        self.path = path
        self.code = code
        self.rule = rule
        self.severity = severity
        self.message = message
        self.member = member
        self.offset = offset
        self.concise = concise
        self.globals = globals
        self.allow_list = allow_list
        self.read_back_by = read_back_by

    def __str__(self) -> str:
        return f"{self.path}: {self.code} {self.rule} {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "code": self.code, "rule": self.rule,
                "severity": self.severity.value, "message": self.message,
                "concise": self.concise, "member": self.member, "offset": self.offset,
                "globals": list(self.globals), "allow_list": list(self.allow_list),
                "read_back_by": self.read_back_by}

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> Finding:
        """The finding ``to_dict`` wrote (a result that came back from a worker or a JSON
        line)."""
        return cls(entry["path"], entry["code"], entry["rule"], Severity(entry["severity"]),
                   entry["message"], entry.get("member"), entry.get("offset"),
                   entry.get("concise", ""), tuple(entry.get("globals", ())),
                   tuple(entry.get("allow_list", ())), entry.get("read_back_by"))


_CONCISE_WIDTH = 160


def make_finding(
    code: str, path: str, message: str, member: str | None = None, offset: int | None = None,
    severity: Severity | None = None, concise: str | None = None,
    globals: tuple[str, ...] = (), allow_list: tuple[str, ...] = (),
    read_back_by: str | None = None,
) -> Finding:
    """A finding of rule ``code``; ``severity`` overrides the rule's default for this one;
    ``concise`` defaults to the message's first sentence."""
    rule = RULES[code]
    return Finding(path, code, rule.slug, severity or rule.severity, message, member, offset,
                   clip(concise if concise is not None else first_sentence(message)),
                   tuple(globals), tuple(allow_list), read_back_by)


def first_sentence(message: str) -> str:
    end = message.find(". ")
    return message if end < 0 else message[: end + 1]


def clip(text: str, width: int = _CONCISE_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
