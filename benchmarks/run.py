"""Benchmark ckpt against the tools users would otherwise reach for (issue 5).

    python benchmarks/run.py            # full sizes, median of 3; writes benchmarks/RESULTS.md
    python benchmarks/run.py --quick    # small sizes, one run; stdout only (CI)

Data is generated at run time (see bench_data.py) into --data, by default a folder under the
system temp dir, and reused by later runs. Tables go to stdout, progress to stderr. A command
that fails is a "not available" row, and a missed target is reported, not an error: the exit
code is non-zero only when this script itself fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bench_data
from bench_cases import NEEDS, SECTIONS, Context, Tools
from bench_proc import compile_package
from bench_report import Section, machine_markdown, missed_targets, section_markdown, size

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "RESULTS.md"
ALLOWED_IN_REPO = HERE / "_data"  # git-ignored


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one run, stdout only")
    parser.add_argument(
        "--runs", type=int, help="timed runs per command (default 3; 1 with --quick)"
    )
    parser.add_argument("--data", type=Path, help="where generated files live (default: temp dir)")
    parser.add_argument("--output", type=Path, help="also write the report here")
    parser.add_argument(
        "--only", action="append", choices=list(SECTIONS), help="run only this section (repeatable)"
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds per process (default 900; 120 with --quick)"
    )
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    args.timeout = args.timeout or (120.0 if args.quick else 900.0)
    args.data = (args.data or Path(tempfile.gettempdir()) / "ckpt-bench").resolve()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    problem = check_paths(args.data, args.output, args.quick)
    if problem:
        parser.error(problem)
    return args


def check_paths(data: Path, output: Path | None, quick: bool) -> str | None:
    """Generated data stays out of the repository (but for the ignored benchmarks/_data), and
    a quick run never replaces the real results."""
    if data.is_relative_to(REPO) and not data.is_relative_to(ALLOWED_IN_REPO):
        return (
            f"--data must be outside the repository, or under {ALLOWED_IN_REPO.relative_to(REPO)}/"
        )
    if quick and output is not None and output.resolve() == RESULTS:
        return "--quick must not overwrite benchmarks/RESULTS.md"
    return None


def make_logger() -> Callable[[str], None]:
    start = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - start:6.1f}s] {message}", file=sys.stderr, flush=True)

    return log


def emit(text: str, parts: list[str]) -> None:
    print(text, flush=True)
    parts.append(text)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = make_logger()
    sizes = bench_data.QUICK if args.quick else bench_data.FULL
    names = args.only or list(SECTIONS)
    planned = bench_data.plan(args.data, sizes)
    needed = [planned[key] for key in dict.fromkeys(k for name in names for k in NEEDS[name])]
    bench_data.ensure(needed, log)
    compile_package()

    described = [
        (d.key, f"{d.label}, {size(d.size())}, {describe_count(d)} ({d.path.name})") for d in needed
    ]
    mode = (
        "quick (small sizes, for CI; targets are meant for the full sizes)"
        if args.quick
        else "full"
    )
    parts: list[str] = []
    emit(machine_markdown(mode, args.runs, described), parts)

    ctx = Context(planned, Tools.find(), args.runs, args.timeout, args.data, log)
    sections: list[Section] = []
    for name in names:
        sections.append(SECTIONS[name](ctx))
        emit(section_markdown(sections[-1]), parts)
    emit(missed_targets(sections, args.quick), parts)

    output = args.output or (None if args.quick else RESULTS)
    if output is not None:
        output.write_text("\n".join(parts))
        log(f"wrote {output}")
    log("done")
    return 0


def describe_count(dataset: bench_data.Dataset) -> str:
    if dataset.files > 1:
        return f"{dataset.files:,} files"
    return f"{dataset.tensors:,} tensors"


if __name__ == "__main__":
    sys.exit(main())
