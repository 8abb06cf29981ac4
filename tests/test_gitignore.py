"""The .gitignore matcher against gitignore(5)'s own examples, and git itself where installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ckpt_tool.discovery.gitignore import parse

CASES = [
    pytest.param("*.pt", "a/b/model.pt", False, True, id="name-at-any-depth"),
    pytest.param("/build", "build", True, True, id="anchored"),
    pytest.param("/build", "src/build", True, False, id="anchored-not-deeper"),
    pytest.param("doc/*.txt", "doc/notes.txt", False, True, id="slash-anchors"),
    pytest.param("doc/*.txt", "doc/server/arch.txt", False, False, id="star-stops-at-slash"),
    pytest.param("**/foo", "a/b/foo", False, True, id="leading-double-star"),
    pytest.param("abc/**", "abc/x/y.pt", False, True, id="trailing-double-star"),
    pytest.param("a/**/b", "a/b", True, True, id="middle-double-star-zero"),
    pytest.param("a/**/b", "a/x/y/b", True, True, id="middle-double-star-many"),
    pytest.param("out/", "out", False, False, id="folders-only-not-a-file"),
    pytest.param("out/", "x/out", True, True, id="folders-only"),
    pytest.param("m?del.pt", "model.pt", False, True, id="question-mark"),
    pytest.param("[!a]x", "bx", False, True, id="negated-class"),
    pytest.param("\\#lit", "#lit", False, True, id="escaped-hash"),
    pytest.param("trailing   ", "trailing", False, True, id="trailing-spaces-stripped"),
]


@pytest.mark.parametrize(("pattern", "path", "is_folder", "ignored"), CASES)
def test_pattern(pattern: str, path: str, is_folder: bool, ignored: bool) -> None:
    [compiled] = parse(pattern)
    matched = bool(compiled.regex.match(path)) and (is_folder or not compiled.folders_only)
    assert matched is ignored


def test_comments_blank_lines_and_negation() -> None:
    patterns = parse("# comment\n\n*.pt\n!keep.pt\n")
    assert [p.text for p in patterns] == ["*.pt", "!keep.pt"]
    assert patterns[1].negated and not patterns[0].negated


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize(("pattern", "path", "is_folder", "ignored"), CASES)
def test_git_agrees(pattern: str, path: str, is_folder: bool, ignored: bool,
                    tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".gitignore").write_text(pattern + "\n")
    target = tmp_path / path
    if is_folder:
        target.mkdir(parents=True, exist_ok=True)
        (target / "inside").write_text("")
        query = f"{path}/inside"
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("")
        query = path
    done = subprocess.run(["git", "check-ignore", "-q", query], cwd=tmp_path)
    assert (done.returncode == 0) is ignored
