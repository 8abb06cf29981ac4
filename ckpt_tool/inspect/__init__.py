"""``ckpt inspect``: the report of what a checkpoint holds, per-tensor statistics, the tree."""
