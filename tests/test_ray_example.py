"""examples/ray_lint.py on a local Ray instance (ray.init(num_cpus=2)): local files and URLs in,
one row per file out, each row lint_one's result."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ckpt_tool.api import lint_one
from tests.conftest import FIXTURES
from tests.http_server import serve

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "ray_lint.py"
NAMES = ["checkpoint.pth.tar", "legacy.pt", "model.safetensors", "malicious.pt",
         "state_dict.pth", "not_a_checkpoint.pt", "custom_model.pt"]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="ray is not installed (pip install 'ray[data]')")


@pytest.mark.parametrize("output_format", ["parquet", "jsonl"])
def test_the_ray_example_lints_every_file(tmp_path: Path, output_format: str,
                                          canary_dir: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    for name in NAMES:
        shutil.copy(FIXTURES / name, folder / name)
    out = tmp_path / "out"
    with serve(folder) as server:
        urls = [f"{server.url}/{name}" for name in NAMES[:4]]
        local = [str(folder / name) for name in NAMES[4:]] + [str(folder / "missing.pt")]
        sources = tmp_path / "sources.txt"
        sources.write_text("\n".join(urls + local) + "\n")
        done = subprocess.run(
            [sys.executable, str(EXAMPLE), str(sources), "--output", str(out), "--format",
             output_format, "--num-cpus", "2"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        rows = read_rows(out, output_format)
        expected = {path: lint_one(path) for path in urls + local}
    assert sorted(row["path"] for row in rows) == sorted(expected)
    for row in rows:
        result = json.loads(row["result"])
        want = expected[row["path"]]
        assert result == want
        assert row["exit_code"] == want["exit_code"]
        assert row["findings"] == len(want["findings"])
        assert row["codes"] == ",".join(sorted({f["code"] for f in want["findings"]}))
        assert row["error"] == ""
        if row["path"].startswith("http"):
            assert 1 <= row["requests"] <= 3
    codes = {Path(row["path"]).name: row["codes"] for row in rows}
    assert codes["malicious.pt"] == "CKPT002,CKPT004"
    assert codes["missing.pt"] == "CKPT006" and codes["model.safetensors"] == ""
    assert not (canary_dir / "ckpt_canary.txt").exists()


def read_rows(out: Path, output_format: str) -> list[dict]:
    if output_format == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(out).to_pylist()
    rows = []
    for part in sorted(out.iterdir()):
        rows += [json.loads(line) for line in part.read_text().splitlines() if line.strip()]
    return rows
