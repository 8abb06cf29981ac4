"""README's set-up commands are the ones CI runs, and its JSON example is what inspect prints."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from ckpt_tool.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def setup_command(marker: str) -> str:
    match = re.search(rf"<!-- setup:{marker} -->\n```sh\n(.+?)\n```", README)
    assert match, f"README has no setup:{marker} block"
    return match.group(1)


def test_ci_runs_the_readme_commands_in_order() -> None:
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    install, test = setup_command("install"), setup_command("test")
    assert install in ci_lines and test in ci_lines
    assert ci_lines.index(install) < ci_lines.index(test)
    assert "pip install torch==2.13.0" in test.split("&&")[1]  # torch before the extras


def test_json_example_matches_real_output(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    block = re.search(r"### The JSON document.*?```json\n(.+?)\n```", README, re.S)
    assert block
    example = json.loads(block.group(1))
    result = CliRunner().invoke(app, ["inspect", "--json", "fixtures/checkpoint.pth.tar"])
    real = json.loads(result.stdout)
    assert example["total"] == real["total"]
    example_file, real_file = example["files"][0], real["files"][0]
    for key, value in example_file.items():
        if key in ("tensors", "globals"):
            assert value[0] == real_file[key][0], key
        elif key == "metadata":
            assert value.items() <= real_file[key].items()
        else:
            assert value == real_file[key], key
