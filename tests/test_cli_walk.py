"""Folder walks (issue 13, point 4): ``ckpt lint .`` and ``ckpt inspect .`` pass over version
control, virtual environments, caches and installed packages, honour ``.gitignore`` (a tracked
file is still checked), ``--exclude``/``--extend-exclude`` and the ``exclude`` configuration
keys, and ``--show-files`` says what they would read."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ckpt_tool.cli import app
from tests.conftest import FIXTURES

runner = CliRunner()
PASSED_OVER = [".git/objects/evil.pt", ".venv/lib/python3.11/site-packages/torch/test/evil.pt",
               "venv/evil.pt", "node_modules/pkg/evil.pt", "__pycache__/evil.pt",
               ".mypy_cache/evil.pt", ".ruff_cache/evil.pt", "lib/site-packages/evil.pt",
               "myenv/evil.pt", ".tox/py311/evil.pt"]
"""Places a project's own checkpoints do not live (myenv/ holds a pyvenv.cfg)."""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with one checkpoint of its own and malicious files everywhere it should not
    look; the working directory."""
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(FIXTURES / "state_dict.pt", tmp_path / "model.pt")
    for place in PASSED_OVER:
        (tmp_path / place).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / "malicious.pt", tmp_path / place)
    (tmp_path / "myenv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    return tmp_path


def lint(*args: str):
    return runner.invoke(app, ["lint", *args])


def shown_files(command: str, *args: str) -> list[str]:
    result = runner.invoke(app, [command, "--show-files", *args])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_default_excludes(project: Path) -> None:
    result = lint(".")
    assert result.exit_code == 0, result.output
    assert "1 file checked, nothing to report" in result.stderr
    assert shown_files("lint", ".") == ["model.pt"]
    assert shown_files("inspect", ".") == ["./model.pt"]


def test_show_files_says_what_was_passed_over_and_why(project: Path) -> None:
    result = runner.invoke(app, ["lint", "--show-files", "."])
    assert "passed over .venv: excluded by '.venv'" in result.stderr
    assert "passed over myenv: a Python environment" in result.stderr
    assert "passed over node_modules: excluded by 'node_modules'" in result.stderr


def test_named_files_are_checked_even_inside_excluded_folders(project: Path) -> None:
    result = lint(".venv/lib/python3.11/site-packages/torch/test/evil.pt")
    assert result.exit_code == 1 and "CKPT002" in result.stdout


def test_force_exclude_applies_excludes_to_named_files(project: Path) -> None:
    result = lint("--force-exclude", "node_modules/pkg/evil.pt", "model.pt")
    assert result.exit_code == 0, result.output
    assert "1 file checked" in result.stderr


def test_exclude_replaces_the_defaults_and_extend_exclude_adds(project: Path) -> None:
    everything = shown_files("lint", "--exclude", ".git", ".")
    assert "node_modules/pkg/evil.pt" in everything and ".git/objects/evil.pt" not in everything
    (project / "data").mkdir()
    shutil.copyfile(FIXTURES / "malicious.pt", project / "data" / "x.pt")
    assert "data/x.pt" in shown_files("lint", ".")
    assert shown_files("lint", "--extend-exclude", "data", ".") == ["model.pt"]
    assert shown_files("lint", "--extend-exclude", "data/*.pt,other", ".") == ["model.pt"]
    assert shown_files("inspect", "--extend-exclude", "data", ".") == ["./model.pt"]


@pytest.mark.parametrize("table", ["[tool.ckpt]\nextend-exclude = [\"data\"]\n",
                                   "[tool.ckpt.lint]\nexclude = [\"data\"]\n"])
def test_exclude_configuration_keys(project: Path, table: str) -> None:
    (project / "data").mkdir()
    shutil.copyfile(FIXTURES / "malicious.pt", project / "data" / "x.pt")
    (project / "pyproject.toml").write_text(table)
    result = lint(".")
    assert result.exit_code == 0, result.output
    if table.startswith("[tool.ckpt]\n"):  # the project's walk: every command
        assert shown_files("inspect", ".") == ["./model.pt"]


def test_exclude_configuration_replaces_defaults(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.ckpt]\nexclude = [".git"]\n')
    assert "venv/evil.pt" in shown_files("lint", ".")


def test_unknown_configuration_key_is_a_usage_error(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.ckpt]\nexclud = ["data"]\n')
    result = lint(".")
    assert result.exit_code == 2 and "unknown key(s) exclud" in result.stderr


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                   cwd=cwd, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_gitignore_is_honoured_but_tracked_files_are_checked(project: Path) -> None:
    git(project, "init", "-q")
    (project / ".gitignore").write_text("*.pt\n!model.pt\nscratch/\n")
    (project / "scratch").mkdir()
    shutil.copyfile(FIXTURES / "malicious.pt", project / "scratch" / "tmp.bin")
    shutil.copyfile(FIXTURES / "malicious.pt", project / "evil.pt")
    shutil.copyfile(FIXTURES / "malicious.pt", project / "tracked.pt")
    git(project, "add", "-f", "tracked.pt", "model.pt")  # force-added despite *.pt
    files = shown_files("lint", ".")
    assert files == ["model.pt", "tracked.pt"]
    result = lint(".")
    assert result.exit_code == 1 and "tracked.pt: CKPT002" in result.stdout
    assert "evil.pt" not in result.stdout
    assert "evil.pt" in shown_files("lint", "--no-respect-gitignore", ".")
    nested = project / "sub"
    nested.mkdir()
    (nested / ".gitignore").write_text("!evil.pt\n")
    shutil.copyfile(FIXTURES / "malicious.pt", nested / "evil.pt")
    assert "sub/evil.pt" in shown_files("lint", ".")  # a deeper .gitignore re-includes it


def test_gitignore_outside_a_repository_is_not_read(project: Path) -> None:
    shutil.rmtree(project / ".git")
    (project / ".gitignore").write_text("model.pt\n")
    assert shown_files("lint", ".") == ["model.pt"]


def test_lint_json_lists_checked_skipped_and_excluded(project: Path) -> None:
    (project / "notes.txt").write_text("hello\n")
    result = lint("--format", "json", ".")
    document = json.loads(result.stdout)
    assert document["files"]["checked"] == ["model.pt"]
    assert {"path": "notes.txt", "reason": "neither named nor shaped like a checkpoint or "
            "pickle"} in document["files"]["skipped"]
    excluded = {entry["path"] for entry in document["files"]["excluded"]}
    assert {".git", ".venv", "node_modules", "myenv"} <= excluded
    assert document["summary"] | {} == document["summary"]
    assert (document["summary"]["files_checked"], document["summary"]["files_skipped"]) == (1, 1)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_what_gitignore_hides_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints are often in .gitignore: a walk that finds nothing else says so."""
    monkeypatch.chdir(tmp_path)
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("*.pt\n")
    (tmp_path / "checkpoints").mkdir()
    shutil.copyfile(FIXTURES / "state_dict.pt", tmp_path / "checkpoints" / "a.pt")
    hint = "(1 path ignored by .gitignore: --no-respect-gitignore reads them)"
    inspected = runner.invoke(app, ["inspect", "checkpoints"])
    assert inspected.exit_code == 2 and hint in inspected.stderr
    linted = lint("checkpoints")
    assert linted.exit_code == 0 and hint in linted.stderr
    assert runner.invoke(app, ["inspect", "--no-respect-gitignore", "checkpoints"]).exit_code == 0
