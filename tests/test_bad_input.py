"""Bad input: one line on stderr naming the file and the problem, exit 2, other files still
reported, never a traceback."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.conftest import FIXTURES


def _torch_zip_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(4.0)}, buffer)
    return buffer.getvalue()


def _rewrite_members(transform: Callable[[str, bytes], bytes | None]) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(_torch_zip_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = transform(info.filename, source.read(info))
            if data is not None:
                target.writestr(info.filename, data)
    return out.getvalue()


def _legacy_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(4.0)}, buffer, _use_new_zipfile_serialization=False)
    return buffer.getvalue()


def _pickle_fails_halfway(name: str, data: bytes) -> bytes:
    return data[: len(data) // 2] + b"." if name.endswith("data.pkl") else data


BAD_FILES: list = [
    pytest.param(lambda: _torch_zip_bytes()[:200], "truncated", id="truncated-zip"),
    pytest.param(lambda: _legacy_bytes()[:60], "", id="truncated-legacy"),
    pytest.param(lambda: b"\x80\x02\x8a\x0a" + b"\x00" * 10 + b".", "", id="wrong-magic"),
    pytest.param(lambda: b"PK\x03\x04" + b"\x00" * 100, "end-of-central-directory",
                 id="corrupt-zip"),
    pytest.param(lambda: _rewrite_members(_pickle_fails_halfway), "data.pkl", id="pickle-halfway"),
    pytest.param(lambda: _rewrite_members(lambda n, d: None if n.endswith("data/0") else d),
                 "missing", id="missing-record"),
    pytest.param(lambda: (FIXTURES / "lfs_pointer.pt").read_bytes(), "git lfs pull", id="lfs"),
    pytest.param(lambda: (FIXTURES / "not_a_checkpoint.pt").read_bytes(), "HTML", id="html"),
    pytest.param(lambda: b"", "empty file", id="empty"),
    pytest.param(lambda: b"hello world\n" * 10, "not a checkpoint", id="text"),
    pytest.param(lambda: b"\x00\x01\x02" * 100, "not a checkpoint", id="binary"),
]


def run_ckpt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ckpt_tool", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("make", "reason"), BAD_FILES)
def test_bad_file_is_one_line_and_exit_2(make: Callable[[], bytes], reason: str,
                                         tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(make())
    good = FIXTURES / "state_dict.pt"
    result = run_ckpt("inspect", "-v", str(bad), str(good))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr  # the error, then the run's summary
    assert lines[1].startswith("ckpt inspect: 2 files (1 unreadable), ")
    assert lines[0].startswith(f"ckpt: {bad}: ")
    assert reason.lower() in lines[0].lower()
    assert "Traceback" not in result.stderr
    assert "layers.{0..3}.weight" in result.stdout  # the good file is still reported


def test_empty_directory(tmp_path: Path) -> None:
    result = run_ckpt("inspect", "-q", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"ckpt: {tmp_path}: no checkpoint files in this directory"


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    link = tmp_path / "dangling.pt"
    link.symlink_to(tmp_path / "nowhere")
    result = run_ckpt("inspect", "--json", str(link), str(tmp_path / "absent.pt"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 2
    assert "No such file" in result.stderr
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.pt"
        locked.write_bytes((FIXTURES / "state_dict.pt").read_bytes())
        locked.chmod(0)
        assert "Permission denied" in run_ckpt("inspect", str(locked)).stderr


def test_json_reports_errors_per_file(tmp_path: Path) -> None:
    import json

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"<html>nope</html>")
    result = run_ckpt("inspect", "--json", str(bad), str(FIXTURES / "state_dict.pt"))
    doc = json.loads(result.stdout)
    assert [f["error"] is None for f in doc["files"]] == [False, True]
    assert doc["total"]["errors"] == 1


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)
    result = run_ckpt("inspect", str(fifo))
    assert result.returncode == 2 and "not a regular file" in result.stderr


def test_a_limit_of_zero_is_a_usage_error() -> None:
    result = run_ckpt("inspect", "--set-limit", "max_depth=0", str(FIXTURES / "edge.pt"))
    assert result.returncode == 2
    assert result.stderr.strip() == ("ckpt: --set-limit: limit max_depth must be a positive "
                                     "integer, got 0")
