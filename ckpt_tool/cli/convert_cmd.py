"""``ckpt convert`` (being written)."""
