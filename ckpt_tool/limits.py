"""Bounds on what reading an untrusted file may cost; hitting one is an error, not a crash."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Limits:
    max_pickle_bytes: int = 256 << 20
    """Largest pickle (data.pkl or legacy object stream) read into memory; in lint, all the
    pickles of one file together. A 1,000,000-tensor state_dict's data.pkl is about 120 MB."""
    max_memo_index: int = 10_000_000
    """Largest memo slot a PUT may name (CPython allocates the memo up to it)."""
    max_opcodes: int = 10_000_000
    """Pickle opcodes walked, which bounds the objects one pickle can build (so the memory and
    time of reading it: about 1 GB at most). A torch.save state_dict takes 30 per tensor."""
    max_depth: int = 1_000
    """Nesting depth of MARKs in the pickle and of containers in the object tree."""
    max_members: int = 1_000_000
    """Zip archive members."""
    max_header_bytes: int = 100 << 20
    """safetensors JSON header size."""
    max_tensors: int = 10_000_000
    """Tensors in one checkpoint."""
    max_objects: int = 1_000_000
    """Values visited when walking the object tree into named leaves."""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"limit {field.name} must be a positive integer, got {value!r}")

    @classmethod
    def names(cls) -> list[str]:
        return [field.name for field in fields(cls)]


DEFAULT_LIMITS = Limits()
