"""What a conversion is asked to do, and what it did: plain records the CLI builds and renders."""

from __future__ import annotations

from enum import Enum

from ckpt_tool.limits import DEFAULT_LIMITS, Limits
from ckpt_tool.model.record import Record


class Target(str, Enum):
    """``--to``: the output format, named by the extension it gets."""

    SAFETENSORS = "safetensors"
    PT = "pt"
    PTH_TAR = "pth.tar"
    PWF = "pwf"
    BIN = "bin"
    CKPT = "ckpt"

    @property
    def extension(self) -> str:
        return "." + self.value

    @property
    def is_torch(self) -> bool:
        return self is not Target.SAFETENSORS


class CastTo(str, Enum):
    """``--dtype``: the floating dtype float16/bfloat16/float32/float64 tensors are cast to."""

    BF16 = "bf16"
    FP16 = "fp16"
    FP32 = "fp32"

    @property
    def dtype_name(self) -> str:
        return {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[self.value]


class Action(str, Enum):
    """What was done to one source."""

    SAFETENSORS = "safetensors"
    COPY = "copy"
    MOVE = "move"
    REWRITE = "rewrite"
    TORCH_SAVE = "torch-save"


class ConvertOptions(Record):
    """``renames``: (REGEX, REPLACEMENT) pairs applied in order with ``re.sub``."""

    __slots__ = (
        "all_tensors",
        "cast",
        "copy_shared",
        "force",
        "include_optimizer",
        "key",
        "limits",
        "move",
        "renames",
        "rewrite",
        "shard_size",
        "skip_unsupported",
        "strip_prefixes",
        "target",
        "verify",
    )

    def __init__(self, target: Target = Target.SAFETENSORS, key: str | None = None,
                 all_tensors: bool = False, include_optimizer: bool = False,
                 strip_prefixes: tuple[str, ...] = (), renames: tuple[tuple[str, str], ...] = (),
                 copy_shared: bool = False, skip_unsupported: bool = False,
                 cast: CastTo | None = None, shard_size: int | None = None, verify: bool = True,
                 force: bool = False, move: bool = False, rewrite: bool = False,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.target, self.key, self.all_tensors = target, key, all_tensors
        self.include_optimizer, self.strip_prefixes, self.renames = (
            include_optimizer, strip_prefixes, renames)
        self.copy_shared, self.skip_unsupported, self.cast = copy_shared, skip_unsupported, cast
        self.shard_size, self.verify, self.force = shard_size, verify, force
        self.move, self.rewrite, self.limits = move, rewrite, limits


class ConvertResult(Record):
    """``root``: where the weights came from: ``state_dict``, ``the whole file``..."""

    __slots__ = (
        "action",
        "bytes_written",
        "error",
        "notes",
        "outputs",
        "root",
        "source",
        "tensors",
    )

    def __init__(self, source: str, outputs: tuple[str, ...] = (), action: Action | None = None,
                 tensors: int = 0, bytes_written: int = 0, root: str | None = None,
                 notes: tuple[str, ...] = (), error: str | None = None) -> None:
        self.source, self.outputs, self.action, self.tensors = source, outputs, action, tensors
        self.bytes_written, self.root, self.notes, self.error = bytes_written, root, notes, error

    @property
    def ok(self) -> bool:
        return self.error is None
