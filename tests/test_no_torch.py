"""The core, inspect (and the CLI's start-up) never import torch; numpy only when computing."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import FIXTURES

BLOCK_TORCH = "import sys; sys.modules['torch'] = None; "


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_importing_the_cli_leaves_torch_and_numpy_out() -> None:
    result = run_python("import sys, ckpt_tool.cli; "
                        "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_inspect_every_fixture_with_torch_blocked() -> None:
    code = BLOCK_TORCH + (
        "from ckpt_tool.cli import main; sys.argv = ['ckpt', 'inspect', '--json', '--stats', "
        f"{str(FIXTURES)!r}]; main()"
    )
    result = run_python(code)
    assert "ModuleNotFoundError" not in result.stderr and "Traceback" not in result.stderr
    assert '"schema": 2' in result.stdout


BLOCK_FULL = ("import sys; [sys.modules.__setitem__(name, None) for name in "
              "('torch', 'numpy', 'ml_dtypes', 'safetensors')]; ")


def test_lint_and_inspect_need_only_the_plain_install() -> None:
    """What the pre-commit hook's environment holds: no numpy, ml_dtypes or safetensors."""
    code = BLOCK_FULL + (
        "from ckpt_tool.cli import main; sys.argv = ['ckpt', '{}', {!r}]; main()")
    for command in ("lint", "inspect"):
        result = run_python(code.format(command, str(FIXTURES)))
        assert result.returncode in (0, 1, 2), result.stderr
        assert "ModuleNotFoundError" not in result.stderr and "Traceback" not in result.stderr
        assert "internal error" not in result.stderr
    linted = run_python(code.format("lint", str(FIXTURES / "malicious.pt")))
    assert linted.returncode == 1 and "CKPT002" in linted.stdout


def test_what_needs_the_full_extra_says_what_to_install(tmp_path) -> None:
    def run(*args: str):
        return run_python(BLOCK_FULL + "from ckpt_tool.cli import main; "
                          f"sys.argv = ['ckpt', *{list(args)!r}]; main()")

    cast = run("convert", str(FIXTURES / "state_dict.pt"), "--dtype", "bf16", "-o",
               str(tmp_path / "x.safetensors"))
    assert cast.returncode == 2, cast.stderr
    assert "pip install numpy ml_dtypes" in cast.stderr and "cast to bfloat16" in cast.stderr
    swapped = run("convert", str(FIXTURES / "bigendian.pt"), "-o", str(tmp_path / "x.safetensors"))
    assert swapped.returncode == 2 and "pip install numpy ml_dtypes" in swapped.stderr
    assert list(tmp_path.iterdir()) == []
    stats = run("inspect", "--stats", str(FIXTURES / "state_dict.pt"))
    assert stats.returncode == 2 and "pip install numpy ml_dtypes" in stats.stderr
    values = run("diff", "--values", str(FIXTURES / "state_dict.pt"), str(FIXTURES / "legacy.pt"))
    assert values.returncode == 2 and "pip install numpy ml_dtypes" in values.stderr
    copied = run("convert", str(FIXTURES / "state_dict.pt"), "--to", "pt", "-o",
                 str(tmp_path / "x.pt"))
    assert copied.returncode == 0, copied.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "x.pt"]


def test_convert_copying_bytes_needs_only_the_plain_install(tmp_path) -> None:
    """Contiguous tensors are copied and verified without numpy or safetensors: the same file
    as with them."""
    import safetensors.numpy

    plain, full = tmp_path / "plain.safetensors", tmp_path / "full.safetensors"
    source = FIXTURES / "checkpoint.pth.tar"
    code = (BLOCK_FULL + "from ckpt_tool.cli import main; "
            f"sys.argv = ['ckpt', 'convert', {str(source)!r}, '-o', {str(plain)!r}]; main()")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    with_full = subprocess.run([sys.executable, "-m", "ckpt_tool", "convert", str(source), "-o",
                                str(full)], capture_output=True, text=True, timeout=120)
    assert with_full.returncode == 0, with_full.stderr
    assert plain.read_bytes() == full.read_bytes()
    assert len(safetensors.numpy.load_file(str(plain))) > 1
