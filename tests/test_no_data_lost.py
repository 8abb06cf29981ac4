"""A full disk, and fuzzed sources, never leave a partial destination or a changed source."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import FIXTURES
from tests.mutations import MUTATIONS

FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))
from ckpt_tool.cli import main
sys.argv = ["ckpt", "convert", *sys.argv[1:]]
main()
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def four_megabytes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "model.pt"
    torch.save({f"w{i}": torch.arange(256 * 1024, dtype=torch.float32) for i in range(4)}, path)
    return path


@pytest.mark.parametrize("args", [["--to", "safetensors"], ["--to", "pth.tar"]],
                         ids=["safetensors", "copy"])
def test_full_disk_is_a_clear_error_and_leaves_nothing(args: list[str], four_megabytes: Path,
                                                       tmp_path: Path) -> None:
    before = digest(four_megabytes)
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([sys.executable, "-c", FULL_DISK, str(four_megabytes), *args,
                             "-o", f"{out}/"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "File too large" in result.stderr and "Traceback" not in result.stderr
    assert list(out.iterdir()) == []  # no destination, no temporary left behind
    assert digest(four_megabytes) == before


def test_fuzzed_sources_convert_or_fail_cleanly(tmp_path: Path) -> None:
    rng = random.Random(4)
    seeds = ["checkpoint.pth.tar", "legacy.pt", "model.safetensors", "views.pt", "tied.pt"]
    for index in range(40):
        source = tmp_path / f"s{index}.pt"
        source.write_bytes(MUTATIONS[index % len(MUTATIONS)](
            (FIXTURES / seeds[index % len(seeds)]).read_bytes(), rng))
        before = digest(source)
        out = tmp_path / f"out{index}"
        out.mkdir()
        result = subprocess.run(
            [sys.executable, "-m", "ckpt_tool", "convert", str(source), "--to", "safetensors",
             "-o", f"{out}/", "--quiet"], capture_output=True, text=True, timeout=60)
        assert result.returncode in (0, 2), result.stderr
        assert "Traceback" not in result.stderr
        produced = list(out.iterdir())
        if result.returncode == 2:
            assert produced == [] and result.stderr.startswith(f"ckpt: {source}: ")
        else:
            assert [p.suffix for p in produced] == [".safetensors"]
        assert digest(source) == before
