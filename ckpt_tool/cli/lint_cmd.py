"""``ckpt lint`` (being written)."""
