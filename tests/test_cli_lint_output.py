"""``ckpt lint``'s output (issue 13, points 5 and 6): concise lines by default, the whole message
with ``--output-format full``, ``ckpt rule``, ``--statistics``, ``--exit-zero``, ``-q``,
structured JSON, a warning when nothing was checked, and ``--fix`` leaving alone the files a
known producer reads back by name."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ckpt_tool.cli import app
from ckpt_tool.lint.findings import RULES
from tests.conftest import FIXTURES

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
TRAINER = FIXTURES / "producers" / "transformers" / "trainer" / "checkpoint-2"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("malicious.pt", "custom_model.pt", "state_dict.pth", "legacy.pt"):
        shutil.copyfile(FIXTURES / name, tmp_path / name)
    return tmp_path


def lint(*args: str):
    return runner.invoke(app, ["lint", *args])


FILES = ("malicious.pt", "custom_model.pt", "state_dict.pth", "legacy.pt")


def test_concise_lines_by_default(workdir: Path) -> None:
    result = lint(*FILES)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    assert all(re.match(r"^[\w.]+: CKPT00\d [a-z-]+ \S", line) for line in lines)
    assert max(len(line.split(" ", 3)[3]) for line in lines) <= 160  # the message part
    ckpt004 = next(line for line in lines if line.startswith("custom_model.pt: CKPT004"))
    assert ckpt004 == ("custom_model.pt: CKPT004 weights-only-refused refused by "
                       "torch.load(weights_only=True): 2 globals off its allow-list "
                       "(fixture_models.TinyNet, torch.nn.modules.linear.Linear)")


@pytest.mark.parametrize("flag", ["--output-format", "--format"])
def test_full_output_is_the_whole_message(workdir: Path, flag: str) -> None:
    result = lint(flag, "full", *FILES)
    ckpt004 = next(line for line in result.stdout.splitlines() if "CKPT004" in line
                   and line.startswith("custom_model.pt"))
    assert "`torch.serialization.add_safe_globals([torch.nn.modules.linear.Linear])`" in ckpt004
    assert len(ckpt004) > 300


def test_rule_prints_the_readme_section() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code, rule in RULES.items():
        for selector in (code, rule.slug, code.lower()):
            result = runner.invoke(app, ["rule", selector])
            assert result.exit_code == 0, result.output
            assert result.stdout.startswith(f"#### {code} {rule.slug}\n")
            assert result.stdout.strip() in readme
    assert runner.invoke(app, ["rule", "CKPT999"]).exit_code == 2


def test_rule_list_and_json() -> None:
    listed = runner.invoke(app, ["rule"]).stdout.splitlines()
    assert [line.split()[0] for line in listed] == sorted(RULES)
    document = json.loads(runner.invoke(app, ["rule", "--json", "CKPT002"]).stdout)
    assert document[0]["code"] == "CKPT002" and "**Why it matters.**" in document[0]["explanation"]
    everything = runner.invoke(app, ["rule", "--all"]).stdout
    assert everything.count("#### CKPT") == len(RULES)


def test_statistics(workdir: Path) -> None:
    result = lint("--statistics", *FILES)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "2  CKPT004  weights-only-refused", "1  CKPT001  pth-extension  [1 fixable]",
        "1  CKPT002  code-execution", "1  CKPT003  custom-class", "1  CKPT005  legacy-format"]
    rows = json.loads(lint("--statistics", "--format", "json", *FILES).stdout)
    assert rows[0] == {"code": "CKPT004", "rule": "weights-only-refused", "count": 2,
                       "fixable": 0}


def test_exit_zero_and_quiet(workdir: Path) -> None:
    result = lint("--exit-zero", "-q", *FILES)
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 6 and result.stderr == ""
    assert lint("--exit-zero", "--output-format", "full", "malicious.pt").exit_code == 0


def test_json_has_structured_fields(workdir: Path) -> None:
    (workdir / "notes.txt").write_text("not a checkpoint\n")
    document = json.loads(lint("--format", "json", *FILES, "notes.txt").stdout)
    assert document["schema"] == 1 and document["ckpt_version"]
    ckpt004 = next(f for f in document["findings"]
                   if f["code"] == "CKPT004" and f["path"] == "custom_model.pt")
    assert ckpt004["globals"] == ["fixture_models.TinyNet", "torch.nn.modules.linear.Linear"]
    assert ckpt004["allow_list"] == ["torch.nn.modules.linear.Linear"]
    assert ckpt004["concise"] and "add_safe_globals" in ckpt004["message"]
    summary = document["summary"]
    assert summary["findings"] == 6 and summary["by_code"]["CKPT004"] == 2
    assert summary["by_severity"] == {"error": 1, "warning": 5}
    assert (summary["files_checked"], summary["files_with_findings"],
            summary["files_skipped"]) == (4, 4, 1)
    assert document["files"]["checked"] == list(FILES)
    assert document["files"]["skipped"][0]["path"] == "notes.txt"


def test_nothing_to_check_is_a_warning_and_exit_0(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# hello\n")
    result = lint(str(tmp_path))
    assert result.exit_code == 0
    assert "warning: no checkpoint files to check" in result.stderr
    assert "1 file that are not checkpoints" in result.stderr or "not checkpoints" in result.stderr
    assert lint("-q", str(tmp_path)).stderr == ""


def copy_trainer_checkpoint(tmp_path: Path) -> Path:
    folder = tmp_path / "checkpoint-2"
    shutil.copytree(TRAINER, folder)
    shutil.copyfile(FIXTURES / "state_dict.pt", folder / "extra.pth")
    return folder


def test_fix_leaves_the_trainer_rng_state_alone(tmp_path: Path) -> None:
    folder = copy_trainer_checkpoint(tmp_path)
    found = lint("--output-format", "full", str(folder))
    rng = next(line for line in found.stdout.splitlines() if "rng_state.pth" in line)
    assert "the transformers Trainer reads it back by this exact name" in rng
    assert "silently skips restoring the RNG state" in rng
    fixed = lint("--fix", str(folder))
    assert fixed.exit_code == 1
    assert (folder / "rng_state.pth").exists() and not (folder / "rng_state.pt").exists()
    assert (folder / "extra.pt").exists() and not (folder / "extra.pth").exists()
    assert "not renamed" in fixed.stderr and "--unsafe-fixes" in fixed.stderr
    unsafe = lint("--fix", "--unsafe-fixes", str(folder))
    assert unsafe.exit_code == 1
    assert (folder / "rng_state.pt").exists()


@pytest.mark.parametrize(("place", "pointer", "producer"), [
    pytest.param("work/model_0004999.pth", "model_0004999.pth", "fvcore/detectron2",
                 id="fvcore-last-checkpoint"),
    pytest.param("work/epoch_12.pth", "{folder}/epoch_12.pth", "mmengine",
                 id="mmengine-last-checkpoint"),
    pytest.param("cache/hub/checkpoints/resnet18-f37072fd.pth", None, "torch.hub",
                 id="torch-hub-cache"),
    pytest.param("work/rng_state_3.pth", None, "transformers Trainer", id="trainer-rank"),
])
def test_read_back_producers(tmp_path: Path, place: str, pointer: str | None,
                             producer: str) -> None:
    path = tmp_path / place
    path.parent.mkdir(parents=True)
    shutil.copyfile(FIXTURES / "state_dict.pt", path)
    if pointer is not None:
        (path.parent / "last_checkpoint").write_text(pointer.format(folder=path.parent))
    document = json.loads(lint("--format", "json", str(path)).stdout)
    [finding] = document["findings"]
    assert producer in finding["read_back_by"]
    assert lint("--fix", str(path)).exit_code == 1 and path.exists()


def test_a_last_checkpoint_naming_another_file_is_no_caveat(tmp_path: Path) -> None:
    path = tmp_path / "model_0000999.pth"
    shutil.copyfile(FIXTURES / "state_dict.pt", path)
    (tmp_path / "last_checkpoint").write_text("model_0004999.pth")
    assert lint("--fix", str(path)).exit_code == 1
    assert not path.exists() and (tmp_path / "model_0000999.pt").exists()
