"""Attack classes that go past a reader which reads the container differently from the loader, or
that run through a loader other than torch.load's unpickler. For each: the real loader runs the
payload (the canary appears), ``ckpt lint FILE`` and ``ckpt lint DIR`` flag it with exit 1, and
ckpt's own inspect, lint and convert run nothing."""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ckpt_tool.cli import app
from ckpt_tool.lint import lint_file
from ckpt_tool.lint.config import LintConfig
from ckpt_tool.lint.findings import RULES
from tests import attack_models
from tests.attack_files import (
    CANARY,
    ELF_LIBRARY,
    EXEC_PAYLOAD,
    Exec,
    benign_pickle,
    headless_pickle,
    replace_members,
    safetensors_polyglot,
    torch_members,
    torch_zip_of,
    zip64_split,
)

ALL_RULES = LintConfig(selected=frozenset(RULES))
runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _ran(load: Callable[[], object]) -> bool:
    """Whether loading wrote the canary (whatever it raised afterwards)."""
    Path(CANARY).unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.suppress(Exception):  # what breaks after the payload does not matter
            load()
    ran = Path(CANARY).exists()
    Path(CANARY).unlink(missing_ok=True)
    return ran


def _codes(path: Path) -> set[str]:
    return {finding.code for finding in lint_file(str(path), ALL_RULES)}


def _ckpt_runs_nothing(path: Path, out: Path) -> None:
    """inspect, lint and convert read the file without running any of it."""
    for arguments in (["inspect", str(path)], ["inspect", "--json", str(path)],
                      ["lint", str(path)], ["lint", str(path.parent)],
                      ["convert", str(path), "--to", "safetensors", "-o", str(out)]):
        runner.invoke(app, arguments)
        assert not Path(CANARY).exists(), arguments


def _flagged_in_a_folder(path: Path, code: str = "CKPT002") -> None:
    result = runner.invoke(app, ["lint", "--select", "ALL", str(path.parent)])
    assert result.exit_code == 1, result.output
    assert any(line.startswith(str(path)) and code in line for line in result.output.splitlines()
               ), result.output


# ---- containers read two ways ------------------------------------------------------------------


