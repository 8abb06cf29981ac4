"""Regression tests for a red-team pass on ``ckpt lint`` (each generator in ``tests/redteam/``
writes its files into the working folder, with a harmless payload that only creates a canary
file at the path given). For each: the real loader runs the payload, and lint flags the files
with the rule that says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "redteam"
CKPT = [sys.executable, "-m", "ckpt_tool"]


def generate(script: str, folder: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-W", "ignore", str(HERE / script), *args], cwd=folder,
                   check=True, capture_output=True, timeout=300)


def lint(folder: Path, *paths: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CKPT, "lint", "--select", "ALL", *paths], cwd=folder,
                          capture_output=True, text=True, timeout=120, env=env)


def loads(folder: Path, code: str) -> None:
    """Run ``code`` in a fresh interpreter in ``folder`` (the real loader; it may fail after the
    payload ran)."""
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=folder,
                   capture_output=True, timeout=300)


CASES = [
    # (generator, generator args, files to lint, loader code, the finding lint must give)
    pytest.param("dcp_metadata_self.py", ["{canary}", "dcp_ckpt"], ["dcp_ckpt/.metadata",
                 "dcp_ckpt"], "import torch, torch.distributed.checkpoint as d; "
                 "d.load({'w': torch.ones(2)}, checkpoint_id='dcp_ckpt')", "CKPT002",
                 id="dcp-metadata-self"),
    pytest.param("dcp_owned_file.py", ["{canary}", "ckpt_folder"],
                 ["ckpt_folder/pytorch_model.bin", "ckpt_folder"],
                 "import torch; torch.load('ckpt_folder/pytorch_model.bin', weights_only=False)",
                 "CKPT002", id="dcp-owned-file"),
    pytest.param("embedded_zip_prefix.py", ["{canary}", "dcp_ckpt"], ["dcp_ckpt"],
                 "import torch, torch.distributed.checkpoint as d; "
                 "d.load({'w': torch.ones(2), 'extra': {'step': 0}}, checkpoint_id='dcp_ckpt')",
                 "CKPT002", id="embedded-zip-prefix"),
    pytest.param("headless_mark_depth.py", ["{canary}"], ["pytorch_model.bin", "model.weights"],
                 "import pickle; pickle.load(open('model.weights', 'rb'))", "CKPT006",
                 id="headless-mark-depth"),
    pytest.param("legacy_dump_patches.py", ["{canary}", "model.pt"], ["model.pt"],
                 "import torch; torch.load('model.pt', weights_only=False)", "CKPT002",
                 id="legacy-dump-patches"),
    pytest.param("legacy_magic_spellings.py", ["{canary}"],
                 ["model_int.pt", "model_hex.pt", "model_long.pt", "model_long4.pt"],
                 "import torch; torch.load('model_hex.pt', weights_only=False)", "CKPT002",
                 id="legacy-magic-spellings"),
    pytest.param("numpy_npy_npz.py", ["{canary}"], ["weights.npy", "weights.npz"],
                 "import numpy as np; np.load('weights.npy', allow_pickle=True)", "CKPT002",
                 id="numpy-npy-npz"),
    pytest.param("npz_zipfile_methods.py", ["{canary}"], ["weights_bz2.npz", "weights_lzma.npz"],
                 "import numpy as np; np.load('weights_lzma.npz', allow_pickle=True)['b']",
                 "CKPT002", id="npz-zipfile-methods"),
    pytest.param("pt2_protocol0_members.py", ["{canary}"], ["opaque.pt2", "use_pickle_poly.pt2"],
                 "import torch; torch.export.load('opaque.pt2')", "CKPT002",
                 id="pt2-protocol0-members"),
    pytest.param("pt2_protocol0_members.py", ["{canary}"], ["opaque_data_pkl.pt2"],
                 "import torch; torch.export.load('opaque_data_pkl.pt2')", "CKPT002",
                 id="pt2-beside-a-data-pkl"),
    pytest.param("stack_global_py2_names.py", ["{canary}", "model.pt"], ["model.pt", "model.pkl"],
                 "import torch; torch.load('model.pt', weights_only=False)", "CKPT002",
                 id="stack-global-py2-names"),
    pytest.param("tar_checksum_sniff.py", ["{canary}", "pytorch_model.bin"],
                 ["pytorch_model.bin"],
                 "import torch; torch.load('pytorch_model.bin', weights_only=False)", "CKPT002",
                 id="tar-checksum-sniff"),
    pytest.param("tar_fallback_polyglot.py", ["{canary}", "model.pt"], ["model.pt"],
                 "import torch; torch.load('model.pt', weights_only=False)", "CKPT002",
                 id="tar-fallback-polyglot"),
    pytest.param("torch_package_shadow.py", ["{canary}", "model.pt"], ["model.pt"],
                 "from torch.package import PackageImporter as I; "
                 "I('model.pt').load_pickle('res', 'model.pkl')", "CKPT002",
                 id="torch-package-shadow"),
    pytest.param("torch_package_shadow.py", ["{canary}", "model.pt"], ["model_case.pt"],
                 "from torch.package import PackageImporter as I; "
                 "I('model_case.pt').load_pickle('res', 'model.pkl')", "CKPT002",
                 id="torch-package-marker-case"),
    pytest.param("torch_package_shadow_proto0.py", ["{canary}"], ["model_proto0.pt"],
                 "from torch.package import PackageImporter as I; "
                 "I('model_proto0.pt').load_pickle('res', 'weights')", "CKPT002",
                 id="torch-package-protocol-0-resource"),
    pytest.param("torchscript_code.py", ["{canary}"],
                 ["B_space.pt", "C_newline.pt", "D_casedir.pt", "E_casesuffix.pt"],
                 "import torch; torch.load('D_casedir.pt', weights_only=False)", "CKPT002",
                 id="torchscript-code"),
]


@pytest.mark.parametrize(("script", "args", "targets", "loader", "code"), CASES)
def test_red_team_payloads_run_and_are_flagged(
        tmp_path: Path, script: str, args: list[str], targets: list[str], loader: str,
        code: str) -> None:
    canary = tmp_path / "canary" / "ran"
    canary.parent.mkdir()
    # Relative to the working folder every step runs in: a tar's name field holds 100 bytes.
    generate(script, tmp_path, *(arg.format(canary="canary/ran") for arg in args))
    assert not any(canary.parent.iterdir()), "generating ran the payload"
    result = lint(tmp_path, *targets)
    assert result.returncode == 1, result.stdout + result.stderr
    for target in targets:
        flagged = [line for line in result.stdout.splitlines()
                   if line.startswith(target) and code in line]
        assert flagged or Path(tmp_path, target).is_dir(), (target, result.stdout)
    assert not any(canary.parent.iterdir()), "linting ran the payload"
    loads(tmp_path, loader)
    assert any(canary.parent.iterdir()), "the loader did not run the payload"


def test_forged_numpy_flags_are_code_execution_and_never_allow_listed(tmp_path: Path) -> None:
    generate("numpy_dtype_flags.py", tmp_path, "model.pt")
    result = lint(tmp_path, "model.pt", "scalar_model.pt", "--output-format", "full")
    assert result.returncode == 1
    assert result.stdout.count("CKPT002") == 2 and "flags numpy never gives" in result.stdout
    assert "add_safe_globals" not in result.stdout


def test_a_called_device_mesh_is_code_execution(tmp_path: Path) -> None:
    generate("reviewed_devicemesh.py", tmp_path, "model.pt")
    result = lint(tmp_path, "model.pt", "--output-format", "full")
    assert "CKPT002" in result.stdout and "DeviceMesh" in result.stdout
    assert "add_safe_globals" not in result.stdout


def test_a_repository_config_cannot_allow_code(tmp_path: Path) -> None:
    canary = tmp_path / "ran"
    generate("repo_config_override.py", tmp_path, str(canary))
    result = lint(tmp_path / "model_repo", ".")
    assert result.returncode == 2 and "allowed-globals cannot allow" in result.stderr


def flagged_and_run(tmp_path: Path, script: str, loaders: dict[str, str],
                    *more: str) -> subprocess.CompletedProcess[str]:
    """Generate the files ``script`` writes (payloads make ``canary/ran_<stem>``), lint them
    beside ``more``: each is CKPT002 and lint ran none. Then each file's loader (``loaders``)
    runs its payload. Returns lint's run."""
    canary = tmp_path / "canary" / "ran"
    canary.parent.mkdir()
    generate(script, tmp_path, "canary/ran")
    result = lint(tmp_path, *loaders, *more)
    assert result.returncode == 1, result.stdout + result.stderr
    for name in loaders:
        assert f"{name}: CKPT002" in result.stdout, (name, result.stdout)
    assert not any(canary.parent.iterdir()), "linting ran the payload"
    for name, code in loaders.items():
        loads(tmp_path, code)
        assert Path(f"{canary}_{Path(name).stem}").exists(), f"the loader did not run {name}"
    return result


