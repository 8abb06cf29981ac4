"""``ckpt convert`` (issue 13, point 7 and friction): the source tree mirrored under ``-o``,
``--to`` defaulting to safetensors, errors that name the user's path, a free-space check, and a
one-line summary."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from ckpt_tool.cli import app
from tests.conftest import FIXTURES

runner = CliRunner()


def ckpt(*args: str):
    return runner.invoke(app, list(args))


def make_runs(root: Path) -> None:
    for step, value in (("checkpoint-500", 1.0), ("checkpoint-1000", 2.0)):
        (root / step).mkdir(parents=True)
        torch.save({"state_dict": {"w": torch.full((4,), value)}}, root / step / "model.pt")


def test_a_tree_is_mirrored_under_o(tmp_path: Path) -> None:
    make_runs(tmp_path / "runs")
    out = tmp_path / "converted"
    result = ckpt("convert", str(tmp_path / "runs"), "-o", str(out))
    assert result.exit_code == 0, result.output
    for step, value in (("checkpoint-500", 1.0), ("checkpoint-1000", 2.0)):
        written = load_file(str(out / step / "model.safetensors"))
        assert torch.equal(written["w"], torch.full((4,), value))
    assert sorted(os.listdir(out)) == ["checkpoint-1000", "checkpoint-500"]
    assert "converted 2 of 2 files" in result.stderr


def test_one_walked_file_still_goes_into_the_o_folder(tmp_path: Path) -> None:
    (tmp_path / "runs" / "a").mkdir(parents=True)
    torch.save({"w": torch.ones(2)}, tmp_path / "runs" / "a" / "model.pt")
    result = ckpt("convert", str(tmp_path / "runs"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "a" / "model.safetensors").is_file()


def test_same_named_files_given_by_name_still_collide(tmp_path: Path) -> None:
    make_runs(tmp_path)
    result = ckpt("convert", str(tmp_path / "checkpoint-500" / "model.pt"),
                  str(tmp_path / "checkpoint-1000" / "model.pt"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2 and "would both be written to" in result.stderr


def test_to_defaults_to_safetensors(tmp_path: Path) -> None:
    shutil.copyfile(FIXTURES / "checkpoint.pth.tar", tmp_path / "m.pth.tar")
    result = ckpt("convert", str(tmp_path / "m.pth.tar"))
    assert result.exit_code == 0, result.output
    assert set(load_file(str(tmp_path / "m.safetensors"))) == {
        "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
        "bn1.num_batches_tracked", "fc.weight", "fc.bias"}


def _small_file_limit() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


@pytest.mark.parametrize(("to", "dest"), [("safetensors", "x.safetensors"), ("pt", "x.pt")])
def test_write_errors_name_the_users_path(tmp_path: Path, to: str, dest: str) -> None:
    source = tmp_path / "big.pt"
    torch.save({"w": torch.zeros(1 << 14)}, source)  # 64 KB of tensor data
    (tmp_path / "ro").mkdir()
    target = tmp_path / "ro" / dest
    done = subprocess.run([sys.executable, "-m", "ckpt_tool", "convert", str(source), "--to", to,
                           "-o", str(target)], capture_output=True, text=True, timeout=120,
                          preexec_fn=_small_file_limit)
    assert done.returncode == 2, done.stderr
    error = done.stderr.splitlines()[0]
    assert f"{target}" in error and "File too large" in error
    assert ".ckpt-tmp" not in done.stderr and "/proc/self/fd" not in done.stderr
    assert os.listdir(tmp_path / "ro") == []


def test_free_space_is_checked_before_writing(tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / "m.pt"
    torch.save({"w": torch.zeros(1 << 12)}, source)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=500))
    for to in ("safetensors", "pt"):
        result = ckpt("convert", str(source), "--to", to, "-o", str(tmp_path / f"out.{to}"))
        assert result.exit_code == 2
        assert "not enough free space for" in result.stderr and "500 B free" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_summary_line_counts_files_bytes_and_time(tmp_path: Path) -> None:
    source = tmp_path / "m.pt"
    torch.save({"w": torch.zeros(256)}, source)
    result = ckpt("convert", str(source))
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("ckpt convert: converted 1 of 1 files, 1.0 KB written (")
    assert line.endswith(" s)")
    assert ckpt("convert", "-q", str(source), "--force").stderr == ""
