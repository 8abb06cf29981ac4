"""The measured sections: start-up, inspect, lint, convert, convert a sharded model, batch and
remote.

Every command runs as its own process, start-up included, the way a user runs it. The
alternatives are what a user would otherwise reach for: torch.load, picklescan, fickling, cp,
and torch.load + safetensors.torch.save_file.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import statistics
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_data import SCALING_KEYS, Dataset, lint_sample
from bench_proc import (
    CHILD_ENV,
    Command,
    Measurement,
    NotAvailable,
    RunResult,
    last_line,
    measure,
    measure_together,
    run_once,
)
from bench_report import (
    MIB,
    Row,
    Section,
    Target,
    bytes_below,
    ms_below,
    ratio_at_least,
    ratio_at_most,
    seconds,
    size,
    within,
)

Result = Measurement | str

# Scripts run with `python -c SCRIPT ARGS...`; paths arrive in sys.argv, never in the code.
TORCH_LIST = """
import sys, torch
def walk(prefix, obj):
    if isinstance(obj, dict):
        for key, value in obj.items():
            walk(f"{prefix}{key}.", value)
    elif isinstance(obj, torch.Tensor):
        print(prefix[:-1], tuple(obj.shape))
walk("", torch.load(sys.argv[1], weights_only=True, mmap=sys.argv[2] == "mmap"))
"""

TORCH_CONVERT = """
import sys, torch
from safetensors.torch import save_file
obj = torch.load(sys.argv[1], weights_only=True)
save_file(obj.get("state_dict", obj), sys.argv[2], metadata={"format": "pt"})
"""

# torch's own consolidation of a DCP folder: one torch.save file of the whole state.
DCP_TO_TORCH_SAVE = """
import sys, warnings
warnings.simplefilter("ignore")
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
dcp_to_torch_save(sys.argv[1], sys.argv[2])
"""

# An HF index's shards loaded with torch and written as safetensors shards the way
# transformers' save_pretrained writes them (huggingface_hub.save_torch_state_dict).
HF_SHARDS_TO_SAFETENSORS = """
import json, os, sys, torch
from huggingface_hub import save_torch_state_dict
folder = sys.argv[1]
index = json.load(open(os.path.join(folder, "pytorch_model.bin.index.json")))
state = {}
for shard in sorted(set(index["weight_map"].values())):
    state.update(torch.load(os.path.join(folder, shard), weights_only=True))
os.makedirs(sys.argv[2], exist_ok=True)
save_torch_state_dict(state, sys.argv[2])
"""

# fickling's own CLI scans a torch zip's pickle members and a raw pickle whole; the same in
# one process over every file (one `fickling --check-safety` process per file would be slower).
FICKLING_SCAN = """
import os, sys, zipfile
import fickling
paths = sorted(os.path.join(d, f) for d, _, names in os.walk(sys.argv[1]) for f in names)
flagged = 0
for path in paths:
    if zipfile.is_zipfile(path):
        results = list(fickling.scan_zip_archive(path, graceful=True).values())
    else:
        results = [fickling.scan_file(path, graceful=True)]
    flagged += not all(results)
print(f"scanned {len(paths)} flagged {flagged}")
"""

# Runs the ckpt CLI in-process, then reports whether torch got imported on the way.
TORCH_PROBE = """
import sys
from ckpt_tool.cli import run
code = run(sys.argv[1:])
sys.stdout.flush()
sys.stderr.write(f"\\nckpt-bench exit={code} torch={'torch' in sys.modules}\\n")
"""


@dataclass(frozen=True)
class Tools:
    python: str
    ckpt: list[str]
    picklescan: list[str]
    cp: str

    @classmethod
    def find(cls) -> Tools:
        return cls(
            python=sys.executable,
            ckpt=_script("ckpt", "ckpt_tool"),
            picklescan=_script("picklescan", "picklescan"),
            cp=shutil.which("cp") or "cp",
        )


def _script(name: str, module: str) -> list[str]:
    """The console script beside this interpreter, else on PATH, else ``python -m module``."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, "-m", module]


@dataclass(frozen=True)
class Context:
    data: dict[str, Dataset]
    tools: Tools
    runs: int
    timeout: float
    data_dir: Path
    log: Callable[[str], None]

    @property
    def scratch(self) -> Path:
        """Convert outputs go here; removed after the section."""
        return self.data_dir / "convert-out"

    def attempt(self, what: str, command: Command) -> Result:
        self.log(what)
        try:
            return measure(command, self.runs, self.timeout)
        except NotAvailable as exc:
            return self.unavailable(exc)

    def attempt_together(self, what: str, commands: Sequence[Command],
                         runs: int | None = None) -> list[Result]:
        """Commands compared by their ratio, measured in alternation (``measure_together``)."""
        self.log(what)
        return [self.unavailable(outcome) if isinstance(outcome, NotAvailable) else outcome
                for outcome in measure_together(commands, runs or self.runs, self.timeout)]

    def unavailable(self, exc: NotAvailable) -> str:
        """The reason for the table, with the data folder shown as $DATA."""
        self.log(f"  not available: {exc}")
        return str(exc).replace(str(self.data_dir), "$DATA")


