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
