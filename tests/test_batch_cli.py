"""Batch runs: --from-list, --format jsonl (a line per file, as each is done), --jobs, --resume,
for lint, inspect and convert."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ckpt_tool.api import inspect_one, lint_one
from ckpt_tool.cli import app
from tests.conftest import FIXTURES
from tests.http_server import serve

runner = CliRunner()
NAMES = ["checkpoint.pth.tar", "legacy.pt", "model.safetensors", "malicious.pt",
         "custom_model.pt", "state_dict.pth", "not_a_checkpoint.pt", "metadata.pt"]


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, list[str]]:
    """The sample files copied to a folder, and a list file naming them (and a missing one)."""
    folder = tmp_path / "files"
    folder.mkdir()
    paths = []
    for name in NAMES:
        shutil.copy(FIXTURES / name, folder / name)
        paths.append(str(folder / name))
    paths.append(str(folder / "missing.pt"))
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(paths) + "\n\n")
    return listing, paths


def lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines()]


def ckpt(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in its own process (worker processes need a real one)."""
    return subprocess.run([sys.executable, "-m", "ckpt_tool", *args], capture_output=True,
                          text=True, input=stdin, timeout=300)


@pytest.mark.parametrize(("command", "api"), [("lint", lint_one), ("inspect", inspect_one)])
def test_jsonl_with_two_jobs_gives_each_file_one_line_equal_to_the_api(
        corpus, command: str, api, canary_dir: Path) -> None:
    listing, paths = corpus
    done = ckpt(command, "--from-list", str(listing), "--format", "jsonl", "--jobs", "2")
    results = lines(done.stdout)
    assert sorted(result["path"] for result in results) == sorted(paths)
    expected = {path: api(path) for path in paths}
    for result in results:
        assert result == expected[result["path"]]
    # lint: findings (an unreadable file is one); inspect: a file could not be read
    assert done.returncode == (1 if command == "lint" else 2)
    assert not (canary_dir / "ckpt_canary.txt").exists()


def test_lint_exit_codes_in_a_batch(corpus) -> None:
    listing, _ = corpus
    findings = ckpt("lint", "--from-list", str(listing), "--format", "jsonl", "-j", "2")
    assert findings.returncode == 1, findings.stderr  # findings; an unreadable file is one
    clean = ckpt("lint", "--format", "jsonl", "-j", "2", str(FIXTURES / "checkpoint.pth.tar"),
                 str(FIXTURES / "model.safetensors"))
    assert clean.returncode == 0 and len(lines(clean.stdout)) == 2


@pytest.mark.parametrize("command", ["lint", "inspect"])
def test_from_list_reads_standard_input_and_joins_the_arguments(corpus, command: str) -> None:
    listing, paths = corpus
    extra = str(FIXTURES / "bigendian.pt")
    result = runner.invoke(app, [command, "--from-list", "-", "--format", "jsonl", extra],
                           input=listing.read_text())
    assert [entry["path"] for entry in lines(result.stdout)] == [extra, *paths]


@pytest.mark.parametrize("command", ["lint", "inspect"])
def test_one_document_is_the_same_with_or_without_jobs(corpus, command: str) -> None:
    listing, _ = corpus
    flag = "--json" if command == "inspect" else "--format=json"
    one = json.loads(ckpt(command, flag, "--from-list", str(listing)).stdout)
    two = json.loads(ckpt(command, flag, "--from-list", str(listing), "--jobs", "2").stdout)
    assert one == two


@pytest.mark.parametrize("command", ["lint", "inspect"])
def test_resume_skips_what_is_done_and_redoes_what_failed(corpus, tmp_path: Path,
                                                          command: str) -> None:
    listing, paths = corpus
    results = tmp_path / "results.jsonl"
    first = runner.invoke(app, [command, "--from-list", str(listing), "--format", "jsonl"])
    kept = first.stdout.splitlines()[:3]
    # an interrupted run: three results, then half of a fourth
    results.write_text("\n".join(kept) + "\n" + first.stdout.splitlines()[3][:40])
    again = runner.invoke(app, [command, "--from-list", str(listing), "--format", "jsonl",
                                "--resume", str(results)])
    redone = [entry["path"] for entry in lines(again.stdout)]
    assert redone == paths[3:]
    assert f"3 of {len(paths)} files already in" in again.stderr
    done_again = runner.invoke(app, [command, "--from-list", str(listing), "--format", "jsonl",
                                     "--resume", str(results)])
    assert len(lines(done_again.stdout)) == len(paths) - 3  # nothing was appended to results