def test_npz_directories_only_pythons_zipfile_reads(tmp_path: Path) -> None:
    flagged_and_run(tmp_path, "npz_zipfile_directory.py", {
        f"{name}.npz": f"import numpy as np; np.load('{name}.npz', allow_pickle=True)['b']"
        for name in ("count", "concat", "zip64loc", "emptyhead")})


def test_npy_headers_of_object_arrays_in_any_spelling(tmp_path: Path) -> None:
    result = flagged_and_run(tmp_path, "npy_header_spellings.py", {
        f"{name}.npy": f"import numpy as np; np.load('{name}.npy', allow_pickle=True)"
        for name in ("object", "object_", "stringdtype", "field", "longsuffix", "bigheader")},
        "plain.npy", "plain.npz")
    assert "plain.np" not in result.stdout, result.stdout
    broken = lint(tmp_path, "broken_string.npy", "broken_bracket.npy")
    assert broken.returncode in (0, 1) and "internal error" not in broken.stderr, broken.stderr


def test_globals_of_torchs_own_requirements_are_code(tmp_path: Path) -> None:
    result = flagged_and_run(tmp_path, "torch_requirement_gadgets.py", {
        f"{name}.pt": f"import torch; torch.load('{name}.pt', weights_only=False)"
        for name in ("sympify", "sin")})
    assert "CKPT003" not in result.stdout, result.stdout