def case_label(dataset: Dataset) -> str:
    return f"{dataset.label}, {size(dataset.size())}"


def ratio(numerator: Result, denominator: Result) -> float | None:
    if isinstance(numerator, str) or isinstance(denominator, str):
        return None
    return numerator.median / denominator.median


def paired_ratio(numerator: Result, denominator: Result) -> float | None:
    """The median of the two commands' time ratios round by round (measured in turn): a load
    that comes and goes falls on both runs of a round, so it cancels out of their ratio."""
    if isinstance(numerator, str) or isinstance(denominator, str):
        return None
    return statistics.median(a / b for a, b in zip(numerator.seconds, denominator.seconds,
                                                   strict=True))


def flatness_row(ctx: Context, first: Dataset, last: Dataset) -> Row:
    """Does inspect take the same time on a big file as on a small one with the same names?
    The two measured in turn over more rounds: 10% of a 100 ms run is this machine's noise."""
    runs = max(ctx.runs, FLAT_ROUNDS) if ctx.runs > 1 else 1
    small, big = ctx.attempt_together(
        f"inspect: {first.path.name} and {last.path.name} in turn", [
            Command([*ctx.tools.ckpt, "inspect", "--json", str(dataset.path)])
            for dataset in (first, last)], runs)
    r = paired_ratio(big, small)
    return Row(f"{size(last.size())} vs {size(first.size())}, same names",
               "ckpt inspect --json", None, "" if r is None else f"{r:.2f}× the time",
               within(r, 0.10, "within 10%"),
               f"flat in bytes: the two measured in turn, {runs} round{'s' * (runs > 1)}, the "
               "median of each round's ratio")


def speed_text(r: float | None) -> str:
    """The text for ``r`` = the other tool's time / ckpt's time."""
    if r is None:
        return ""
    return f"ckpt {r:.1f}× faster" if r >= 1 else f"ckpt {1 / r:.1f}× slower"


# -------------------------------------------------------------------------------- start-up


def startup_section(ctx: Context) -> Section:
    tools, sample = ctx.tools, lint_sample(ctx.data["lint"])
    bare = ctx.attempt("start-up: python -c pass", Command([tools.python, "-c", "pass"]))
    rows = [Row("start-up", "python -c pass", bare, "baseline")]
    # Typer stays the CLI: its import is the floor under every command but --version.
    floor = ctx.attempt("start-up: python -c 'import typer'",
                        Command([tools.python, "-c", "import typer"]))
    above = ms_above(floor, bare)
    rows.append(Row("start-up", "python -c 'import typer'", floor,
                    f"+{above:.0f} ms" if above is not None else "", note="the floor of a command"))
    for label, args, codes, goal in (
        ("ckpt --version", ["--version"], (0,), 30),
        ("ckpt lint ONE_FILE", ["lint", str(sample)], (0, 1), 60),
    ):
        m = ctx.attempt(f"start-up: {label}", Command([*tools.ckpt, *args], codes))
        above = ms_above(m, bare)
        text = f"+{above:.0f} ms" if above is not None else ""
        rows.append(Row("start-up", label, m, text,
                        ms_below(above, goal, f"< {goal} ms above python")))
    tiny = str(ctx.data["tiny"].path)
    for label, args in (
        ("ckpt --version", ["--version"]),
        ("ckpt lint ONE_FILE", ["lint", str(sample)]),
        ("ckpt inspect --json 2 MB", ["inspect", "--json", tiny]),
    ):
        rows.append(torch_probe_row(ctx, label, args))
    intro = (
        "Wall time of the whole process. ratio: milliseconds above bare `python -c pass` "
        "(same interpreter). The last rows run the CLI in-process (`ckpt_tool.cli.run`) and check "
        "`sys.modules` afterwards."
    )
    return Section("Start-up", intro, rows)


def ms_above(result: Result, baseline: Result) -> float | None:
    if isinstance(result, str) or isinstance(baseline, str):
        return None
    return (result.median - baseline.median) * 1000


