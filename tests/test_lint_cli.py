"""``ckpt lint`` through Typer's CliRunner: exit codes, every output format, selection,
pyproject configuration, --fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ckpt_tool.cli import app
from ckpt_tool.lint.findings import RULES
from ckpt_tool.lint.formats import OutputFormat
from tests.conftest import FIXTURES

runner = CliRunner()


def lint(*args: str):
    return runner.invoke(app, ["lint", *args])


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no pyproject.toml above it is read: tmp has none)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def copy(name: str, folder: Path, as_name: str | None = None) -> str:
    target = folder / (as_name or name)
    shutil.copyfile(FIXTURES / name, target)
    return str(target.relative_to(folder)) if target.is_relative_to(folder) else str(target)


@pytest.mark.parametrize(("files", "code"), [
    pytest.param(["state_dict.pt"], 0, id="clean"),
    pytest.param(["model.safetensors", "checkpoint.pth.tar"], 0, id="clean-several"),
    pytest.param(["malicious.pt"], 1, id="findings"),
    pytest.param(["state_dict.pth"], 1, id="pth"),
    pytest.param(["pathconfig.pth"], 0, id="path-config-left-alone"),
])
def test_exit_codes(files: list[str], code: int, workdir: Path) -> None:
    result = lint(*[copy(name, workdir) for name in files])
    assert result.exit_code == code, result.output


def test_text_lines(workdir: Path) -> None:
    path = copy("state_dict.pth", workdir)
    result = lint(path)
    assert result.stdout.startswith(f"{path}: CKPT001 pth-extension named *.pth")
    assert "\x1b[" not in result.stdout  # no colour when not on a terminal
    assert "1 finding in 1 of 1 files" in result.stderr


@pytest.mark.parametrize("head", [b"\x80", b"\x80\x02", b"P", b"PK\x03", b"c", b"\x08\x00"])
def test_a_few_bytes_are_a_finding_and_the_others_are_checked(head: bytes, workdir: Path) -> None:
    (workdir / "tiny.pt").write_bytes(head)
    result = lint("tiny.pt", copy("malicious.pt", workdir))
    assert result.exit_code == 1, result.output
    assert "tiny.pt: CKPT006 unreadable" in result.stdout
    assert "malicious.pt: CKPT002" in result.stdout


def test_a_fifo_is_a_finding_not_a_hang(workdir: Path) -> None:
    os.mkfifo(workdir / "model.pt")  # no writer: opening it for reading would block
    result = lint("model.pt")
    assert result.exit_code == 1, result.output
    assert "model.pt: CKPT006 unreadable not a regular file" in result.stdout


def test_text_is_one_line_per_finding_and_never_a_terminal_control(workdir: Path) -> None:
    """Messages quote names and errors taken from the file: a newline there must not start a
    line that looks like another finding, nor an escape sequence reach the terminal."""
    import zipfile

    with zipfile.ZipFile(workdir / "odd.pt", "w") as archive:
        archive.writestr("odd/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("evil\nodd.pt: CKPT000 fake \x1b]0;title\x07", b"")
    shutil.copyfile(Path(__file__).parent / "fuzz_corpus" / "newline-in-unpickler-error.pt",
                    workdir / "broken.pt")
    result = lint("odd.pt", "broken.pt")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith(("odd.pt: CKPT", "broken.pt: CKPT")) for line in lines)
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "evil\\nodd.pt" in result.stdout


def test_unreadable_file_is_a_finding_and_the_others_are_checked(workdir: Path) -> None:
    result = lint("missing.pt", copy("malicious.pt", workdir), copy("state_dict.pt", workdir))
    assert result.exit_code == 1
    assert "missing.pt: CKPT006 unreadable" in result.stdout
    assert "malicious.pt: CKPT002 code-execution" in result.stdout


@pytest.mark.parametrize("output_format", list(OutputFormat))
def test_every_format_renders(output_format: OutputFormat, workdir: Path) -> None:
    result = lint("--format", output_format.value, copy("malicious.pt", workdir))
    assert result.exit_code == 1
    assert "CKPT002" in result.stdout


def test_json(workdir: Path) -> None:
    result = lint("--format", "json", copy("malicious.pt", workdir))
    document = json.loads(result.stdout)
    assert document["schema"] == 1 and document["ckpt_version"]
    finding = document["findings"][0]
    assert set(finding) == {"path", "code", "rule", "severity", "message", "concise", "member",
                            "offset", "globals", "allow_list", "read_back_by"}
    assert finding["globals"] == ["builtins.exec"]
    assert (finding["code"], finding["rule"], finding["severity"]) == (
        "CKPT002", "code-execution", "error")
    assert finding["member"] == "malicious/data.pkl" and isinstance(finding["offset"], int)
    assert result.stderr == ""


def test_json_when_clean(workdir: Path) -> None:
    result = lint("--format", "json", copy("state_dict.pt", workdir))
    document = json.loads(result.stdout)
    assert document["findings"] == [] and document["summary"]["findings"] == 0
    assert document["files"]["checked"] == ["state_dict.pt"]


def test_github_annotations(workdir: Path) -> None:
    result = lint("--format", "github", copy("malicious.pt", workdir), copy("state_dict.pth",
                                                                          workdir))
    lines = result.stdout.splitlines()
    assert lines[0].startswith("::error file=malicious.pt,title=CKPT002 code-execution::")
    assert any(line.startswith("::warning file=state_dict.pth,title=CKPT001 pth-extension::")
               for line in lines)


def test_sarif_is_what_code_scanning_accepts(workdir: Path) -> None:
    path = copy("malicious.pt", workdir)
    result = lint("--format", "sarif", path)
    document = json.loads(result.stdout)
    assert document["version"] == "2.1.0" and "sarif-2.1.0" in document["$schema"]
    [run] = document["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == sorted(RULES)
    for rule in rules:
        assert rule["name"] == RULES[rule["id"]].slug
        assert rule["shortDescription"]["text"]
        assert rule["help"]["text"] and rule["id"] in rule["help"]["text"]
    result0 = run["results"][0]
    assert result0["ruleId"] == "CKPT002"
    assert rules[result0["ruleIndex"]]["id"] == "CKPT002"
    assert result0["level"] == "error"
    assert result0["message"]["text"]
    location = result0["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == path
    assert location["region"]["startLine"] == 1


def test_select_and_ignore_take_comma_lists(workdir: Path) -> None:
    path = copy("malicious.pt", workdir)
    assert lint("--ignore", "CKPT002,CKPT004", path).exit_code == 0
    assert lint("--ignore", "CKPT002", "--ignore", "weights-only-refused", path).exit_code == 0
    result = lint("--select", "CKPT004", path)
    assert [line.split()[1] for line in result.stdout.splitlines()] == ["CKPT004"]
    device = copy("device_cuda.pt", workdir)
    assert lint(device).exit_code == 0
    assert "CKPT008" in lint("--select", "ALL", device).stdout


@pytest.mark.parametrize("args", [
    pytest.param(["--select", "CKPT999"], id="unknown-code"),
    pytest.param(["--ignore", "nope"], id="unknown-slug"),
    pytest.param(["--format", "xml"], id="unknown-format"),
    pytest.param(["--set-limit", "bogus=1"], id="unknown-limit"),
])
def test_usage_errors_exit_2(args: list[str], workdir: Path) -> None:
    assert lint(*args, copy("state_dict.pt", workdir)).exit_code == 2


def write_config(folder: Path, body: str) -> None:
    (folder / "pyproject.toml").write_text(f"[project]\nname = 'x'\n\n[tool.ckpt.lint]\n{body}")


def test_pyproject_configuration(workdir: Path) -> None:
    (workdir / "models").mkdir()
    (workdir / "legacy").mkdir()
    copy("custom_model.pt", workdir / "models")
    copy("state_dict.pth", workdir / "legacy")
    copy("device_cuda.pt", workdir / "models")
    write_config(workdir, 'select = ["ALL"]\nignore = ["CKPT004"]\n'
                 'allowed-globals = ["fixture_models.TinyNet"]\n'
                 '[tool.ckpt.lint.per-file-ignores]\n"legacy/*" = ["pth-extension"]\n')
    result = lint("models", "legacy")
    assert result.exit_code == 1
    assert [line.split()[1] for line in result.stdout.splitlines()] == ["CKPT008"]
    # Command-line flags win over the file.
    assert "CKPT004" in lint("--select", "CKPT004", "models").stdout
    assert "CKPT001" in lint("--select", "CKPT001", "legacy").stdout
    assert lint("--ignore", "CKPT008", "models", "legacy").exit_code == 0


def test_nearest_pyproject_is_found_from_a_subfolder(workdir: Path, monkeypatch) -> None:
    write_config(workdir, 'ignore = ["CKPT001"]\n')
    (workdir / "sub").mkdir()
    copy("state_dict.pth", workdir / "sub")
    monkeypatch.chdir(workdir / "sub")
    assert lint("state_dict.pth").exit_code == 0


@pytest.mark.parametrize("body", [
    pytest.param('select = ["CKPT042"]\n', id="unknown-code"),
    pytest.param('selct = ["CKPT001"]\n', id="unknown-key"),
    pytest.param('ignore = "CKPT001"\n', id="not-a-list"),
    pytest.param('select = [\n', id="bad-toml"),
])
def test_bad_configuration_exits_2(body: str, workdir: Path) -> None:
    write_config(workdir, body)
    result = lint(copy("state_dict.pt", workdir))
    assert result.exit_code == 2 and "pyproject.toml" in result.stderr


def test_fix_renames_pth_to_pt(workdir: Path) -> None:
    copy("state_dict.pth", workdir, "model.pth")
    result = lint("--fix", "model.pth")
    assert result.exit_code == 1
    assert "renamed model.pth -> model.pt" in result.stderr
    assert (workdir / "model.pt").exists() and not (workdir / "model.pth").exists()
    assert lint("model.pt").exit_code == 0


def test_fix_refuses_to_overwrite(workdir: Path) -> None:
    copy("state_dict.pth", workdir, "model.pth")
    copy("legacy.pt", workdir, "model.pt")
    result = lint("--fix", "model.pth")
    assert result.exit_code == 1
    assert "not renamed model.pth: model.pt already exists" in result.stderr
    assert "CKPT001" in result.stdout
    assert (workdir / "model.pth").exists()


def test_fix_moves_the_other_findings_with_the_file(workdir: Path) -> None:
    copy("malicious.pt", workdir, "evil.pth")
    result = lint("--fix", "evil.pth")
    assert "evil.pt: CKPT002" in result.stdout and "CKPT001" not in result.stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_fix_uses_git_mv_for_tracked_files(workdir: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    copy("state_dict.pth", workdir, "model.pth")
    git("add", "model.pth")
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "init")
    result = lint("--fix", "model.pth")
    assert "(git mv)" in result.stderr
    assert git("diff", "--cached", "--name-status", "-M").split() == ["R100", "model.pth",
                                                                      "model.pt"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_fix_takes_a_file_name_literally_not_as_a_git_pattern(workdir: Path) -> None:
    subprocess.run(["git", "init", "-q"], check=True)
    copy("state_dict.pth", workdir, "model1.pth")
    subprocess.run(["git", "add", "model1.pth"], check=True)
    copy("state_dict.pth", workdir, "model[1].pth")  # untracked; as a pattern it names model1
    result = lint("--fix", "model[1].pth")
    assert "renamed model[1].pth -> model[1].pt" in result.stderr, result.stderr
    assert (workdir / "model[1].pt").exists() and (workdir / "model1.pth").exists()


def test_directory_is_walked(workdir: Path) -> None:
    (workdir / "sub").mkdir()
    copy("malicious.pt", workdir / "sub", "weights.data")  # found by content, not name
    copy("lfs_pointer.pt", workdir / "sub")  # found by name
    (workdir / "sub" / "README.md").write_text("hello")
    result = lint(".")
    assert "weights.data: CKPT002" in result.stdout
    assert "lfs_pointer.pt: CKPT006" in result.stdout
    assert "README" not in result.stdout


def test_lint_runs_without_torch_or_numpy() -> None:
    """The hook's environment is the plain install: lint must neither need nor import torch."""
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "from ckpt_tool.cli import run\n"
            f"status = run(['lint', '--format', 'json', {str(FIXTURES)!r}])\n"
            "loaded = [m for m in ('torch', 'numpy') if sys.modules.get(m) is not None]\n"
            "print(status, loaded, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "1 []", done.stderr
    assert json.loads(done.stdout)["findings"]
