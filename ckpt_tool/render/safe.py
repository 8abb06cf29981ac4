"""The one way every human view shows text taken from a file: control characters escaped.

Tensor names, metadata keys and values, archive member names and error messages come from the
file, and a hostile file can put a terminal escape in any of them (``ESC[2J`` clears the screen,
``ESC]0;...BEL`` retitles the window, a carriage return or a line separator overwrites the line
that shows the verdict). Right-to-left and invisible formatting marks reorder what is shown
("Trojan source"). All of them are shown as ``\\xNN`` or ``\\uNNNN`` escapes instead. JSON and
SARIF escape them by their own rules and do not use this.
"""

from __future__ import annotations

from typing import Any

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_FORMATTING = (0x061C, *range(0x200B, 0x2010), 0x2028, 0x2029, *range(0x202A, 0x202F),
               *range(0x2066, 0x206A), 0xFEFF)
"""Bidirectional controls, zero-width characters and the Unicode line/paragraph separators."""

ESCAPES: dict[int, str] = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))},
    **{code: f"\\u{code:04x}" for code in _FORMATTING},
    # Lone surrogates: a name that is not UTF-8 in the file (decoded with surrogateescape);
    # printed raw, they make a UTF-8 terminal's encoder fail.
    **{code: f"\\u{code:04x}" for code in range(0xD800, 0xE000)},
    **{ord(char): escape for char, escape in _NAMED.items()},
}


def printable(text: object) -> str:
    """``text`` (made a string) with every control and formatting character escaped."""
    return str(text).translate(ESCAPES)


def json_text(document: Any, **options: Any) -> str:
    """``json.dumps`` with non-ASCII text kept readable, unless the document holds a lone
    surrogate (a file's name that is not UTF-8): then every non-ASCII character is escaped,
    which any JSON reader decodes back, and which any terminal or pipe can carry."""
    import json

    text = json.dumps(document, ensure_ascii=False, **options)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(document, ensure_ascii=True, **options)
    return text
