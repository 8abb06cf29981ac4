"""A base for the small records of a conversion: ``__slots__`` classes compared and shown by
their fields. ``dataclasses`` costs about 0.6 ms a class at start-up (it writes and compiles
each method), paid by every ``ckpt convert`` for a dozen classes."""

from __future__ import annotations

from typing import Any


class Record:
    __slots__ = ()

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({shown})"
