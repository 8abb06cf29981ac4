"""Rows, targets and the Markdown they become; the description of the machine."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench_proc import Measurement

MIB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    """A goal and whether it was met; ``miss`` says by how much when it was not."""

    goal: str
    met: bool | None  # None: could not be measured
    miss: str = ""

    def cell(self) -> str:
        if self.met is None:
            return "n/a"
        return "yes" if self.met else f"**no**: {self.miss}"


@dataclass(frozen=True)
class Row:
    case: str
    tool: str
    result: Measurement | str | None  # str: why it was not available; None: nothing timed
    ratio: str = ""
    target: Target | None = None
    note: str = ""
    why: str = ""
    """Where the time went, measured in the same run: shown with the target when it is missed."""


@dataclass(frozen=True)
class Section:
    title: str
    intro: str
    rows: list[Row]


def ratio_at_least(ratio: float | None, goal: float, text: str) -> Target:
    if ratio is None:
        return Target(text, None)
    return Target(text, ratio >= goal, f"{ratio:.2f}×, {goal / ratio:.2f}× short of {goal:g}×")


def ratio_at_most(ratio: float | None, goal: float, text: str) -> Target:
    if ratio is None:
        return Target(text, None)
    return Target(text, ratio <= goal, f"{ratio:.2f}×, {ratio / goal - 1:.0%} over {goal:g}×")


def within(ratio: float | None, tolerance: float, text: str) -> Target:
    if ratio is None:
        return Target(text, None)
    off = abs(ratio - 1)
    return Target(text, off <= tolerance, f"{off:.0%} apart, {off - tolerance:.0%} over")


def ms_below(ms: float | None, goal: float, text: str) -> Target:
    if ms is None:
        return Target(text, None)
    return Target(text, ms < goal, f"{ms:.0f} ms, {ms - goal:.0f} ms over")


def bytes_below(value: int | None, goal: int, text: str) -> Target:
    if value is None:
        return Target(text, None)
    return Target(text, value < goal, f"{mib(value)}, {mib(value - goal)} over")


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def mib(value: int) -> str:
    return f"{value / MIB:,.0f} MiB" if value >= 10 * MIB else f"{value / MIB:.1f} MiB"


def size(value: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"


# -------------------------------------------------------------------------------- Markdown

COLUMNS = ("case", "tool", "median", "ratio", "peak RssAnon", "target", "met", "note")


def section_markdown(section: Section) -> str:
    lines = [f"## {section.title}", "", section.intro, ""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "---|" * len(COLUMNS))
    lines += ["| " + " | ".join(_escape(c) for c in _cells(row)) + " |" for row in section.rows]
    return "\n".join(lines) + "\n"


def _cells(row: Row) -> list[str]:
    target = row.target.goal if row.target else ""
    met = row.target.cell() if row.target else ""
    if isinstance(row.result, str):
        return [row.case, row.tool, "not available", "", "", target, met, row.result]
    if row.result is None:
        return [row.case, row.tool, "—", row.ratio, "", target, met, row.note]
    m = row.result
    peak = mib(m.peak_rss_anon) if m.peak_rss_anon is not None else ""
    runs = f" (n={len(m.seconds)})" if len(m.seconds) > 1 else ""
    note = "; ".join(n for n in (m.note, row.note) if n)
    return [row.case, row.tool, seconds(m.median) + runs, row.ratio, peak, target, met, note]


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def missed_targets(sections: list[Section], quick: bool) -> str:
    """The closing note: every target missed or not measured, and by how much."""
    lines = []
    for section in sections:
        for row in section.rows:
            t = row.target
            if t is None or t.met:
                continue
            what = f"- {section.title}, {row.tool} ({row.case}), target {t.goal}"
            if t.met is None:
                lines.append(f"{what}: not measured")
            else:
                why = f". Measured reason: {row.why}" if row.why else ""
                lines.append(f"{what}: missed, {t.miss}{why}")
    if not lines:
        return "## Targets\n\nEvery target was met.\n"
    caveat = QUICK_CAVEAT + "\n\n" if quick else ""
    return "## Targets missed or not measured\n\n" + caveat + "\n".join(lines) + "\n"


QUICK_CAVEAT = (
    "Quick run: the files are small and each command ran once, so fixed start-up costs and "
    "noise dominate; the targets are set for the full sizes (`python benchmarks/run.py`)."
)


# -------------------------------------------------------------------------------- machine


def machine_markdown(mode: str, runs: int, data: list[tuple[str, str]]) -> str:
    """The header: when, on what, with which versions, and the data sets."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "# ckpt benchmarks",
        "",
        f"- date: {now}; mode: {mode}; median of {runs} timed run(s) after one warm-up run "
        "(page cache warm); measured processes run with a byte-code cache, as an installed "
        "package does (PYTHONDONTWRITEBYTECODE unset, ckpt compiled before timing)",
        f"- machine: {os.cpu_count()} cores ({_cpu_model()}), {_memory()} memory, "
        f"{platform.system()} {platform.release()}; load average at start {load}",
        f"- Python {platform.python_version()}, torch {_version('torch')}, "
        f"safetensors {_version('safetensors')}, picklescan {_version('picklescan')}, "
        f"fickling {_version('fickling')}",
        f"- ckpt {_version('ckpt-tool')} ({_git_revision()})",
        "",
        "Data sets, generated at run time:",
        "",
    ]
    lines += [f"- {name}: {desc}" for name, desc in data]
    return "\n".join(lines) + "\n"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    return _proc_field("/proc/cpuinfo", "model name") or platform.machine()


def _memory() -> str:
    total = _proc_field("/proc/meminfo", "MemTotal")
    return f"{int(total.split()[0]) / 1024 / 1024:.1f} GiB" if total else "unknown"


def _proc_field(path: str, name: str) -> str:
    try:
        text = Path(path).read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


def _git_revision() -> str:
    repo = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "git revision unknown"
    return f"git {out.stdout.strip()}"
