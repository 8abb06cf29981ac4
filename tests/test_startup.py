"""Start-up: a run imports what its command needs and nothing more (issue 15). A pre-commit hook
pays start-up once per batch of files, so every import on the lint path is lint's cost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "checkpoint.pth.tar"

PROBE = """
import json, sys
from ckpt_tool.cli import run
run(sys.argv[1:])
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_after(*arguments: str) -> set[str]:
    run = subprocess.run([sys.executable, "-c", PROBE, *arguments], capture_output=True,
                         text=True, timeout=120)
    return set(json.loads(run.stderr.strip().splitlines()[-1]))


def test_version_is_answered_without_building_the_app() -> None:
    loaded = _modules_after("--version")
    assert not {"typer", "rich", "click", "ckpt_tool.cli.application"} & loaded


def test_lint_of_one_file_imports_only_lint() -> None:
    loaded = _modules_after("lint", str(FIXTURE))
    assert "ckpt_tool.cli.lint_cmd" in loaded
    unwanted = {"ckpt_tool.cli.convert_cmd", "ckpt_tool.cli.inspect_cmd", "ckpt_tool.cli.diff_cmd",
                "ckpt_tool.convert.options", "ckpt_tool.api.convert", "ckpt_tool.batch.pool",
                "multiprocessing", "concurrent.futures", "hashlib", "numpy", "torch"}
    assert not unwanted & loaded


def test_help_still_lists_every_command() -> None:
    run = subprocess.run([sys.executable, "-m", "ckpt_tool", "-h"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0
    for command in ("inspect", "lint", "convert", "diff", "rule", "completion"):
        assert f"  {command} " in run.stdout


def test_a_pyproject_that_never_names_ckpt_is_not_parsed(tmp_path) -> None:
    """Most projects configure other tools only: their pyproject.toml costs ckpt no TOML parser.
    (This one is not even valid TOML; ckpt has nothing to read in it.)"""
    (tmp_path / "pyproject.toml").write_text('[tool.ruff]\nline-length = 100\n[[broken\n')
    model = tmp_path / "model.pt"
    model.write_bytes(FIXTURE.read_bytes())
    run = subprocess.run([sys.executable, "-c", PROBE, "lint", "model.pt"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert "tomllib" not in set(json.loads(run.stderr.strip().splitlines()[-1]))
    assert "nothing to report" in run.stderr


def test_a_pyproject_that_names_ckpt_is_still_read(tmp_path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.ckpt]\nexclud = ["data"]\n')
    (tmp_path / "model.pt").write_bytes(FIXTURE.read_bytes())
    run = subprocess.run([sys.executable, "-m", "ckpt_tool", "lint", "model.pt"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "unknown key(s) exclud" in run.stderr


def test_lint_of_one_state_dict_imports_no_reader_it_does_not_need(tmp_path) -> None:
    """A clean one-file lint (a zip state_dict, no pyproject naming ckpt, no DCP metadata beside
    it) builds no dataclass-based record and imports neither the tar, TorchScript-code nor DCP
    readers, nor the modules only they need."""
    model = tmp_path / "model.pt"
    model.write_bytes(FIXTURE.read_bytes())
    run = subprocess.run([sys.executable, "-c", PROBE, "lint", "model.pt"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert "nothing to report" in run.stderr
    loaded = set(json.loads(run.stderr.strip().splitlines()[-1]))
    assert "ckpt_tool.lint.facts" in loaded
    unwanted = {"dataclasses", "tarfile", "tomllib", "ckpt_tool.lint.tar",
                "ckpt_tool.lint.torchscript_code",
                "ckpt_tool.readers.dcp", "ckpt_tool.readers.safetensors",
                "ckpt_tool.readers.embedded", "ckpt_tool.containers.remote_folders",
                "ckpt_tool.discovery.gitignore"}
    assert not unwanted & loaded


def test_records_are_not_dataclasses() -> None:
    """ckpt's records are plain ``__slots__`` classes (``model/record.py``): a dataclass costs
    start-up about half a millisecond to build, and the module itself several."""
    import dataclasses

    from ckpt_tool.lint.findings import Finding
    from ckpt_tool.model.checkpoint import Checkpoint, GlobalRef
    from ckpt_tool.model.dtypes import DType

    for record in (Finding, Checkpoint, GlobalRef, DType):
        assert not dataclasses.is_dataclass(record)


def test_records_compare_hash_and_copy_by_value() -> None:
    """What the records kept from ``@dataclass``: equality and hashing by value, a readable
    repr, ``replace`` and ``as_dict`` in field order; mutable ones are unhashable."""
    import pytest

    from ckpt_tool.model.checkpoint import Anomaly, Checkpoint, Format, Sharding

    a = Anomaly("corrupt", "bad", "data.pkl")
    assert a == Anomaly("corrupt", "bad", "data.pkl") and hash(a) == hash(Anomaly(*a._values()))
    assert a != Anomaly("corrupt", "bad") and a != ("corrupt", "bad", "data.pkl")
    assert repr(a) == "Anomaly(code='corrupt', message='bad', member='data.pkl')"
    assert a.replace(member=None) == Anomaly("corrupt", "bad")
    assert list(Sharding((4,), ("Shard(dim=0)",)).as_dict())[:2] == ["global_shape", "placements"]
    with pytest.raises(TypeError):
        hash(Checkpoint("x.pt", Format.TORCH_ZIP, 0))
    first, second = Checkpoint("x.pt", Format.TORCH_ZIP, 0), Checkpoint("x.pt", Format.TORCH_ZIP, 0)
    assert first == second and first.storages is not second.storages  # fresh defaults


TEARDOWN_PROBE = """
import atexit, sys
atexit.register(lambda: print("torn down", file=sys.stderr))
from ckpt_tool.cli import main
sys.argv = ["ckpt", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(("jobs", "torn_down"), [((), False), (("--jobs", "2"), True)])
def test_the_console_script_skips_teardown_unless_it_started_workers(
        jobs: tuple[str, ...], torn_down: bool) -> None:
    """``main`` exits without the interpreter's teardown (freeing a large model took longer
    than a small file's run), its output flushed and its status kept; a ``--jobs`` run exits
    the usual way, so that the pools' own exit handlers reap their workers."""
    run = subprocess.run([sys.executable, "-c", TEARDOWN_PROBE, "lint", "--format", "json",
                          *jobs, str(FIXTURE), str(FIXTURE.parent / "malicious.pt")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1  # malicious.pt's findings
    assert json.loads(run.stdout)["summary"]["files_checked"] == 2  # flushed before the exit
    assert ("torn down" in run.stderr) is torn_down