def torch_probe_row(ctx: Context, label: str, args: list[str]) -> Row:
    ctx.log(f"start-up: torch imported by {label}?")
    command = Command([ctx.tools.python, "-c", TORCH_PROBE, *args], sample_memory=False)
    goal = "torch never imported"
    try:
        imported = torch_imported(run_once(command, ctx.timeout, capture_stdout=False))
    except NotAvailable as exc:
        return Row("torch imported?", label, ctx.unavailable(exc), target=Target(goal, None))
    target = Target(goal, not imported, "torch was imported")
    note = "torch in sys.modules" if imported else "torch not in sys.modules"
    return Row("torch imported?", label, None, target=target, note=note)


def torch_imported(result: RunResult) -> bool:
    found = re.search(r"ckpt-bench exit=(\S+) torch=(True|False)", result.stderr)
    if not found:
        raise NotAvailable(f"exit {result.returncode}: {last_line(result.stderr)}")
    code, torch = found.groups()
    if code not in ("0", "1", "None"):
        before = result.stderr[: found.start()]
        raise NotAvailable(f"exit {code}: {last_line(before)}")
    return torch == "True"


# --------------------------------------------------------------------------------- inspect


def inspect_section(ctx: Context) -> Section:
    rows: list[Row] = []
    bare = ctx.attempt("inspect: python -c pass", Command([ctx.tools.python, "-c", "pass"]))
    for key in ("llm", "tiny", "many", "legacy"):
        dataset = ctx.data[key]
        _, case_rows = inspect_rows(ctx, dataset, key == "llm", bare)
        rows += case_rows
    rows.append(flatness_row(ctx, ctx.data["tiny"], ctx.data["llm"]))
    intro = (
        "Listing every tensor's name and shape. ratio: the other tool's time ÷ ckpt's. "
        "torch.load(mmap=True) cannot map a legacy-format file."
    )
    return Section("Inspect", intro, rows)


INSPECT_GOALS = {"llm": 20, "many": 7}
"""ckpt's speed-up over ``torch.load(mmap=True)`` + listing the tensors (issue 15)."""


def inspect_rows(ctx: Context, dataset: Dataset, big: bool, bare: Result
                 ) -> tuple[Result, list[Row]]:
    path, case = str(dataset.path), case_label(dataset)
    check = functools.partial(inspect_check, dataset)
    ckpt = ctx.attempt(
        f"inspect {dataset.key}: ckpt",
        Command([*ctx.tools.ckpt, "inspect", "--json", path], check=check),
    )
    rows = [Row(case, "ckpt inspect --json", ckpt)]
    text_view = None
    if big:  # the view people read, on the same file
        text_view = ctx.attempt(f"inspect {dataset.key}: ckpt (text)",
                                Command([*ctx.tools.ckpt, "inspect", path]))
        rows.append(Row(case, "ckpt inspect (text view)", text_view))
    goal = INSPECT_GOALS.get(dataset.key)
    phases = inspect_phases(ctx, path) if goal else None
    for mode, label in (("mmap", "torch.load(mmap=True) + list"), ("load", "torch.load() + list")):
        argv = [ctx.tools.python, "-c", TORCH_LIST, path, mode]
        m = ctx.attempt(f"inspect {dataset.key}: {label}", Command(argv))
        r = ratio(m, ckpt)
        target, why = None, ""
        if goal and mode == "mmap":
            target = ratio_at_least(r, goal, f"ckpt ≥ {goal}× faster")
            why = inspect_why(ckpt, m, goal, bare, phases, big)
        rows.append(Row(case, label, m, speed_text(r), target, why=why))
        if text_view is not None and mode == "mmap":
            r = ratio(m, text_view)
            why = inspect_why(text_view, m, goal or 1, bare, phases, big, rich=True)
            rows.append(Row(case, "the same, against the text view", None, speed_text(r),
                            ratio_at_least(r, goal or 1, f"ckpt ≥ {goal}× faster"), why=why))
    return ckpt, rows


INSPECT_PHASES = """
import gc, json, statistics, sys, time
clock = time.perf_counter
gc.disable()
t0 = clock()
import typer
t1 = clock()
import ckpt_tool.cli.inspect_cmd
from ckpt_tool.api import inspect_one
from ckpt_tool.containers.source import FileSource
from ckpt_tool.limits import DEFAULT_LIMITS
from ckpt_tool.pickles.scan import scan_pickle
from ckpt_tool.readers import read_checkpoint
from ckpt_tool.readers.torch_zip import TorchArchive
from ckpt_tool.render.inspect_json import render_document
t2 = clock()
import rich.console, rich.table
t3 = clock()
path = sys.argv[1]
runs = {key: [] for key in ("directory", "scan", "read", "inspect", "json")}
for _ in range(3):
    t = clock(); archive = TorchArchive(FileSource(path), DEFAULT_LIMITS)
    runs["directory"].append(clock() - t)
    data = archive.read("data.pkl")
    t = clock(); scan_pickle(data, 0, DEFAULT_LIMITS, resolve_names=False)
    runs["scan"].append(clock() - t)
    t = clock(); read_checkpoint(FileSource(path)); runs["read"].append(clock() - t)
    t = clock(); document = inspect_one(path); runs["inspect"].append(clock() - t)
    t = clock(); render_document(document); runs["json"].append(clock() - t)
    del archive, data, document
phases = {key: statistics.median(values) for key, values in runs.items()}
phases.update(typer=t1 - t0, ckpt_imports=t2 - t1, rich=t3 - t2)
print(json.dumps(phases))
"""
"""Where ``ckpt inspect --json`` spends its time, phase by phase, in one process (median of 3
for the reading): what a missed speed-up is made of."""