def test_zip64_directory_that_disagrees_with_the_classic_one(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(zip64_split(torch_members(benign_pickle()), torch_members(EXEC_PAYLOAD)))
    assert _ran(lambda: torch.load(path, weights_only=False))
    codes = _codes(path)
    assert {"CKPT002", "CKPT006"} <= codes
    _flagged_in_a_folder(path)
    _ckpt_runs_nothing(path, tmp_path / "out.safetensors")


def test_the_classic_directory_is_judged_too(tmp_path: Path) -> None:
    """torch reads the zip64 directory; a reader that ignores it reads the payload."""
    path = tmp_path / "model.pt"
    path.write_bytes(zip64_split(torch_members(EXEC_PAYLOAD), torch_members(benign_pickle())))
    assert not _ran(lambda: torch.load(path, weights_only=False))
    findings = lint_file(str(path), ALL_RULES)
    assert any(f.code == "CKPT002" and "classic directory" in f.message for f in findings)


@pytest.mark.parametrize("name", ["model.pt", "pytorch_model.bin", "model.ckpt", "weights"])
def test_safetensors_that_is_also_a_pickle(tmp_path: Path, name: str) -> None:
    from safetensors import safe_open

    path = tmp_path / name
    path.write_bytes(safetensors_polyglot(EXEC_PAYLOAD))
    with safe_open(str(path), "np") as reader:  # a valid safetensors file
        assert list(reader.keys()) == ["t"]
    assert _ran(lambda: torch.load(path, weights_only=False))
    findings = lint_file(str(path), ALL_RULES)
    assert any(f.code == "CKPT002" and "builtins.exec" in f.message for f in findings)
    assert any(f.code == "CKPT006" and "polyglot" in f.message for f in findings)
    _flagged_in_a_folder(path)
    _ckpt_runs_nothing(path, tmp_path / "out.safetensors")


def test_a_plain_safetensors_file_is_no_polyglot(tmp_path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": np.arange(1000, dtype=np.float32)}, str(path), metadata={"a": "b"})
    assert _codes(path) == set()


# ---- loaders other than torch.load's unpickler ------------------------------------------------


def test_torchscript_setstate_that_maps_a_file(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(attack_models.MapsAFileOnLoad()), str(path))
    assert _ran(lambda: torch.load(path, weights_only=False))
    findings = [f for f in lint_file(str(path), ALL_RULES) if f.code == "CKPT002"]
    assert findings and "aten::from_file" in findings[0].message
    assert "__setstate__" in findings[0].message and "torch.from_file(" in findings[0].message
    _flagged_in_a_folder(path)
    _ckpt_runs_nothing(path, tmp_path / "out.safetensors")


def test_torchscript_code_that_writes_files_when_called(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(attack_models.SavesWhenCalled()), str(path))
    model = torch.jit.load(str(path))
    assert _ran(lambda: model(torch.ones(1)))
    findings = [f for f in lint_file(str(path), ALL_RULES) if f.code == "CKPT002"]
    assert findings and "aten::save" in findings[0].message


def test_stock_quantized_torchscript_with_a_setstate_is_not_code(tmp_path: Path) -> None:
    """torch's own quantized conv scripts a __setstate__ that repacks weights: no CKPT002."""
    model = attack_models.QuantizedConv().eval()
    model.qconfig = torch.ao.quantization.get_default_qconfig("fbgemm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = torch.ao.quantization.prepare(model)
        prepared(torch.randn(1, 1, 4, 4))
        scripted = torch.jit.script(torch.ao.quantization.convert(prepared))
    path = tmp_path / "qconv.pt"
    torch.jit.save(scripted, str(path))
    with zipfile.ZipFile(path) as archive:
        code = "".join(archive.read(n).decode() for n in archive.namelist() if n.endswith(".py"))
    assert "def __setstate__" in code and "ops.quantized" in code
    assert _codes(path) == {"CKPT004"}


def test_dcp_value_that_runs_code_when_loaded(tmp_path: Path) -> None:
    import torch.distributed.checkpoint as dcp

    folder = tmp_path / "dcp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"w": torch.ones(3), "note": Exec()}, checkpoint_id=str(folder))
    Path(CANARY).unlink(missing_ok=True)  # saving pickled the object, never called it
    state = {"w": torch.zeros(3), "note": None}
    assert _ran(lambda: dcp.load(state, checkpoint_id=str(folder)))
    result = runner.invoke(app, ["lint", str(folder)])
    assert result.exit_code == 1 and "CKPT002" in result.output and ".distcp" in result.output
    _ckpt_runs_nothing(folder / ".metadata", tmp_path / "out.safetensors")


def test_stock_dcp_folder_has_nothing_to_report(tmp_path: Path) -> None:
    import torch.distributed.checkpoint as dcp

    folder = tmp_path / "dcp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"w": torch.ones(3), "step": 7, "cfg": {"lr": 0.1}}, checkpoint_id=str(folder))
    result = runner.invoke(app, ["lint", str(folder)])
    assert result.exit_code == 0, result.output


def _exported(tmp_path: Path) -> bytes:
    class Small(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    path = tmp_path / "clean.pt2"
    torch.export.save(torch.export.export(Small(), (torch.randn(1, 3),)), str(path))
    return path.read_bytes()


def test_pt2_sample_inputs_that_run_code(tmp_path: Path) -> None:
    clean = _exported(tmp_path)
    path = tmp_path / "model.pt2"
    path.write_bytes(replace_members(clean, {"sample_inputs/model.pt": torch_zip_of(
        EXEC_PAYLOAD, "model")}))
    assert _ran(lambda: torch.export.load(str(path)))
    findings = [f for f in lint_file(str(path), ALL_RULES) if f.code == "CKPT002"]
    assert findings and "sample_inputs/model.pt" in (findings[0].member or "")
    assert _codes(tmp_path / "clean.pt2") - {"CKPT004"} == set()
    _flagged_in_a_folder(path)
    _ckpt_runs_nothing(path, tmp_path / "out.safetensors")


def test_pickle_member_with_any_name_is_found_by_content(tmp_path: Path) -> None:
    """torch.export names its pickled constants ``opaque_obj_N``: no ``.pkl`` to go by."""
    clean = _exported(tmp_path)
    path = tmp_path / "model.pt2"
    path.write_bytes(replace_members(clean, {}, {"model/data/constants/opaque_obj_0":
                                                  EXEC_PAYLOAD}))
    findings = [f for f in lint_file(str(path), ALL_RULES) if f.code == "CKPT002"]
    assert findings and findings[0].member == "model/data/constants/opaque_obj_0"


def test_native_code_in_an_archive(tmp_path: Path) -> None:
    clean = _exported(tmp_path)
    path = tmp_path / "model.pt2"
    path.write_bytes(replace_members(clean, {}, {"model/data/aotinductor/model/x.so":
                                                  ELF_LIBRARY}))
    findings = [f for f in lint_file(str(path), ALL_RULES) if f.code == "CKPT002"]
    assert findings and "native code" in findings[0].message


def test_torch_package_pickle_that_runs_code(tmp_path: Path) -> None:
    from torch.package import PackageExporter, PackageImporter

    path = tmp_path / "package.pt"
    with PackageExporter(str(path)) as exporter:
        exporter.save_binary("res", "evil.pkl", EXEC_PAYLOAD)
        exporter.save_pickle("res", "weights.pkl", {"w": torch.ones(2)})
    assert _ran(lambda: PackageImporter(str(path)).load_pickle("res", "evil.pkl"))
    findings = [f for f in lint_file(str(path), ALL_RULES) if f.code == "CKPT002"]
    assert findings and "evil.pkl" in (findings[0].member or "")
    _ckpt_runs_nothing(path, tmp_path / "out.safetensors")


def test_script_object_of_an_unreviewed_torchscript_class(tmp_path: Path) -> None:
    """``ScriptObject.__setstate__`` runs the ``__setstate__`` of the class its state names."""
    state = ((), "__torch__.torch.classes.c10d.ProcessGroup")
    data = (b"\x80\x02ctorch\nScriptObject\n)\x81" + pickle.dumps(state, 2)[2:-1] + b"b.")
    path = tmp_path / "model.pt"
    path.write_bytes(torch_zip_of(data))
    findings = [f for f in lint_file(str(path), ALL_RULES) if f.code == "CKPT002"]
    assert findings and "torch.ScriptObject" in findings[0].message


# ---- folder walks and the hook -------------------------------------------------------------


@pytest.mark.parametrize("size", [10, 2 << 20])
def test_headless_pickles_of_any_size_are_found_in_a_folder(tmp_path: Path, size: int) -> None:
    path = tmp_path / "notes.dat"
    path.write_bytes(headless_pickle(size))
    assert _ran(lambda: torch.load(path, weights_only=False))
    (tmp_path / "README.md").write_text("# a model\n")
    _flagged_in_a_folder(path)


def test_hook_passes_every_file_to_lint(tmp_path: Path) -> None:
    """The hook has no files:/types: filter: lint picks checkpoints itself, as for a folder."""
    import yaml

    hooks = yaml.safe_load(Path(__file__).parents[1].joinpath(".pre-commit-hooks.yaml")
                           .read_text())
    assert all("files" not in hook and "types" not in hook for hook in hooks)
    pickles = tmp_path / "weights.pkl"
    pickles.write_bytes(EXEC_PAYLOAD)
    text = tmp_path / "train.py"
    text.write_text("print('hello')\n")
    result = runner.invoke(app, ["lint", str(pickles), str(text)])
    assert result.exit_code == 1 and "CKPT002" in result.output


# ---- bounded work and safe values ----------------------------------------------------------


def _run_ckpt(*arguments: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ckpt_tool", *arguments], capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.mark.parametrize("payload", [
    pytest.param(b"\x80\x02]" + b"2a" * 16_500 + b".", id="dup-append-self"),
    pytest.param(b"\x80\x02]" + b"2\x86" * 60 + b".", id="dup-tuple2-doubling"),
    pytest.param(b"\x80\x02(" + b"]" * 3_000_000 + b"l.", id="three-million-lists"),
])
def test_amplifying_pickles_finish_fast(tmp_path: Path, payload: bytes) -> None:
    from tests.archives import torch_archive

    path = tmp_path / "blowup.pt"
    path.write_bytes(torch_archive(payload))
    for arguments in (["lint", str(path)], ["inspect", "--json", str(path)]):
        result = _run_ckpt(*arguments)  # the timeout is the assertion on time
        assert result.returncode in (0, 1, 2) and "internal error" not in result.stderr


def test_an_opcode_budget_stops_a_huge_pickle_with_a_clear_finding(tmp_path: Path) -> None:
    from tests.archives import torch_archive

    path = tmp_path / "huge.pt"
    path.write_bytes(torch_archive(b"\x80\x02(" + b"N" * 11_000_000 + b"l."))
    result = _run_ckpt("lint", str(path), timeout=60)
    assert result.returncode == 1 and "CKPT006" in result.stdout
    assert "max_opcodes" in result.stdout


def test_huge_ints_do_not_break_any_view(tmp_path: Path) -> None:
    path = tmp_path / "ints.pt"
    torch.save({"n": 2**20000, "w": torch.ones(2)}, path)
    for arguments in (["inspect", str(path)], ["inspect", "--json", str(path)],
                      ["lint", str(path)], ["convert", str(path), "-o", str(tmp_path / "o")]):
        result = runner.invoke(app, [*arguments] if arguments[0] != "convert" else
                               [*arguments, "--to", "safetensors"])
        assert result.exit_code in (0, 1), (arguments, result.output)
        assert "digits" in result.output or arguments[0] != "inspect"


def test_the_canary_helpers_work(tmp_path: Path) -> None:
    """The harness itself: pickle.loads of the payload writes the canary."""
    assert _ran(lambda: pickle.loads(EXEC_PAYLOAD))
    shutil.rmtree(tmp_path / "nothing", ignore_errors=True)
    assert not os.path.exists(CANARY)


def test_legacy_source_records_that_write_patch_files(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's legacy writer records each module class's source; where a class sets
    dump_patches, torch.load writes the difference to ``<Class>.patch`` in the working folder."""
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes().replace(b"class Linear(Module)", b"class Linear(Modulx)"))
    monkeypatch.setattr(torch.nn.Linear, "dump_patches", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.load(path, weights_only=False)
    assert Path("Linear.patch").exists()
    [finding] = [f for f in lint_file(str(path), ALL_RULES) if f.code == "CKPT005"]
    assert "source code of 1 classes (torch.nn.modules.linear.Linear)" in finding.message
    assert ".patch" in finding.message
