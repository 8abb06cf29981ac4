"""What a checkpoint's name says against what it holds, for inspect's summary: the same facts as
lint's CKPT001 (a ``*.pth`` name) and CKPT007 (an extension that names another format), in a
sentence each."""

from __future__ import annotations

from ckpt_tool.containers.detect import Kind
from ckpt_tool.lint.names import checkpoint_suffix, expected_kinds, is_pth
from ckpt_tool.lint.read_back import read_back_by
from ckpt_tool.model.checkpoint import Checkpoint, Format
from ckpt_tool.model.record import Record

_KINDS = {Format.TORCH_ZIP: Kind.ZIP, Format.TORCHSCRIPT: Kind.ZIP, Format.TORCH_EXPORT: Kind.ZIP,
          Format.TORCH_PACKAGE: Kind.ZIP, Format.TORCH_LEGACY: Kind.LEGACY,
          Format.SAFETENSORS: Kind.SAFETENSORS}


class NameWarning(Record):
    __slots__ = ("code", "message")
    code: str
    """The lint rule that reports the same thing."""
    message: str

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message


def name_warnings(path: str, checkpoint: Checkpoint) -> list[NameWarning]:
    warnings = []
    kind = _KINDS.get(checkpoint.format)
    if is_pth(path) and kind is not None:
        reader = read_back_by(path)
        caveat = (f" ({reader.producer} reads it back by this name: renaming breaks it)"
                  if reader else ": rename it to .pt (ckpt lint --fix)")
        warnings.append(NameWarning(
            "CKPT001", "named *.pth: Python's site module reads *.pth files in site-packages at "
            f"start-up as path configuration{caveat}"))
    expected, suffix = expected_kinds(path), checkpoint_suffix(path)
    if kind is not None and expected is not None and kind not in expected:
        warnings.append(NameWarning(
            "CKPT007", f"a {checkpoint.format.value} file named {suffix}: its name promises "
            "another format"))
    return warnings
