"""ckpt: inspect, lint and convert PyTorch checkpoints without running them."""

__version__ = "0.1.0"