def test_a_member_of_an_unknown_compression_method_is_reported(tmp_path: Path) -> None:
    generate("npz_zipfile_methods.py", tmp_path, str(tmp_path / "ran"))
    result = lint(tmp_path, "weights_zstd.npz")
    assert result.returncode == 1 and "CKPT006" in result.stdout, result.stdout
    assert "compression method 93" in result.stdout


def test_stock_outputs_are_not_code_execution(tmp_path: Path) -> None:
    """quantize_dynamic(LSTM), Ellipsis and F.silu in a Transformer layer: torch.save output."""
    generate("false_alarms.py", tmp_path)
    result = lint(tmp_path, "qdyn_lstm.pt", "ellipsis.pt", "silu_layer.pt")
    assert "CKPT002" not in result.stdout, result.stdout


def test_names_that_are_not_utf8_print_on_a_utf8_terminal(tmp_path: Path) -> None:
    import os

    generate("crash_surrogate_names.py", tmp_path, "model.pt")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    for command in (["lint"], ["inspect"], ["inspect", "--json"]):
        result = subprocess.run([*CKPT, *command, "model.pt"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode in (0, 1) and "internal error" not in result.stderr, command


@pytest.mark.parametrize("name", ["dos_memo.pkl", "dos_embedded.pkl"])
def test_walk_heavy_pickles_are_bounded(tmp_path: Path, name: str) -> None:
    generate("dos_slow_walks.py", tmp_path)
    result = subprocess.run([*CKPT, "lint", name], cwd=tmp_path, capture_output=True,
                            text=True, timeout=30)  # the timeout is the assertion on time
    assert result.returncode in (0, 1) and "internal error" not in result.stderr
