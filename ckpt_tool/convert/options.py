"""What a conversion is asked to do, and what it did: plain records the CLI builds and renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ckpt_tool.limits import DEFAULT_LIMITS, Limits


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


@dataclass(frozen=True)
class ConvertOptions:
    target: Target = Target.SAFETENSORS
    key: str | None = None
    all_tensors: bool = False
    include_optimizer: bool = False
    strip_prefixes: tuple[str, ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    """(REGEX, REPLACEMENT) pairs applied in order with ``re.sub``."""
    copy_shared: bool = False
    skip_unsupported: bool = False
    cast: CastTo | None = None
    shard_size: int | None = None
    verify: bool = True
    force: bool = False
    move: bool = False
    rewrite: bool = False
    limits: Limits = DEFAULT_LIMITS


@dataclass(frozen=True)
class ConvertResult:
    source: str
    outputs: tuple[str, ...] = ()
    action: Action | None = None
    tensors: int = 0
    bytes_written: int = 0
    root: str | None = None
    """Where the weights came from: ``state_dict``, ``the whole file``..."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
