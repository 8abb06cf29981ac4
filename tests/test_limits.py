"""Every limit stops hostile input with a clear error, in bounded time and memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ckpt_tool.inspect.report import inspect_file
from ckpt_tool.limits import Limits
from ckpt_tool.model.tree import SameAs
from tests.archives import tensor_pickle, torch_archive
from tests.conftest import FIXTURES


def _nested_lists(levels: int) -> bytes:
    """[[...[[]]...]]: each level a new list appended to by the next (no MARKs, no memo)."""
    return b"\x80\x02" + b"]" * levels + b"a" * (levels - 1) + b"."


def _shared_doubling(levels: int) -> bytes:
    """L(n) = [L(n-1), L(n-1)] through the memo: 2**levels paths through a tiny pickle."""
    parts = [b"\x80\x02]q\x00"]
    for level in range(1, levels + 1):
        parts.append(b"h" + bytes([level - 1]) + b"h" + bytes([level - 1]) + b"\x86q"
                     + bytes([level]))
    return b"".join(parts) + b"."


def inspect_bytes(tmp_path: Path, data: bytes, limits: Limits | None = None) -> str | None:
    path = tmp_path / "hostile.pt"
    path.write_bytes(data)
    return inspect_file(str(path), limits or Limits()).error


@pytest.mark.parametrize(
    ("data", "limits", "message"),
    [
        pytest.param(torch_archive(b"\x80\x02r\xff\xff\xff\x7f]."), None, "max_memo_index",
                     id="memo-index"),
        pytest.param(torch_archive(b"\x80\x02" + b"(" * 5000 + b"."), None, "max_depth",
                     id="mark-depth"),
        pytest.param(torch_archive(_nested_lists(3000)), None, "max_depth", id="list-depth"),
        pytest.param(torch_archive(tensor_pickle(4)), Limits(max_pickle_bytes=50),
                     "max_pickle_bytes", id="pickle-bytes"),
        pytest.param(torch_archive(tensor_pickle(4), {"data/0": b"\0" * 16}),
                     Limits(max_members=2), "max_members", id="members"),
        pytest.param(torch_archive(tensor_pickle(10**15), {"data/0": b"\0" * 16}), None,
                     "declares", id="storage-claims-1e15"),
        pytest.param(torch_archive(tensor_pickle(4), {"data/1": b"\0" * 16}), None, "missing",
                     id="missing-record"),
        pytest.param(b"\x10\x00\x00\x00\x00\x00\x00\x00{" + b" " * 15, Limits(max_header_bytes=8),
                     "max_header_bytes", id="safetensors-header"),
    ],
)
def test_limit_is_a_clear_error(data: bytes, limits: Limits | None, message: str,
                                tmp_path: Path) -> None:
    error = inspect_bytes(tmp_path, data, limits)
    assert error is not None and message in error
    assert "\n" not in error


def test_compressed_pickle_is_inflated_with_a_cap(tmp_path: Path) -> None:
    bomb = b"\x80\x02X" + (50_000_000).to_bytes(4, "little") + b"a" * 50_000_000 + b"."
    data = torch_archive(bomb, compress_pickle=True)
    assert len(data) < 200_000  # a zip bomb: 50 MB of pickle in a small file
    error = inspect_bytes(tmp_path, data, Limits(max_pickle_bytes=1_000_000))
    assert error is not None and "max_pickle_bytes" in error


def test_compressed_pickle_within_the_cap_is_read(tmp_path: Path) -> None:
    data = torch_archive(tensor_pickle(4), {"data/0": b"\0" * 16}, compress_pickle=True)
    assert inspect_bytes(tmp_path, data) is None


def test_duplicate_and_climbing_member_names_are_reported(tmp_path: Path) -> None:
    data = torch_archive(tensor_pickle(4), {"data/0": b"\0" * 16},
                         extra_members=[("archive/data/0", b"\1" * 16),
                                        ("archive/../evil.pkl", b"\x80\x02N.")])
    path = tmp_path / "dupes.pt"
    path.write_bytes(data)
    report = inspect_file(str(path))
    assert report.checkpoint is not None
    messages = " ".join(a.message for a in report.checkpoint.anomalies)
    assert "2 members named archive/data/0" in messages
    assert "climbs out of the archive" in messages


def test_symlink_loop_in_a_directory_input(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "loop").symlink_to(tmp_path)
    (tmp_path / "sub" / "model.pt").write_bytes((FIXTURES / "state_dict.pt").read_bytes())
    result = subprocess.run([sys.executable, "-m", "ckpt_tool", "inspect", "--json",
                             str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('"path"') == 1


def test_hostile_memo_does_not_allocate(tmp_path: Path) -> None:
    """With the address space capped at 1 GB, the memo attack is still a clean error."""
    path = tmp_path / "memo.pt"
    path.write_bytes(torch_archive(b"\x80\x02r\xff\xff\xff\x0f]."))
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
        "from ckpt_tool.cli import main; sys.argv = ['ckpt', 'inspect', sys.argv[1]]; main()"
    )
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "max_memo_index" in result.stderr and "MemoryError" not in result.stderr


def test_lint_walks_a_large_protocol_4_pickle_in_bounded_time(tmp_path: Path) -> None:
    """Names on the stack need the symbolic walk; 9 MB of it must stay well inside 10 s."""
    import pickle

    from ckpt_tool.lint import lint_file, load_config
    from tests.test_fuzz import time_limit

    path = tmp_path / "big.pt"
    rows = [{f"k{i}": f"v{i}", "x": [i, i + 1.5, None, "abc"]} for i in range(200_000)]
    path.write_bytes(pickle.dumps(rows, protocol=4))
    with time_limit(10):
        findings = lint_file(str(path), load_config(str(tmp_path), [], []), Limits())
    assert {f.code for f in findings} == {"CKPT007"}  # a plain pickle named .pt: nothing else


def test_many_compressed_pickles_share_one_budget(tmp_path: Path) -> None:
    """A zip of deflate bombs: lint stops at max_pickle_bytes for the whole file, with a finding."""
    import zipfile

    from ckpt_tool.lint import lint_file, load_config
    from tests.test_fuzz import time_limit

    bomb = b"\x80\x02X" + (20_000_000).to_bytes(4, "little") + b"a" * 20_000_000 + b"."
    path = tmp_path / "bombs.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", tensor_pickle(4), zipfile.ZIP_STORED)
        archive.writestr("archive/data/0", b"\0" * 16, zipfile.ZIP_STORED)
        for index in range(30):
            archive.writestr(f"archive/extra{index}.pkl", bomb)
    with time_limit(10):
        findings = lint_file(str(path), load_config(str(tmp_path), [], []),
                             Limits(max_pickle_bytes=100_000_000))
    assert any(f.code == "CKPT006" and "max_pickle_bytes" in f.message for f in findings)


def test_exponential_sharing_is_walked_once(tmp_path: Path) -> None:
    """2**60 paths through 60 shared tuples: each is expanded at its first path only."""
    path = tmp_path / "shared.pt"
    path.write_bytes(torch_archive(_shared_doubling(60)))
    report = inspect_file(str(path))
    error, values = report.error, list(report.metadata.values())
    del report  # its root is 2**60 tuples deep once printed: keep it out of assertion messages
    assert error is None, error
    shared = [value for value in values if isinstance(value, SameAs)]
    assert len(values) == 61 and len(shared) == 59  # and the empty list at the bottom, twice


def test_a_value_limit_leaves_no_partial_listing(tmp_path: Path) -> None:
    path = tmp_path / "many.pt"
    path.write_bytes(torch_archive(b"\x80\x02(" + b"]" * 5000 + b"l."))
    report = inspect_file(str(path), Limits(max_objects=1000))
    assert report.error is not None and "max_objects" in report.error
    assert report.metadata == {} and report.tensors == []
