"""``lint_file``: gather a file's facts once, run the enabled rules on them."""

from __future__ import annotations

from collections.abc import Callable

from ckpt_tool.containers.remote import NO_OPTIONS, RemoteOptions
from ckpt_tool.limits import DEFAULT_LIMITS, Limits
from ckpt_tool.lint import rules_file, rules_pickle
from ckpt_tool.lint.config import DEFAULT_CONFIG, LintConfig
from ckpt_tool.lint.facts import FileFacts, gather_facts
from ckpt_tool.lint.findings import RULES, Finding
from ckpt_tool.lint.policy import AllowedGlobals
from ckpt_tool.model.record import Record

Check = Callable[[FileFacts, AllowedGlobals], list[Finding]]

CHECKS: dict[str, Check] = {
    "CKPT001": rules_file.check_pth_extension,
    "CKPT002": rules_pickle.check_code_execution,
    "CKPT003": rules_pickle.check_custom_class,
    "CKPT004": rules_pickle.check_weights_only,
    "CKPT005": rules_file.check_legacy_format,
    "CKPT006": rules_file.check_unreadable,
    "CKPT007": rules_file.check_extension,
    "CKPT008": rules_file.check_device_tensors,
}
assert CHECKS.keys() == RULES.keys()


class FileLint(Record):
    """One file's findings, and what reading it cost."""

    __slots__ = ("path", "findings", "size", "bytes_read", "requests")
    path: str
    findings: list[Finding]
    size: int | None
    bytes_read: int
    requests: int

    def __init__(self, path: str, findings: list[Finding] | None = None, size: int | None = None,
                 bytes_read: int = 0, requests: int = 0) -> None:
        self.path = path
        self.findings = [] if findings is None else findings
        self.size = size
        self.bytes_read = bytes_read
        self.requests = requests

    def read_json(self) -> dict[str, object]:
        return {"path": self.path, "size": self.size, "bytes_read": self.bytes_read,
                "requests": self.requests}


def check_file(path: str, config: LintConfig = DEFAULT_CONFIG, limits: Limits = DEFAULT_LIMITS,
               remote: RemoteOptions = NO_OPTIONS) -> FileLint:
    """The findings of the rules ``config`` enables for ``path``, in code order.

    Never raises on bad input: a file that cannot be opened or read is a CKPT006 finding. Reads
    the zip directory and the pickles, never tensor bytes (except CKPT001's scan of a ``*.pth``
    file for ``import`` lines), and never imports torch.
    """
    codes = config.codes_for(path)
    if not codes:
        return FileLint(path)
    facts = gather_facts(path, limits, remote)
    findings: list[Finding] = []
    for code in sorted(codes):
        findings += CHECKS[code](facts, config.allowed_globals)
    size = facts.size if facts.kind is not None or facts.size else None
    return FileLint(path, findings, size, facts.bytes_read, facts.requests)


def lint_file(
    path: str, config: LintConfig = DEFAULT_CONFIG, limits: Limits = DEFAULT_LIMITS
) -> list[Finding]:
    """``check_file``'s findings."""
    return check_file(path, config, limits).findings