def test_resume_appending_to_its_own_file_ends_a_cut_line_first(corpus, tmp_path: Path) -> None:
    listing, paths = corpus
    results = tmp_path / "results.jsonl"
    full = ckpt("lint", "--from-list", str(listing), "--format", "jsonl").stdout.splitlines()
    results.write_text(full[0] + "\n" + full[1][:25])  # killed while writing the second line
    with results.open("a") as out:
        subprocess.run([sys.executable, "-m", "ckpt_tool", "lint", "--from-list", str(listing),
                        "--format", "jsonl", "--resume", str(results), "-q"], stdout=out,
                       check=False, timeout=300)
    written = results.read_text().splitlines()
    parsed = []
    for line in written:
        try:
            parsed.append(json.loads(line)["path"])
        except ValueError:
            assert line == full[1][:25]
    assert sorted(parsed) == sorted(paths)


def test_resume_of_a_missing_file_is_a_first_run(corpus, tmp_path: Path) -> None:
    listing, paths = corpus
    result = runner.invoke(app, ["lint", "--from-list", str(listing), "--format", "jsonl",
                                 "--resume", str(tmp_path / "none.jsonl")])
    assert len(lines(result.stdout)) == len(paths)


def test_convert_batch_with_jobs_and_resume(corpus, tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    listing, paths = corpus
    out = tmp_path / "out"
    results = tmp_path / "converted.jsonl"
    first = ckpt("convert", "--from-list", str(listing), "-o", str(out), "--format", "jsonl",
                 "--jobs", "2")
    entries = lines(first.stdout)
    assert sorted(entry["path"] for entry in entries) == sorted(paths)
    converted = [entry for entry in entries if entry["error"] is None]
    assert converted and all(Path(entry["files"][0]["outputs"][0]).is_file()
                             for entry in converted)
    assert first.returncode == 2  # not every file converts (the missing one, the HTML page)
    results.write_text(first.stdout)
    again = ckpt("convert", "--from-list", str(listing), "-o", str(out), "--format", "jsonl",
                 "--resume", str(results))
    assert sorted(entry["path"] for entry in lines(again.stdout)) == sorted(
        entry["path"] for entry in entries if entry["error"] is not None)
    document = json.loads(ckpt("convert", "--json", "--force", str(FIXTURES / "legacy.pt"),
                               "-o", str(out / "one.safetensors")).stdout)
    assert document["exit_code"] == 0 and document["summary"]["converted"] == 1


def test_urls_run_in_threads(corpus) -> None:
    _, paths = corpus
    folder = Path(paths[0]).parent
    with serve(folder) as server:
        urls = [f"{server.url}/{name}" for name in NAMES]
        result = runner.invoke(app, ["lint", "--format", "jsonl", "--jobs", "4", *urls])
    entries = {entry["path"]: entry for entry in lines(result.stdout)}
    assert set(entries) == set(urls)
    for name, url in zip(NAMES, urls, strict=True):
        local = lint_one(str(folder / name))
        assert [f["code"] for f in entries[url]["findings"]] == [
            f["code"] for f in local["findings"]], name
        assert 1 <= entries[url]["reads"][0]["requests"] <= 3


@pytest.mark.parametrize(("args", "message"), [
    (["lint", "--resume", "r.jsonl", "x.pt"], "--resume goes with --format jsonl"),
    (["lint", "--fix", "--format", "jsonl", "x.pt"], "not with --format jsonl"),
    (["lint"], "give at least one PATH"),
    (["inspect", "--jobs", "2", "x.pt"], "--jobs goes with --format json or jsonl"),
    (["inspect", "--from-list", "/nonexistent/list.txt"], "--from-list /nonexistent/list.txt"),
    (["convert", "--resume", "r.jsonl", "x.pt"], "--resume goes with --format jsonl"),
], ids=["resume-text", "fix-jsonl", "no-paths", "jobs-view", "no-list", "convert-resume"])
def test_batch_usage_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.stderr
