"""Names in narrow terminals: kept on one line, shortened in the middle (``model.layers.…
.mlp.up_proj.weight``) when the table would not fit, never wrapped mid-word. On a pipe (no width)
names are shown whole. Every name is escaped (``render.safe``)."""

from __future__ import annotations

from ckpt_tool.render.safe import printable

MIN_NAME_WIDTH = 24


def middle_ellipsis(text: str, width: int) -> str:
    """``text`` shortened to ``width`` characters by an ellipsis in the middle, so that both the
    start and the distinctive end of a long name stay visible."""
    if width <= 0 or len(text) <= width:
        return text
    if width < 5:
        return text[:width]
    head = (width - 1) // 3
    tail = width - 1 - head
    return f"{text[:head]}…{text[-tail:]}"


def fit_names(names: list[str], width: int | None, reserved: int) -> list[str]:
    """Escaped names, shortened to fit ``width`` columns less ``reserved`` for the other
    columns (but never below ``MIN_NAME_WIDTH``)."""
    shown = [printable(name) for name in names]
    if width is None:
        return shown
    room = max(MIN_NAME_WIDTH, width - reserved)
    return [middle_ellipsis(name, room) for name in shown]
