"""The lines ``ckpt convert`` prints: one per file, its notes, and a summary. Paths and notes
(which quote tensor names from the file) are escaped (``render.safe``)."""

from __future__ import annotations

from ckpt_tool.convert.options import Action, ConvertResult
from ckpt_tool.render.safe import printable
from ckpt_tool.render.units import human_bytes


def result_lines(result: ConvertResult) -> list[str]:
    """What was written, then one indented line per note. Failures are reported elsewhere."""
    return [printable(_headline(result)), *(f"  {printable(note)}" for note in result.notes)]


def _headline(result: ConvertResult) -> str:
    target = result.outputs[0] if result.outputs else "?"
    size = human_bytes(result.bytes_written)
    if result.action is Action.SAFETENSORS:
        shards = len(result.outputs) - 1
        where = f"{target} and {shards - 1} more shards + index" if shards > 1 else target
        return (f"{result.source} -> {where}: {result.tensors} tensors, {size}, "
                f"weights from {result.root}")
    if result.action is Action.MOVE:
        return f"{result.source} -> {target}: moved"
    if result.action is Action.REWRITE:
        return (f"{result.source} -> {target}: rewritten in torch's zip format "
                f"({result.tensors} storages, {size})")
    if result.action is Action.TORCH_SAVE:
        return f"{result.source} -> {target}: saved with torch.save ({result.tensors} tensors)"
    return f"{result.source} -> {target}: copied ({size})"


def summary_line(results: list[ConvertResult]) -> str:
    failed = [result.source for result in results if not result.ok]
    written = sum(result.bytes_written for result in results if result.ok)
    line = (f"converted {len(results) - len(failed)} of {len(results)} files, "
            f"{human_bytes(written)} written")
    if failed:
        more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
        shown = ", ".join(printable(path) for path in failed[:10]) + more
        line += f"; failed: {shown}"
    return line
