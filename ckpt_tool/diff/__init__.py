"""``ckpt diff``: compare two checkpoints of any supported formats (files, folders, shard
indexes): names, dtypes, shapes, metadata, and with ``--values`` the tensor values."""

from ckpt_tool.diff.compare import (
    COMMON_PREFIXES,
    DiffResult,
    NameMatch,
    TensorDiff,
    compare_tensor,
    diff_reports,
    diff_sides,
    match_names,
)
from ckpt_tool.diff.sides import Side, side_from_inputs, side_from_reports

__all__ = ["COMMON_PREFIXES", "DiffResult", "NameMatch", "Side", "TensorDiff", "compare_tensor",
           "diff_reports", "diff_sides", "match_names", "side_from_inputs", "side_from_reports"]
