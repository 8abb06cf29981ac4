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


def test_cpu_line_differs_only_by_the_pytorch_cpu_index() -> None:
    plain, cpu = setup_command("test"), setup_command("test-cpu")
    assert cpu == plain.replace(
        "pip install torch==2.13.0 ",
        "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu ")
    assert cpu != plain


def github_anchors(markdown: str) -> dict[str, int]:
    """The anchors GitHub gives the headings (anchor -> heading level): lower case, punctuation
    dropped, spaces to hyphens, a repeated heading numbered -1, -2..."""
    anchors: dict[str, int] = {}
    counts: dict[str, int] = {}
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        level = len(line) - len(line.lstrip("#"))
        title = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        seen = counts.get(slug, 0)
        counts[slug] = seen + 1
        anchors[slug if seen == 0 else f"{slug}-{seen}"] = level
    return anchors


def test_table_of_contents_lists_every_section_and_every_link_resolves() -> None:
    anchors = github_anchors(README)
    links = set(re.findall(r"\]\(#([^)]+)\)", README))
    assert links <= anchors.keys(), links - anchors.keys()
    contents = README[README.index("Contents:"):README.index("## Set-up")]
    for anchor, level in anchors.items():
        if level == 2:
            assert f"](#{anchor})" in contents, anchor


def test_rules_section_is_the_text_ckpt_rule_prints() -> None:
    from ckpt_tool.lint.rule_docs import rules_markdown

    assert rules_markdown().strip() in README


def test_no_advice_to_install_ckpt_from_a_registry() -> None:
    """ckpt is not published: installs are from the clone; messages name published packages."""
    texts = [README, *(path.read_text(encoding="utf-8")
                       for path in (ROOT / "ckpt_tool").rglob("*.py"))]
    for text in texts:
        assert not re.search(r"pip install '?ckpt-tool", text)
        assert "pip install ckpt" not in text