def inspect_phases(ctx: Context, path: str) -> dict[str, float] | None:
    ctx.log(f"inspect: where the time goes ({Path(path).name})")
    try:
        run = subprocess.run([ctx.tools.python, "-c", INSPECT_PHASES, path], env=CHILD_ENV,
                             capture_output=True, text=True, timeout=ctx.timeout, check=True)
        return {key: float(value) for key, value in json.loads(run.stdout).items()}
    except (OSError, subprocess.SubprocessError, ValueError, AttributeError) as exc:
        ctx.log(f"  not available: {type(exc).__name__}")
        return None


def inspect_why(ckpt: Result, torch: Result, goal: int, bare: Result,
                phases: dict[str, float] | None, big: bool, rich: bool = False) -> str:
    """ckpt's time against the goal's budget, in the phases measured in the same run."""
    if phases is None or isinstance(ckpt, str) or isinstance(torch, str):
        return ""
    budget = f"{goal}× of torch's {seconds(torch.median)} is {seconds(torch.median / goal)}"
    start = "" if isinstance(bare, str) else (
        f"the interpreter's start {seconds(bare.median)} (python -c pass), ")
    if big:
        parts = [f"{start}Typer's import {seconds(phases['typer'])}",
                 f"ckpt's imports {seconds(phases['ckpt_imports'])}"]
        if rich:
            parts.append(f"Rich's import {seconds(phases['rich'])}")
        parts += [f"reading the file {seconds(phases['inspect'])}",
                  f"its JSON {seconds(phases['json'])}"]
    else:
        unpickle = phases["read"] - phases["directory"] - phases["scan"]
        parts = [f"the pickle's opcode pre-scan {seconds(phases['scan'])}",
                 f"unpickling with ckpt's callbacks {seconds(unpickle)}",
                 f"the zip directory {seconds(phases['directory'])}",
                 f"the report and its document {seconds(phases['inspect'] - phases['read'])}",
                 f"the JSON text {seconds(phases['json'])}"]
    return (f"{budget}; ckpt's {seconds(ckpt.median)} is {', '.join(parts)} (phases timed "
            "in one process, this run)")


