"""The base of ckpt's value records: plain ``__slots__`` classes.

Not ``dataclasses``: importing it costs a start-up several milliseconds, and each decorated
class about half a millisecond more (it generates and compiles its methods), which every
``ckpt`` run paid for some forty records before doing any work. A record lists its fields in
``__slots__`` and writes its ``__init__``; this base gives it what the dataclasses gave: equality
and hashing by value (same class, same fields), a readable ``repr``, ``replace`` and
``as_dict``. A mutable record sets ``__hash__ = None``, as ``@dataclass`` did.
"""

from __future__ import annotations

from typing import Any, TypeVar

R = TypeVar("R", bound="Record")


class Record:
    __slots__ = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self.__slots__])

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__qualname__}({fields})"

    def replace(self: R, **changes: Any) -> R:
        """A copy with ``changes`` (``dataclasses.replace``)."""
        return type(self)(**{**self.as_dict(), **changes})

    def as_dict(self) -> dict[str, Any]:
        """The fields by name (shallow: nested records stay records)."""
        return {name: getattr(self, name) for name in self.__slots__}
