"""Shared by the torch readers: scan a pickle, then build it with the restricted unpickler."""

from __future__ import annotations

import io
from array import array
from typing import Any

from ckpt_tool.errors import FormatError, GlobalMutation, LimitExceeded
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import BuiltFacts, GlobalRef, PickleRecord
from ckpt_tool.pickles.memo import without_unused_memo
from ckpt_tool.pickles.safety import classify
from ckpt_tool.pickles.scan import PickleScan, scan_pickle
from ckpt_tool.pickles.unpickler import PersistentLoad, unpickle

TRIM_MEMO_FROM = 8 << 20
"""Pickles this large are built with their unread memo puts sent to one index
(``pickles.memo``): tens of MB at the peak, for one more pass over the memo opcodes."""


def scan_or_fail(data: bytes, where: str, limits: Limits, start: int = 0,
                 memo_ops: array | None = None) -> PickleScan:
    scan = scan_pickle(data, start, limits, resolve_names=False, memo_ops=memo_ops)
    if scan.error:
        error = LimitExceeded if "(limit " in scan.error else FormatError
        raise error(f"{where}: {scan.error}")
    return scan


def _reusable(scan: PickleScan | None, start: int) -> bool:
    """A walk made elsewhere serves when it starts here, completed, and named no global from the
    stack (whose names this reader leaves to ``find_class``)."""
    return (scan is not None and scan.start == start and scan.error is None
            and not scan.stack_globals)


def load_pickle(
    data: bytes, where: str, limits: Limits, persistent: PersistentLoad | None, start: int = 0,
    built: BuiltFacts | None = None, scan: PickleScan | None = None,
) -> tuple[Any, PickleScan, list[tuple[str, str]]]:
    """Scan then unpickle ``data[start:scan.end]``; errors name ``where``; ``built`` collects
    what building showed. ``scan``: this pickle's walk when the caller has made it already."""
    memo_ops = None
    if not _reusable(scan, start):
        memo_ops = array("Q") if len(data) - start >= TRIM_MEMO_FROM else None
        scan = scan_or_fail(data, where, limits, start, memo_ops)
    assert scan is not None
    if memo_ops and start == 0 and scan.end == len(data):
        stream = io.BytesIO(without_unused_memo(data, memo_ops))
    else:
        stream = io.BytesIO(data[start : scan.end])
    del memo_ops, data  # the stream holds the bytes now; the caller passes them, not keeps them
    try:
        root, referenced = unpickle(stream, persistent, scan.protocol, built)
    except GlobalMutation:
        raise
    except FormatError as exc:
        raise FormatError(f"{where}: {exc}") from None
    return root, scan, referenced


def collect_globals(
    records: list[PickleRecord], referenced: list[tuple[str, str]]
) -> list[GlobalRef]:
    """Every global named by an opcode or resolved by the unpickler, once, in order."""
    seen: dict[tuple[str, str], None] = {}
    for record in records:
        for use in record.scan.globals:
            seen.setdefault((use.module, use.name), None)
    for pair in referenced:
        seen.setdefault(pair, None)
    return [GlobalRef(module, name, classify(module, name)) for module, name in seen]
