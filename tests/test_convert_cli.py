"""``ckpt convert`` through Typer's CliRunner and real subprocesses: exit codes, messages,
refusals, many files with ``--jobs``, no torch, and interruptions that leave nothing behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from ckpt_tool.cli import app
from tests.conftest import FIXTURES
from tests.convert_helpers import digest

runner = CliRunner()


def ckpt(*args: str):
    return runner.invoke(app, ["convert", *args])


def copy_fixture(name: str, folder: Path, as_name: str | None = None) -> Path:
    target = folder / (as_name or name)
    shutil.copyfile(FIXTURES / name, target)
    return target


def test_default_destination_is_beside_the_source(tmp_path: Path) -> None:
    source = copy_fixture("checkpoint.pth.tar", tmp_path)
    result = ckpt(str(source), "--to", "safetensors")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "checkpoint.safetensors").exists()
    assert "8 tensors" in result.stdout and "weights from 'state_dict'" in result.stdout
    assert "left out optimizer: 5 tensors" in result.stdout


def test_existing_destination_is_refused_then_forced(tmp_path: Path) -> None:
    source = copy_fixture("state_dict.pth", tmp_path)
    dest = tmp_path / "state_dict.pt"
    dest.write_bytes(b"precious")
    result = ckpt(str(source), "--to", "pt")
    assert result.exit_code == 2
    assert "state_dict.pt exists; pass --force to replace it" in result.stderr
    assert dest.read_bytes() == b"precious"
    result = ckpt(str(source), "--to", "pt", "--force")
    assert result.exit_code == 0, result.output
    assert dest.read_bytes() == source.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["state_dict.pt", "state_dict.pth"]


def test_destination_that_is_the_source_is_refused(tmp_path: Path) -> None:
    source = copy_fixture("state_dict.pt", tmp_path)
    before = digest(source)
    result = ckpt(str(source), "--to", "pt", "--force")
    assert result.exit_code == 2 and "is the source" in result.stderr
    assert digest(source) == before


def test_jobs_with_one_broken_input_converts_the_others(tmp_path: Path) -> None:
    sources = [copy_fixture(name, tmp_path) for name in ("state_dict.pt", "tied.pt", "nested.pt")]
    broken = copy_fixture("not_a_checkpoint.pt", tmp_path)
    out = tmp_path / "out"
    result = ckpt(*map(str, [sources[0], broken, *sources[1:]]), "--to", "safetensors",
                  "-o", str(out), "--jobs", "2")
    assert result.exit_code == 2
    assert sorted(os.listdir(out)) == ["nested.safetensors", "state_dict.safetensors",
                                       "tied.safetensors"]
    assert "not_a_checkpoint.pt: not a checkpoint: an HTML page" in result.stderr
    assert "converted 3 of 4 files, " in result.stderr and "; failed: " in result.stderr
    assert load_file(str(out / "tied.safetensors"))["embed.weight"].shape == (16, 4)


def test_a_folder_of_sources(tmp_path: Path) -> None:
    for name in ("state_dict.pt", "legacy.pt"):
        copy_fixture(name, tmp_path)
    result = ckpt(str(tmp_path), "--to", "safetensors", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert {"legacy.safetensors", "state_dict.safetensors"} <= set(os.listdir(tmp_path))


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["--to", "pt", "--dtype", "bf16"], "--dtype go with --to safetensors", id="dtype"),
    pytest.param(["--to", "safetensors", "--move"], "--move and --rewrite go with a torch",
                 id="move"),
    pytest.param(["--to", "pt", "--move", "--rewrite"], "pick one", id="move-rewrite"),
    pytest.param(["--to", "safetensors", "--shard-size", "lots"], "not a size", id="size"),
    pytest.param(["--to", "safetensors", "--rename", "("], "REGEX=REPLACEMENT", id="rename"),
    pytest.param(["--to", "safetensors", "--key", "a", "--all"], "pick one", id="key-all"),
])
def test_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    result = ckpt(str(copy_fixture("state_dict.pt", tmp_path)), *args)
    assert result.exit_code == 2 and message in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["state_dict.pt"]


def test_rename_regex_may_hold_an_equals_sign(tmp_path: Path) -> None:
    source = copy_fixture("state_dict.pt", tmp_path)
    result = ckpt(str(source), "--to", "safetensors", "--rename", r"(?<=layers\.)(\d)=n\1")
    assert result.exit_code == 0, result.output
    assert "layers.n0.weight" in load_file(str(tmp_path / "state_dict.safetensors"))


def test_two_sources_for_one_destination_are_refused(tmp_path: Path) -> None:
    source = copy_fixture("state_dict.pt", tmp_path)
    (tmp_path / "sub").mkdir()
    same = tmp_path / "sub" / ".." / "state_dict.pt"
    result = ckpt(str(source), str(same), "--to", "safetensors")
    assert result.exit_code == 2 and "would both be written" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["state_dict.pt", "sub"]


def test_output_for_several_sources_must_be_a_folder(tmp_path: Path) -> None:
    sources = [str(copy_fixture(name, tmp_path)) for name in ("state_dict.pt", "tied.pt")]
    (tmp_path / "out").write_bytes(b"precious")
    result = ckpt(*sources, "--to", "safetensors", "-o", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "is a file, not a folder" in result.stderr
    assert (tmp_path / "out").read_bytes() == b"precious"


# ---- subprocesses ---------------------------------------------------------------------------

BLOCK_TORCH = "import sys; sys.modules['torch'] = None; "


def run_ckpt_without_torch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    code = BLOCK_TORCH + (
        f"from ckpt_tool.cli import main; sys.argv = ['ckpt', *{list(args)!r}]; main()")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_safetensors_conversion_and_rewrite_never_import_torch(tmp_path: Path) -> None:
    for name in ("checkpoint.pth.tar", "legacy.pt", "bigendian.pt", "views.pt"):
        copy_fixture(name, tmp_path)
    result = run_ckpt_without_torch("convert", "checkpoint.pth.tar", "bigendian.pt", "views.pt",
                                    "--to", "safetensors", "--dtype", "bf16", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = run_ckpt_without_torch("convert", "legacy.pt", "--to", "pt", "--rewrite", "-o",
                                    "legacy_zip.pt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert torch.load(tmp_path / "legacy_zip.pt", mmap=True, weights_only=True)


def test_safetensors_to_pt_without_torch_says_what_to_install(tmp_path: Path) -> None:
    copy_fixture("model.safetensors", tmp_path)
    result = run_ckpt_without_torch("convert", "model.safetensors", "--to", "pt", cwd=tmp_path)
    assert result.returncode == 2
    assert "pip install torch" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]


@pytest.fixture(scope="module")
def big_checkpoint(tmp_path_factory) -> Path:
    """About 200 MB, so a conversion takes long enough to be interrupted."""
    path = tmp_path_factory.mktemp("big") / "big.pt"
    torch.save({"state_dict": {f"w{i}": torch.full((1 << 22,), float(i)) for i in range(12)}},
               path)
    return path


def start_conversion(source: Path, folder: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "ckpt_tool", "convert", str(source), "--to", "safetensors",
               "--dtype", "bf16", "-o", str(folder / "out.safetensors"), *extra]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_temporary(process: subprocess.Popen, folder: Path) -> None:
    """Until the conversion writes its output: a temporary in ``folder`` (a named one, a private
    folder holding a file, or an unnamed O_TMPFILE the process holds open there)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for private in folder.glob(".ckpt-tmp-*") if folder.exists() else ():
            if private.is_file() or (private.is_dir() and any(private.iterdir())):
                return
        if _unnamed_file_open_in(folder):
            return
        assert process.poll() is None, "the conversion ended before it could be interrupted"
        time.sleep(0.001)
    raise AssertionError("no temporary file appeared")


