"""Names in narrow terminals: kept on one line, shortened in the middle (``model.…
.layers.0.….weight``) when the table would not fit, never wrapped mid-word. On a pipe (no width)
names are shown whole. Every name is escaped (``render.safe``)."""

from __future__ import annotations

from ckpt_tool.render.safe import printable

MIN_NAME_WIDTH = 24
ELLIPSIS = "…"


def middle_ellipsis(text: str, width: int) -> str:
    """``text`` shortened to ``width`` characters by an ellipsis in the middle, so that both the
    start and the distinctive end of a long name stay visible."""
    if width <= 0 or len(text) <= width:
        return text
    if width < 5:
        return text[:width]
    head = (width - 1) // 3
    tail = width - 1 - head
    return f"{text[:head]}{ELLIPSIS}{text[-tail:]}"


def shorten(name: str, width: int) -> str:
    """``name`` in at most ``width`` characters. A dotted name or a path loses whole parts from
    its middle first, keeping its first and last parts, its numbers (``layers.0``, ``{0..31}``)
    and the part that names each number's list, so rows stay told apart; then characters."""
    if len(name) <= width:
        return name
    separator = "/" if "/" in name else "."
    parts = name.split(separator)
    if len(parts) > 2:
        keep = [True] * len(parts)
        for index in range(1, len(parts) - 1):
            if _kept(parts, index, separator):
                continue
            keep[index] = False
            shortened = _join(parts, keep, separator)
            if len(shortened) <= width:
                return shortened
        name = _join(parts, keep, separator)
    return middle_ellipsis(name, width)


def compact(name: str) -> str:
    """``name`` with every part ``shorten`` may leave out left out: the shortest form that still
    tells rows apart."""
    separator = "/" if "/" in name else "."
    parts = name.split(separator)
    if len(parts) <= 2:
        return name
    keep = [index in (0, len(parts) - 1) or _kept(parts, index, separator)
            for index in range(len(parts))]
    return _join(parts, keep, separator)


def _kept(parts: list[str], index: int, separator: str) -> bool:
    if separator != ".":
        return index == len(parts) - 2  # a path keeps the folder holding the file
    return _numbered(parts[index]) or _numbered(parts[index + 1])


def _numbered(part: str) -> bool:
    return part.isdigit() or (part.startswith("{") and part.endswith("}"))


def _join(parts: list[str], keep: list[bool], separator: str) -> str:
    shown: list[str] = []
    for part, kept in zip(parts, keep, strict=True):
        if kept:
            shown.append(part)
        elif not shown or shown[-1] != ELLIPSIS:
            shown.append(ELLIPSIS)
    return separator.join(shown)


def fit_names(names: list[str], width: int | None, reserved: int) -> list[str]:
    """Escaped names, shortened to fit ``width`` columns less ``reserved`` for the other
    columns (but never below ``MIN_NAME_WIDTH``)."""
    shown = [printable(name) for name in names]
    if width is None:
        return shown
    room = max(MIN_NAME_WIDTH, width - reserved)
    return [shorten(name, room) for name in shown]
