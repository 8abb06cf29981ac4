"""Keep the unpickler's memo to the objects a pickle fetches back.

torch's pickler memoizes every tuple and string it writes (BINPUT), and an unpickler keeps each
memoized object alive until the end: on a state dict of 200,000 tensors, the persistent ids,
argument tuples and hook dicts that only lived to build one tensor hold 70 MB at the peak.
Before building, every put of an index that no BINGET or LONG_BINGET ever reads is pointed at
one spare index instead, so each such object is released as soon as the next one replaces it.
What the pickle builds does not change: every index it reads holds what it held.
"""

from __future__ import annotations

from array import array

_BINGET, _LONG_BINGET, _BINPUT, _LONG_BINPUT = 0x68, 0x6A, 0x71, 0x72
_ONE_BYTE = 256


def without_unused_memo(data: bytes, memo_ops: array) -> bytes | bytearray:
    """``data`` with its unread memo puts sent to one spare index; ``memo_ops``: the offset of
    each BINPUT, LONG_BINPUT, BINGET and LONG_BINGET (``scan_pickle(..., memo_ops=...)``)."""
    read: set[int] = set()
    puts = array("Q")
    for pos in memo_ops:
        op = data[pos]
        if op == _BINGET:
            read.add(data[pos + 1])
        elif op == _LONG_BINGET:
            read.add(int.from_bytes(data[pos + 1 : pos + 5], "little"))
        else:
            puts.append(pos)
    spare = next(index for index in range(len(read) + 1) if index not in read)
    rewritten = bytearray(data)
    for pos in puts:
        if rewritten[pos] == _BINPUT:
            if spare < _ONE_BYTE and rewritten[pos + 1] not in read:
                rewritten[pos + 1] = spare
        elif int.from_bytes(rewritten[pos + 1 : pos + 5], "little") not in read:
            rewritten[pos + 1 : pos + 5] = spare.to_bytes(4, "little")
    return rewritten