def _unnamed_file_open_in(folder: Path) -> bool:
    """An O_TMPFILE shows in /proc/PID/fd as ``FOLDER/#INODE (deleted)`` (held by the process
    or one of its workers: this test's folder is nobody else's)."""
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd).startswith(f"{folder}/#"):
                return True
        except OSError:
            continue
    return False


def test_sigkill_mid_write_leaves_no_destination(big_checkpoint: Path, tmp_path: Path) -> None:
    before = digest(big_checkpoint)
    process = start_conversion(big_checkpoint, tmp_path)
    wait_for_temporary(process, tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (tmp_path / "out.safetensors").exists()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert all(name.startswith(".ckpt-tmp-") for name in leftovers), leftovers
    assert digest(big_checkpoint) == before


def test_ctrl_c_mid_write_leaves_nothing(big_checkpoint: Path, tmp_path: Path) -> None:
    before = digest(big_checkpoint)
    process = start_conversion(big_checkpoint, tmp_path)
    wait_for_temporary(process, tmp_path)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert os.listdir(tmp_path) == []
    assert digest(big_checkpoint) == before


def test_progress_bar_path_with_jobs(tmp_path: Path, monkeypatch) -> None:
    from ckpt_tool.cli import output

    monkeypatch.setattr(output, "interactive", lambda stream=None: True)
    sources = [copy_fixture(name, tmp_path) for name in ("state_dict.pt", "nested.pt")]
    result = ckpt(*map(str, sources), "--to", "safetensors", "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert "state_dict.pt -> " in result.stdout and "nested.pt -> " in result.stdout


def test_byte_progress_scales_each_job_to_its_size() -> None:
    from ckpt_tool.convert.jobs import ByteProgress, Job

    progress = ByteProgress([Job("a", "a.out", 1000), Job("b", "b.out", 10)])
    assert progress.total == 1010
    assert progress.advance(0, 1, 4) == 250
    assert progress.advance(0, 1, 4) == 0
    assert progress.advance(0, 3, 2) == 750  # reports past the total are capped
    assert progress.complete(1) == 10 and progress.complete(0) == 0


def test_ctrl_c_with_jobs_stops_every_worker(big_checkpoint: Path, tmp_path: Path) -> None:
    sources = []
    for name in ("a.pt", "b.pt", "c.pt"):
        os.link(big_checkpoint, tmp_path / name)
        sources.append(str(tmp_path / name))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "ckpt_tool", "convert", *sources, "--to", "safetensors",
               "--dtype", "bf16", "-o", str(out), "--jobs", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    wait_for_temporary(process, out)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert os.listdir(out) == []