def inspect_check(dataset: Dataset, result: RunResult) -> str:
    try:
        doc = json.loads(result.stdout)
        count = doc["files"][0]["tensor_count"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise NotAvailable(f"unexpected --json output ({type(exc).__name__})") from exc
    if count != dataset.tensors:
        return f"reported {count} tensors, expected {dataset.tensors}"
    return f"{count:,} tensors"


# ------------------------------------------------------------------------------------ lint


def lint_section(ctx: Context) -> Section:
    corpus, tools = ctx.data["lint"], ctx.tools
    folder, case = str(corpus.path), f"{corpus.files:,} files, {size(corpus.size())}"
    ckpt = ctx.attempt("lint: ckpt", Command([*tools.ckpt, "lint", folder], (0, 1)))
    found = "" if isinstance(ckpt, str) else lint_findings(ctx, folder)
    rows = [Row(case, "ckpt lint DIR", ckpt, note=found)]
    picklescan = Command([*tools.picklescan, "--path", folder], (0, 1, 2), picklescan_check)
    fickling = Command([tools.python, "-c", FICKLING_SCAN, folder], check=fickling_check)
    for label, command in (
        ("picklescan --path DIR", picklescan),
        ("fickling, one process", fickling),
    ):
        m = ctx.attempt(f"lint: {label}", command)
        r = ratio(m, ckpt)
        rows.append(Row(case, label, m, speed_text(r), ratio_at_least(r, 1.0, "ckpt faster")))
    intro = (
        "One process over the whole corpus (state_dicts, training checkpoints, 2% legacy-format "
        "files, 2% whole-model pickles). ratio: the other tool's time ÷ ckpt's."
    )
    return Section("Lint", intro, rows)


def lint_findings(ctx: Context, folder: str) -> str:
    """What ckpt reported, from an untimed `--format json` run: proof it read the files."""
    command = Command([*ctx.tools.ckpt, "lint", "--format", "json", folder], sample_memory=False)
    try:
        result = run_once(command, ctx.timeout, capture_stdout=True)
        findings = json.loads(result.stdout)["findings"]
        codes = Counter(f["code"] for f in findings)
        files = {f["path"] for f in findings}
    except (NotAvailable, ValueError, KeyError, TypeError) as exc:
        return f"--format json unreadable ({type(exc).__name__})"
    listed = ", ".join(f"{code} ×{n}" for code, n in sorted(codes.items()))
    return f"flagged {len(files)} files: {listed or 'nothing'}"


def picklescan_check(result: RunResult) -> str:
    scanned = re.search(r"Scanned files: (\d+)", result.stdout)
    infected = re.search(r"Infected files: (\d+)", result.stdout)
    if not scanned or not infected:
        raise NotAvailable(f"no scan summary: {last_line(result.stdout + result.stderr)}")
    errors = " (exit 2: scan errors)" if result.returncode == 2 else ""
    return f"scanned {scanned[1]} files, {infected[1]} infected{errors}"


def fickling_check(result: RunResult) -> str:
    found = re.search(r"scanned (\d+) flagged (\d+)", result.stdout)
    if not found:
        raise NotAvailable(f"no summary: {last_line(result.stderr)}")
    return f"scanned {found[1]} files, {found[2]} not likely safe"


# --------------------------------------------------------------------------------- convert


def convert_section(ctx: Context) -> Section:
    rows: list[Row] = []
    ctx.scratch.mkdir(parents=True, exist_ok=True)
    start_up = ctx.attempt("convert: start-up (ckpt convert --help)",
                           Command([*ctx.tools.ckpt, "convert", "--help"]))
    try:
        for key in ("llm", "legacy", "training"):
            rows += convert_rows(ctx, ctx.data[key], start_up)
    finally:
        shutil.rmtree(ctx.scratch, ignore_errors=True)
    intro = (
        "To safetensors, output on the same file system, outputs removed before each run. "
        "Peak RssAnon sampled from /proc/PID/status every 10 ms. ckpt convert fsyncs its output "
        "(issue 4) and reads every byte back to verify it; cp and save_file do neither, so "
        "`cp + sync` (the durable copy) is the fair floor (issue 15: ckpt ≤ 1.0× it, ≤ 1.8× cp). "
        "ckpt, cp and cp + sync run in turn, round after round, each after a `sync` (untimed), so "
        "a load that comes and goes on the machine, or the pages a copy left for the kernel to "
        "write, fall on none of them alone. "
        "ratio: ckpt's time ÷ cp's, or the other tool's time ÷ ckpt's."
    )
    return Section("Convert", intro, rows)


def convert_rows(ctx: Context, dataset: Dataset, start_up: Result) -> list[Row]:
    src, case = str(dataset.path), case_label(dataset)
    out = {name: ctx.scratch / f"{dataset.key}.{name}" for name in ("ckpt", "cp", "sync", "torch")}
    argv = [*ctx.tools.ckpt, "convert", src, "--to", "safetensors", "-o", str(out["ckpt"])]
    check = functools.partial(safetensors_note, out["ckpt"], dataset.weights)
    cp_argv = [ctx.tools.cp, src, str(out["cp"])]
    sync = ["sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", src, str(out["sync"])]
    ckpt, cp, m, unverified = ctx.attempt_together(
        f"convert {dataset.key}: ckpt, cp, cp + sync, ckpt --no-verify in turn",
        [Command([*argv, "--force"], check=check, before=remover(out["ckpt"])),
         Command(cp_argv, before=remover(out["cp"])),
         Command(sync, before=remover(out["sync"])),
         Command([*argv, "--force", "--no-verify"], before=remover(out["ckpt"]))],
    )
    peak = None if isinstance(ckpt, str) else ckpt.peak_rss_anon
    rows = [Row(case, "ckpt convert", ckpt, target=bytes_below(peak, 256 * MIB, "peak < 256 MiB"))]

    r = ratio(ckpt, cp)
    text = "" if r is None else f"ckpt takes {r:.2f}× cp's time"
    rows.append(Row(case, "cp", cp, text, ratio_at_most(r, 1.8, "ckpt ≤ 1.8× cp"),
                    why=_convert_why(ckpt, unverified, cp, "cp", start_up, m)))

    r = ratio(ckpt, m)
    text = "" if r is None else f"ckpt takes {r:.2f}× its time"
    rows.append(Row(case, "cp + sync", m, text, ratio_at_most(r, 1.0, "ckpt ≤ 1.0× cp + sync"),
                    note="the durable copy: what ckpt's fsync matches",
                    why=_convert_why(ckpt, unverified, m, "cp + sync", start_up)))

    argv = [ctx.tools.python, "-c", TORCH_CONVERT, src, str(out["torch"])]
    m = ctx.attempt(f"convert {dataset.key}: torch", Command(argv, before=remover(out["torch"])))
    r = ratio(m, ckpt)
    target = ratio_at_least(r, 2, "ckpt ≥ 2× faster")
    rows.append(Row(case, "torch.load + save_file", m, speed_text(r), target))
    return rows


def _convert_why(ckpt: Result, unverified: Result, other: Result, name: str,
                 start_up: Result, durable: Result | None = None) -> str:
    """What ckpt's time against ``other`` is made of, measured in the same run: the command's
    start-up (``ckpt convert --help``), the read-back of every byte (the same conversion with
    ``--no-verify``, in the same rounds) and, where given, the durable copy's time (the same
    bytes copied and fsynced)."""
    r = ratio(unverified, other)
    if r is None or isinstance(ckpt, str) or isinstance(unverified, str):
        return ""
    start = "" if isinstance(start_up, str) else (
        f"the command's start-up (ckpt convert --help) is {seconds(start_up.median)}; ")
    why = (f"{start}without its read-back of every byte (--no-verify) ckpt takes {r:.2f}× "
           f"{name}'s time ({seconds(unverified.median)} against {seconds(ckpt.median)})")
    if durable is None or isinstance(durable, str):
        return why + ": the check, on the second core, is the difference"
    return (f"{why}; the same bytes copied and fsynced ({name} + sync) take "
            f"{seconds(durable.median)}, this run")


def remover(*paths: Path) -> Callable[[], None]:
    def remove() -> None:
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    return remove


def safetensors_note(path: Path, expected: int, _: RunResult) -> str:
    """Count the tensors in a safetensors file's header (8-byte length, then JSON)."""
    try:
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise NotAvailable(f"no readable safetensors output ({type(exc).__name__})") from exc
    count = len([k for k in header if k != "__metadata__"])
    if count != expected:
        return f"wrote {count} tensors, expected {expected}"
    return f"wrote {count} tensors"


# ------------------------------------------------------------------------------- scaling


FLAT_ROUNDS = 9


def scaling_section(ctx: Context) -> Section:
    """The same two commands over files that grow in tensors, then in bytes: inspect should
    grow with the tensors and not with the bytes; convert's memory with neither."""
    rows: list[Row] = []
    ctx.scratch.mkdir(parents=True, exist_ok=True)
    try:
        for key in SCALING_KEYS:
            rows += scaling_rows(ctx, ctx.data[key])
    finally:
        shutil.rmtree(ctx.scratch, ignore_errors=True)
    rows.append(flatness_row(ctx, ctx.data[SCALING_KEYS[-3]], ctx.data[SCALING_KEYS[-1]]))
    intro = (
        "The same commands as files grow: first in tensors (tiny tensors), then in bytes (an "
        "LLM state_dict of 291 tensors). ratio: time per thousand tensors, or throughput. "
        "Peak RssAnon as in the convert section; convert writes safetensors with fsync and "
        "verification, as by default."
    )
    return Section("Scaling", intro, rows)


def scaling_rows(ctx: Context, dataset: Dataset) -> list[Row]:
    path, case = str(dataset.path), case_label(dataset)
    by_tensors = dataset.key.startswith("scale-t")
    inspect = ctx.attempt(
        f"scaling {dataset.key}: inspect",
        Command([*ctx.tools.ckpt, "inspect", "--json", path],
                check=functools.partial(inspect_check, dataset)),
    )
    out = ctx.scratch / f"{dataset.key}.safetensors"
    convert = ctx.attempt(
        f"scaling {dataset.key}: convert",
        Command([*ctx.tools.ckpt, "convert", path, "--to", "safetensors", "-o", str(out),
                 "--force"], check=functools.partial(safetensors_note, out, dataset.weights),
                before=remover(out)),
    )
    peak = None if isinstance(convert, str) else convert.peak_rss_anon
    return [
        Row(case, "ckpt inspect --json", inspect,
            _rate(inspect, dataset, by_tensors) if by_tensors else ""),
        Row(case, "ckpt convert", convert, _rate(convert, dataset, by_tensors),
            bytes_below(peak, 256 * MIB, "peak < 256 MiB")),
    ]


def _rate(result: Result, dataset: Dataset, by_tensors: bool) -> str:
    if isinstance(result, str):
        return ""
    if by_tensors:
        return f"{result.median * 1000 / (dataset.tensors / 1000):.1f} ms per 1k tensors"
    return f"{dataset.size() / result.median / 1e9:.2f} GB/s"


# ------------------------------------------------------------------------- sharded models


def sharded_section(ctx: Context) -> Section:
    rows: list[Row] = []
    ctx.scratch.mkdir(parents=True, exist_ok=True)
    start_up = ctx.attempt("sharded: start-up (ckpt convert --help)",
                           Command([*ctx.tools.ckpt, "convert", "--help"]))
    try:
        rows += sharded_rows(ctx, ctx.data["dcp"], "dcp_to_torch_save", DCP_TO_TORCH_SAVE, ".pt",
                             start_up)
        rows += sharded_rows(ctx, ctx.data["hf"], "torch.load + save_torch_state_dict",
                             HF_SHARDS_TO_SAFETENSORS, "", start_up)
    finally:
        shutil.rmtree(ctx.scratch, ignore_errors=True)
    intro = (
        "One model out of a checkpoint saved in several files, to safetensors (one file: the "
        "model is under the default 5 GB shard size), verified and fsynced. `cp -r` copies the "
        "same bytes; torch's own consolidation is `dcp_to_torch_save` for the DCP folder (it "
        "writes a torch.save file) and `torch.load` of every shard + huggingface_hub's "
        "`save_torch_state_dict` (what `save_pretrained` calls) for the HF shards. ckpt, `cp -r`, "
        "`cp -r` + sync of each file and ckpt --no-verify run in turn, round after round. Peak "
        "RssAnon sampled every 10 ms. ratio: ckpt's time ÷ cp's, or the other tool's time ÷ "
        "ckpt's."
    )
    return Section("Convert a sharded model", intro, rows)


def sharded_rows(ctx: Context, dataset: Dataset, theirs: str, script: str,
                 suffix: str, start_up: Result) -> list[Row]:
    src, case = str(dataset.path), case_label(dataset)
    out = {name: ctx.scratch / f"{dataset.key}.{name}"
           for name in ("ckpt", "cp", "sync", "torch")}
    argv = [*ctx.tools.ckpt, "convert", src, "--to", "safetensors", "-o", f"{out['ckpt']}/"]
    check = functools.partial(safetensors_note, out["ckpt"] / "model.safetensors",
                              dataset.weights)
    synced = ["sh", "-c", 'cp -r "$1" "$2" && find "$2" -type f -exec sync {} +', "sh", src,
              str(out["sync"])]
    ckpt, cp, durable, unverified = ctx.attempt_together(
        f"sharded {dataset.key}: ckpt, cp -r, cp -r + sync, ckpt --no-verify in turn",
        [Command(argv, check=check, before=fresh_folder(out["ckpt"])),
         Command([ctx.tools.cp, "-r", src, str(out["cp"])], before=remover(out["cp"])),
         Command(synced, before=remover(out["sync"])),
         Command([*argv, "--no-verify"], before=fresh_folder(out["ckpt"]))])
    peak = None if isinstance(ckpt, str) else ckpt.peak_rss_anon
    rows = [Row(case, "ckpt convert", ckpt, target=bytes_below(peak, 256 * MIB, "peak < 256 MiB"))]
    r = ratio(ckpt, cp)
    text = "" if r is None else f"ckpt takes {r:.2f}× cp's time"
    rows.append(Row(case, "cp -r", cp, text, ratio_at_most(r, 2.0, "ckpt ≤ 2× cp"),
                    why=_convert_why(ckpt, unverified, cp, "cp -r", start_up, durable)))
    r = ratio(ckpt, durable)
    text = "" if r is None else f"ckpt takes {r:.2f}× its time"
    rows.append(Row(case, "cp -r + sync", durable, text,
                    note="the durable copy: what ckpt's fsync matches"))
    target = str(out["torch"]) + suffix
    command = Command([ctx.tools.python, "-c", script, src, target],
                      before=remover(Path(target)))
    m = ctx.attempt(f"sharded {dataset.key}: {theirs}", command)
    r = ratio(m, ckpt)
    rows.append(Row(case, theirs, m, speed_text(r), ratio_at_least(r, 1.0, "ckpt faster")))
    return rows


def fresh_folder(path: Path) -> Callable[[], None]:
    def make() -> None:
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)

    return make


