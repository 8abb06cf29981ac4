"""The opcode walk agrees with CPython's pickletools and finds every global, on any protocol."""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import pickletools
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ckpt_tool.limits import Limits
from ckpt_tool.pickles.scan import scan_pickle
from tests.conftest import FIXTURES


def python2_renamed(module: str, name: str, protocol: int) -> tuple[str, str]:
    """What CPython's own find_class does with fix_imports below protocol 3."""
    if protocol >= 3:
        return module, name
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def reference(data: bytes) -> tuple[int, list[tuple[str, str]]]:
    stream = io.BytesIO(data)
    found = []
    strings: list = []
    protocol = 0
    for op, arg, _ in pickletools.genops(stream):
        if op.name == "PROTO":
            protocol = arg
        if op.name in ("GLOBAL", "INST"):
            module, name = arg.split(" ", 1)
            found.append(python2_renamed(module, name, protocol))
        if isinstance(arg, str):
            strings.append(arg)
        if op.name == "STACK_GLOBAL":
            found.append((strings[-2], strings[-1]))
    return stream.tell(), found


values = st.recursive(
    st.integers() | st.floats(allow_nan=False) | st.text() | st.binary() | st.none()
    | st.booleans(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner) | st.tuples(inner, inner)
    | st.builds(collections.OrderedDict, st.dictionaries(st.text(), inner)),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=values, protocol=st.integers(0, 5))
def test_scan_matches_pickletools(value, protocol: int) -> None:
    data = pickle.dumps(value, protocol=protocol) + b"trailing"
    end, found = reference(data)
    scan = scan_pickle(data)
    assert scan.error is None
    assert scan.end == end
    assert [(g.module, g.name) for g in scan.globals] == found


@pytest.mark.parametrize("name", ["checkpoint.pth.tar", "protocol4.pt", "custom_model.pt"])
def test_fixture_pickles(name: str) -> None:
    archive = zipfile.ZipFile(FIXTURES / name)
    data = archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
    end, found = reference(data)
    scan = scan_pickle(data)
    assert (scan.end, [(g.module, g.name) for g in scan.globals]) == (end, found)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"\x80\x02r\xff\xff\xff\x7f.", "max_memo_index", id="huge-memo-index"),
        pytest.param(b"\x80\x02p99999999999\n.", "max_memo_index", id="huge-text-memo"),
        pytest.param(b"\x80\x02" + b"(" * 2000 + b".", "max_depth", id="deep-marks"),
        pytest.param(b"\x80\x02X\xff\xff\x00\x00abc", "truncated", id="long-string"),
        pytest.param(b"\x80\x02\xfe.", "invalid opcode", id="bad-opcode"),
        pytest.param(b"\x80\x02t.", "no MARK", id="pop-without-mark"),
        pytest.param(b"\x80\x02K\x01", "truncated", id="no-stop"),
    ],
)
def test_hostile_pickles_stop_with_an_error(data: bytes, message: str) -> None:
    scan = scan_pickle(data)
    assert scan.error is not None and message in scan.error


def test_a_run_of_quiet_opcodes_stops_at_the_opcode_limit() -> None:
    """NONE after NONE takes the walk's fast path: it must still stop at max_opcodes, not walk
    on to the end of a 256 MB pickle."""
    data = b"\x80\x02" + b"N" * 10_000 + b"."
    result = scan_pickle(data, 0, Limits(max_opcodes=1_000))
    assert result.error is not None and "max_opcodes" in result.error
    assert result.opcode_count <= 1_001


@pytest.mark.parametrize("max_memo", [10_000_000, 70_000, 300, 2**24 - 1, 2**24])
def test_long_binput_is_held_to_the_memo_limit_at_its_edge(max_memo: int) -> None:
    """LONG_BINPUT is checked by its high bytes first: the limit holds exactly, either side."""
    import struct
    from array import array

    for index, refused in ((max_memo, False), (max_memo + 1, True), (0, False),
                           (2**32 - 1, True)):
        data = b"\x80\x02N" + b"r" + struct.pack("<I", index) + b"."
        for memo_ops in (None, array("Q")):
            error = scan_pickle(data, 0, Limits(max_memo_index=max_memo), memo_ops=memo_ops).error
            assert (error is not None) is refused, (max_memo, index)
