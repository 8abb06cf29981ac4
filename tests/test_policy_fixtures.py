"""The policy fixtures (fixtures/gen_policy.py) against the real loaders.

Benign files written by stock producers load with ``torch.load(weights_only=False)`` and get no
CKPT002 or CKPT003; CKPT004 appears exactly when torch's weights-only loader refuses them. Attack
files really run their payload under ``torch.load`` (and under ``weights_only=True`` once the
class is allowed, as the old CKPT004 advice said), are CKPT002 with exit 1 without any
``add_safe_globals`` advice for their class, and run nothing in ckpt's inspect, lint or convert.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ckpt_tool.cli import app
from ckpt_tool.lint import lint_file
from ckpt_tool.readers import open_checkpoint
from tests.conftest import FIXTURES

POLICY = FIXTURES / "policy"
CANARY = "ckpt_canary.txt"
CANARY_DIR = "ckpt_canary_dir"
runner = CliRunner()

BENIGN = {  # file: the producer libraries torch.load needs to rebuild it
    "dictconfig.pt": ("omegaconf",),
    "generator.pt": (),
    "spectral_norm.pt": (),
    "numpy_protocol5.pt": (),
    "numpy_rng.pt": (),
    "simple_namespace.pt": (),
    "regex.pt": (),
    "array.pt": (),
    "array_protocol5.pt": (),
    "jagged.pt": (),
    "plain_bytes.pt": (),
    "attribute_dict.pt": ("lightning", "pytorch_lightning"),
    "lightning_dict.ckpt": ("lightning",),
    "lightning_namespace.ckpt": ("lightning",),
    "lightning_dictconfig.ckpt": ("lightning", "omegaconf"),
}
ATTACKS = {  # file: the global CKPT002 must name
    "malicious_benchmark_timer.pt": "torch.utils.benchmark.utils.timer.Timer",
    "malicious_timeit_timer.pt": "timeit.Timer",
    "malicious_datasource.pt": "numpy.lib.npyio.DataSource",
    "malicious_file_writer.pt": "torch.PyTorchFileWriter",
    "malicious_package_exporter.pt": "torch.package.package_exporter.PackageExporter",
    "malicious_zipfile.pt": "zipfile.ZipFile",
    "malicious_zipfile_writer.pt": "torch.serialization._open_zipfile_writer",
    "malicious_open_memmap.pt": "numpy.lib.format.open_memmap",
    "malicious_memmap.pt": "numpy.memmap",
    "malicious_fx_graph_module.pt": "torch.fx.graph_module.reduce_graph_module",
}


def _require(modules: tuple[str, ...]) -> None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module}")


def _torch_load(path: Path, weights_only: bool):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, weights_only=weights_only)


def _torch_refuses(path: Path) -> bool:
    try:
        _torch_load(path, weights_only=True)
    except pickle.UnpicklingError:
        return True
    return False


def _torch_refuses_in_a_fresh_process(path: Path) -> bool:
    """torch accepts a jagged nested tensor only once ``torch._dynamo`` is imported, which other
    tests (and Lightning) do: ask a process that imported torch alone."""
    code = ("import pickle, sys, torch\n"
            "try:\n    torch.load(sys.argv[1], weights_only=True)\n"
            "except pickle.UnpicklingError:\n    sys.exit(3)\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], check=False).returncode == 3


def test_every_policy_fixture_is_listed() -> None:
    files = {path.name for path in POLICY.iterdir() if path.is_file()}
    assert files == set(BENIGN) | set(ATTACKS)


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_stock_file_loads_with_torch(name: str, canary_dir: Path) -> None:
    _require(BENIGN[name])
    assert _torch_load(POLICY / name, weights_only=False) is not None


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_stock_file_gets_no_code_finding(name: str) -> None:
    codes = {finding.code for finding in lint_file(str(POLICY / name))}
    assert not codes & {"CKPT002", "CKPT003"}, codes


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_weights_only_refused_exactly_when_torch_refuses(name: str, canary_dir: Path) -> None:
    _require(BENIGN[name])
    findings = lint_file(str(POLICY / name))
    refuses = (_torch_refuses_in_a_fresh_process if name == "jagged.pt" else _torch_refuses)
    refused = refuses(POLICY / name)
    assert any(f.code == "CKPT004" for f in findings) == refused
    assert open_checkpoint(str(POLICY / name)).weights_only.accepted is not refused


def test_plain_bytes_stay_bytes(canary_dir: Path) -> None:
    loaded = _torch_load(POLICY / "plain_bytes.pt", weights_only=False)
    assert isinstance(loaded["blob"], bytes) and b"json" in loaded["blob"]


def test_dcp_metadata_loads_with_its_reader_and_gets_no_finding() -> None:
    from torch.distributed.checkpoint import FileSystemReader

    metadata = FileSystemReader(str(POLICY / "dcp")).read_metadata()
    assert "model.w" in metadata.state_dict_metadata
    assert lint_file(str(POLICY / "dcp" / ".metadata")) == []


# ---- attacks ----------------------------------------------------------------------------------


def _payload_ran(folder: Path, name: str) -> bool:
    if name == "malicious_datasource.pt":
        return not (folder / CANARY_DIR).exists()
    return (folder / CANARY).exists()


def _arm(folder: Path) -> None:
    """What the DataSource payload would delete: a folder with a file in it."""
    (folder / CANARY_DIR).mkdir()
    (folder / CANARY_DIR / "keep.txt").write_text("kept")


def _load_and_drop(path: Path, weights_only: bool) -> None:
    with contextlib.suppress(Exception):  # some fail after the payload ran
        loaded = _torch_load(path, weights_only=weights_only)
        del loaded
    gc.collect()  # DataSource's __del__


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_torch_load_runs_the_payload(name: str, canary_dir: Path) -> None:
    _arm(canary_dir)
    _load_and_drop(POLICY / name, weights_only=False)
    assert _payload_ran(canary_dir, name)


@pytest.mark.parametrize("name", ["malicious_benchmark_timer.pt", "malicious_datasource.pt",
                                  "malicious_file_writer.pt", "malicious_zipfile.pt"])
def test_allow_listing_the_class_makes_weights_only_run_it(name: str, canary_dir: Path) -> None:
    """Why CKPT004 must never offer add_safe_globals for these: torch then runs them."""
    import torch

    from ckpt_tool.pickles.review import resolve

    cls = resolve(ATTACKS[name])
    _arm(canary_dir)
    assert _torch_refuses(POLICY / name) and not _payload_ran(canary_dir, name)
    with torch.serialization.safe_globals([(cls, ATTACKS[name])]):
        _load_and_drop(POLICY / name, weights_only=True)
    assert _payload_ran(canary_dir, name)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_lint_flags_the_class_and_never_offers_to_allow_it(name: str) -> None:
    result = runner.invoke(app, ["lint", str(POLICY / name)])
    assert result.exit_code == 1
    code_lines = [line for line in result.stdout.splitlines() if ": CKPT002 " in line]
    assert any(f"`{ATTACKS[name]}`" in line for line in code_lines), result.stdout
    for line in result.stdout.splitlines():
        if "add_safe_globals([" in line:
            allowed = line.split("add_safe_globals([", 1)[1].split("])", 1)[0]
            assert ATTACKS[name] not in allowed.split(", ")


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_ckpt_runs_nothing(name: str, canary_dir: Path) -> None:
    _arm(canary_dir)
    path = str(POLICY / name)
    for args in (["inspect", path], ["inspect", "--json", path], ["lint", path],
                 ["convert", path, "--to", "safetensors", "-o", str(canary_dir / "out")]):
        runner.invoke(app, args)
    gc.collect()
    assert not _payload_ran(canary_dir, name)


@pytest.mark.parametrize(("name", "wording"), [
    pytest.param("malicious_benchmark_timer.pt", "known to run code or touch the system (Timer "
                 "compiles and execs its setup string at construction)", id="known"),
    pytest.param("malicious_zipfile_writer.pt", "a torch global ckpt has not reviewed: it is not "
                 "known to be safe", id="not-reviewed"),
])
def test_the_message_says_known_code_apart_from_not_reviewed(name: str, wording: str) -> None:
    [finding] = [f for f in lint_file(str(POLICY / name)) if f.code == "CKPT002"]
    assert wording in finding.message
