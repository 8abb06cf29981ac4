"""Bounds on what reading an untrusted file may cost; hitting one is an error, not a crash."""

from __future__ import annotations

from ckpt_tool.model.record import Record


class Limits(Record):
    __slots__ = ("max_pickle_bytes", "max_memo_index", "max_opcodes", "max_depth", "max_members",
                 "max_header_bytes", "max_tensors", "max_objects")
    max_pickle_bytes: int
    """Largest pickle (data.pkl or legacy object stream) read into memory; in lint, all the
    pickles of one file together. A 1,000,000-tensor state_dict's data.pkl is about 120 MB."""
    max_memo_index: int
    """Largest memo slot a PUT may name (CPython allocates the memo up to it)."""
    max_opcodes: int
    """Pickle opcodes walked, which bounds the objects one pickle can build (so the memory and
    time of reading it: about 1 GB at most). A torch.save state_dict takes 30 per tensor."""
    max_depth: int
    """Nesting depth of MARKs in the pickle and of containers in the object tree."""
    max_members: int
    """Zip archive members."""
    max_header_bytes: int
    """safetensors JSON header size."""
    max_tensors: int
    """Tensors in one checkpoint."""
    max_objects: int
    """Values visited when walking the object tree into named leaves."""

    def __init__(self, max_pickle_bytes: int = 256 << 20, max_memo_index: int = 10_000_000,
                 max_opcodes: int = 10_000_000, max_depth: int = 1_000,
                 max_members: int = 1_000_000, max_header_bytes: int = 100 << 20,
                 max_tensors: int = 10_000_000, max_objects: int = 1_000_000) -> None:
        self.max_pickle_bytes = max_pickle_bytes
        self.max_memo_index = max_memo_index
        self.max_opcodes = max_opcodes
        self.max_depth = max_depth
        self.max_members = max_members
        self.max_header_bytes = max_header_bytes
        self.max_tensors = max_tensors
        self.max_objects = max_objects
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"limit {name} must be a positive integer, got {value!r}")

    @classmethod
    def names(cls) -> list[str]:
        return list(cls.__slots__)


DEFAULT_LIMITS = Limits()
