"""Lint many checkpoints on Ray Data: a list of paths and URLs in, one row per file out.

    python examples/ray_lint.py sources.txt --output lint-results/              # Parquet
    python examples/ray_lint.py sources.txt --output lint-results/ --format jsonl
    python examples/ray_lint.py sources.txt --output s3://bucket/lint/ --address auto

``sources.txt`` holds paths or URLs, one a line: files (``https://...``, ``s3://bucket/x.pt``),
folders or repositories (``s3://bucket/run/``, ``hf://org/repo@rev``), listed here on the driver
into their checkpoint files. Each file is read by a Ray task with ``ckpt_tool.api.lint_one``:
a few range requests per remote file, never the tensor bytes, never torch. The same script runs
on a laptop (a local Ray instance, ``--num-cpus``) and on a cluster (``--address auto`` or
``RAY_ADDRESS``); every worker needs ckpt installed (and fsspec and the scheme's backend for
``s3://``, ``hf://``...).

Each row: ``path``, ``exit_code`` (0 clean, 1 findings, 2 not checked), ``error`` (the message,
or ""), ``findings`` (how many), ``codes`` (the rule codes found, comma-separated),
``bytes_read``, ``requests``, and ``result``: ``lint_one``'s whole result as JSON text (its
nested lists vary from file to file, which a columnar file would not hold as columns).
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from typing import Any

from ckpt_tool.api import expand_sources, lint_one


def lint_row(item: dict[str, Any], storage_options: dict[str, Any] | None = None,
             select: str | None = None) -> dict[str, Any]:
    """One Ray row in, one row out; ``lint_one`` never raises, so neither does this."""
    if item.get("error"):
        result = lint_one(item["path"], select=select, storage_options=storage_options)
    else:
        result = lint_one(item["path"], size=item.get("size"), select=select,
                          storage_options=storage_options)
    return flat_row(result)


def flat_row(result: dict[str, Any]) -> dict[str, Any]:
    reads = result.get("reads") or [{}]
    return {
        "path": result["path"],
        "exit_code": result["exit_code"],
        "error": (result["error"] or {}).get("message", ""),
        "findings": len(result["findings"]),
        "codes": ",".join(sorted({finding["code"] for finding in result["findings"]})),
        "bytes_read": int(reads[0].get("bytes_read") or 0),
        "requests": int(reads[0].get("requests") or 0),
        "result": json.dumps(result, ensure_ascii=False),
    }


def read_sources(name: str) -> list[str]:
    with sys.stdin if name == "-" else open(name, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", help="file of paths or URLs, one a line (- for stdin)")
    parser.add_argument("--output", required=True, help="folder (or URL) the rows are written to")
    parser.add_argument("--format", choices=["parquet", "jsonl"], default="parquet")
    parser.add_argument("--select", help="rules to check (as ckpt lint --select)")
    parser.add_argument("--storage-options", type=json.loads, default=None,
                        help="fsspec storage options as a JSON object")
    parser.add_argument("--address", help="a Ray cluster to join (default: RAY_ADDRESS, or a "
                        "local instance)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local instance")
    args = parser.parse_args(argv)

    import ray

    ray.init(address=args.address, num_cpus=args.num_cpus, include_dashboard=False,
             log_to_driver=False)
    try:
        items = expand_sources(read_sources(args.sources), args.storage_options)
        rows = ray.data.from_items(items).map(
            partial(lint_row, storage_options=args.storage_options, select=args.select))
        if args.format == "parquet":
            rows.write_parquet(args.output)
        else:
            rows.write_json(args.output)
    finally:
        ray.shutdown()
    print(f"linted {len(items)} files into {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
