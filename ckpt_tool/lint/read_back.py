"""``*.pth`` files that a known producer reads back by that exact name: CKPT001 says so, and
``ckpt lint --fix`` leaves them alone unless ``--unsafe-fixes`` is given.

Renaming such a file breaks the producer's resume, sometimes silently: the transformers Trainer
restores its RNG state only if ``rng_state.pth`` exists, and otherwise logs at INFO level and goes
on. Each entry names the producer, how the file is recognised, what renaming breaks, and the
source it was checked against. ``.pt``, ``.bin`` and ``.pkl`` names (``optimizer.pt``,
``scheduler.pt``, ``training_args.bin``, accelerate's ``random_states_0.pkl``) are read back by
name too, but lint never renames them: only ``*.pth`` collides with site.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from ckpt_tool.model.record import Record

POINTER_FILE = "last_checkpoint"
_POINTER_BYTES = 4096


class ReadBack(Record):
    __slots__ = ("producer", "recognised", "breaks", "source", "matches")
    producer: str
    recognised: str
    """How a file is recognised (for the docs)."""
    breaks: str
    """What renaming the file breaks."""
    source: str
    matches: Callable[[str], bool]

    def __init__(self, producer: str, recognised: str, breaks: str, source: str,
                 matches: Callable[[str], bool]) -> None:
        self.producer = producer
        self.recognised = recognised
        self.breaks = breaks
        self.source = source
        self.matches = matches


def _trainer_rng_state(path: str) -> bool:
    return re.fullmatch(r"rng_state(_\d+)?\.pth", os.path.basename(path)) is not None


def _named_by_pointer(path: str) -> bool:
    """A ``last_checkpoint`` file beside it holds its name (fvcore: the base name; mmengine: the
    path)."""
    pointer = os.path.join(os.path.dirname(path) or ".", POINTER_FILE)
    try:
        with open(pointer, "rb") as f:
            named = f.read(_POINTER_BYTES).decode("utf-8", "replace").strip()
    except OSError:
        return False
    return bool(named) and os.path.basename(named) == os.path.basename(path)


def _torch_hub_cache(path: str) -> bool:
    parts = os.path.abspath(path).split(os.sep)
    return len(parts) >= 3 and parts[-3] == "hub" and parts[-2] == "checkpoints"


READ_BACK: tuple[ReadBack, ...] = (
    ReadBack("the transformers Trainer", "rng_state.pth or rng_state_<rank>.pth",
             "resuming from this checkpoint silently skips restoring the RNG state (the Trainer "
             "only logs that it found no RNG file)",
             "transformers/trainer.py, Trainer._save_rng_state and _load_rng_state (4.x, 5.x)",
             _trainer_rng_state),
    ReadBack("fvcore/detectron2 and mmengine checkpointers",
             "a last_checkpoint file beside it holds its name",
             "resuming fails: last_checkpoint still names the old file",
             "fvcore/common/checkpoint.py Checkpointer.get_checkpoint_file; "
             "mmengine/runner/checkpoint.py find_latest_checkpoint",
             _named_by_pointer),
    ReadBack("torch.hub", "a file in a hub/checkpoints folder",
             "torch.hub.load_state_dict_from_url no longer finds it in its cache and downloads it "
             "again (or fails offline)",
             "torch/hub.py load_state_dict_from_url (<hub_dir>/checkpoints/<file name from URL>)",
             _torch_hub_cache),
)


def read_back_by(path: str) -> ReadBack | None:
    """The producer that reads ``path`` back by its name, if one is known to."""
    return next((entry for entry in READ_BACK if entry.matches(path)), None)