# ----------------------------------------------------------------------------------- batch

# One `ckpt lint FILE` process per file, the way a hook that passes one file at a time runs it.
ONE_PROCESS_EACH = """
import json, subprocess, sys
command = json.loads(sys.argv[1])
for path in sys.argv[2:]:
    subprocess.run([*command, path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""
PER_FILE_SAMPLE = {True: 20, False: 100}
"""Files run one process each (quick, full): a process per file for all 1,000 would take
minutes for one figure; files per second is the same over a sample."""


def batch_section(ctx: Context) -> Section:
    corpus, tools = ctx.data["lint"], ctx.tools
    folder, count = str(corpus.path), corpus.files
    case = f"{count:,} files, {size(corpus.size())}"
    sample = sorted(str(p) for p in corpus.path.iterdir())[: PER_FILE_SAMPLE[count < 1000]]
    runs = [
        (case, "ckpt lint --jobs 2 --format jsonl DIR", count,
         Command([*tools.ckpt, "lint", "--jobs", "2", "--format", "jsonl", folder], (0, 1),
                 functools.partial(jsonl_check, count))),
        (case, "ckpt lint DIR (one process)", count,
         Command([*tools.ckpt, "lint", folder], (0, 1))),
        (f"{len(sample)} of those files", "ckpt lint FILE, a process per file", len(sample),
         Command([tools.python, "-c", ONE_PROCESS_EACH, json.dumps([*tools.ckpt, "lint"]),
                  *sample])),
        (case, "picklescan --path DIR", count,
         Command([*tools.picklescan, "--path", folder], (0, 1, 2), picklescan_check)),
    ]
    rows, rates = [], []
    for label_case, label, files, command in runs:
        m = ctx.attempt(f"batch: {label}", command)
        rates.append(None if isinstance(m, str) else files / m.median)
        rows.append(Row(label_case, label, m, "" if rates[-1] is None
                        else f"{rates[-1]:,.0f} files/s"))
    for index in (2, 3):  # --jobs 2 against a process per file and against picklescan
        r = None if rates[0] is None or rates[index] is None else rates[0] / rates[index]
        row = rows[index]
        rows[index] = Row(row.case, row.tool, row.result,
                          row.ratio + ("" if r is None else f"; --jobs 2 {r:.1f}× the rate"),
                          ratio_at_least(r, 1.0, "--jobs 2 faster"), row.note)
    rows += remote_rows(ctx)
    intro = (
        "Files per second for lint over the corpus of the Lint section: `--jobs 2` (worker "
        "processes, results streamed as JSON lines), one process, one process per file (how a "
        "hook that passes one file at a time runs it; timed over a sample), and picklescan. "
        "Then remote reads: each file served over loopback HTTP with range requests; ratio: the "
        "bytes the server sent against the file's size; note: the requests it counted."
    )
    return Section("Batch and remote", intro, rows)


def jsonl_check(count: int, result: RunResult) -> str:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    try:
        flagged = sum(1 for line in lines if json.loads(line)["findings"])
    except (ValueError, KeyError, TypeError) as exc:
        raise NotAvailable(f"unexpected --format jsonl output ({type(exc).__name__})") from exc
    if len(lines) != count:
        return f"{len(lines)} lines for {count} files"
    return f"{len(lines):,} lines, {flagged} files with findings"


def remote_rows(ctx: Context) -> list[Row]:
    from bench_http import serve

    hub, tiny = ctx.data["hub"], ctx.data["tiny"]
    files = [hub.path / "pytorch_model.bin", hub.path / "model.safetensors", tiny.path]
    if ctx.data["llm"].path.exists():  # generated for the other sections; not made for this one
        files.append(ctx.data["llm"].path)
    rows = []
    with serve(ctx.data_dir) as server:
        for path in files:
            url = f"{server.url}/{path.relative_to(ctx.data_dir).as_posix()}"
            for command in (["inspect", "--json"], ["lint", "--format", "json"]):
                server.reset()
                rows.append(remote_row(ctx, path, url, command, server))
    return rows


def remote_row(ctx: Context, path: Path, url: str, command: list[str], server: Any) -> Row:
    label = f"ckpt {' '.join(command)} URL"
    case = f"{path.name}, {size(path.stat().st_size)}"
    ctx.log(f"remote: {label} {path.name}")
    try:
        run_once(Command([*ctx.tools.ckpt, *command, url], (0, 1), sample_memory=False),
                 ctx.timeout, capture_stdout=False)
    except NotAvailable as exc:
        return Row(case, label, ctx.unavailable(exc))
    share = server.bytes_sent / path.stat().st_size
    goal = 1 if path.suffix == ".safetensors" else 3
    target = Target(f"≤ {goal} requests", server.requests <= goal, f"{server.requests} requests")
    return Row(case, label, None, f"{share:.2%} of the file", target,
               f"{server.requests} requests, {size(server.bytes_sent)} sent")


SECTIONS: dict[str, Callable[[Context], Section]] = {
    "startup": startup_section,
    "inspect": inspect_section,
    "lint": lint_section,
    "convert": convert_section,
    "sharded": sharded_section,
    "batch": batch_section,
    "scaling": scaling_section,
}

NEEDS: dict[str, Sequence[str]] = {
    "startup": ("lint", "tiny"),
    "inspect": ("llm", "tiny", "many", "legacy"),
    "lint": ("lint",),
    "convert": ("llm", "legacy", "training"),
    "sharded": ("dcp", "hf"),
    "batch": ("lint", "hub", "tiny"),
    "scaling": SCALING_KEYS,
}
