"""numpy.load(..., allow_pickle=True) of a .npy unpickles what follows the header whenever the
dtype the header describes holds objects. ckpt recognised only descr strings starting with "O"
and headers it could literal_eval within 64 KiB, so numpy ran the pickle (builtins.exec, writes
a canary file <canary>_<name>) of each of these while ckpt reported nothing (exit 0):
  object.npy       descr 'object'                 (numpy.dtype("object"))
  object_.npy      descr 'object_'
  stringdtype.npy  descr 'T'                      (numpy 2's StringDType: hasobject)
  field.npy        descr [('a', 'object')]        (a structured dtype with such a field)
  longsuffix.npy   shape (1L,)                    (numpy repairs a Python 2 header)
  bigheader.npy    a version 2.0 header of 70 kB  (allow_pickle lifts numpy's header limit)
Also writes plain.npy and plain.npz: arrays of every plain kind, a structured dtype with
padding, titles and subarrays, which must stay unflagged."""
import pickle
import struct
import sys

import numpy as np

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/npy_header"


class Payload:
    def __init__(self, tag):
        self.tag = tag

    def __reduce__(self):
        return (exec, (f"open({canary + '_' + self.tag!r}, 'w').write('ran')",))


def npy(header, tag, version=(1, 0)):
    body = header.encode("latin-1")
    fixed = 10 if version[0] == 1 else 12
    body += b" " * ((-(fixed + len(body) + 1)) % 64) + b"\n"
    length = struct.pack("<H" if version[0] == 1 else "<I", len(body))
    return b"\x93NUMPY" + bytes(version) + length + body + pickle.dumps([Payload(tag)], 2)


def header(descr, shape="(1,)"):
    return f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape}, }}"


files = {
    "object": npy(header("object"), "object"),
    "object_": npy(header("object_"), "object_"),
    "stringdtype": npy(header("T"), "stringdtype"),
    "field": npy(header([("a", "object")]), "field"),
    "longsuffix": npy(header("|O", "(1L,)"), "longsuffix"),
    "bigheader": npy(header("|O") + " " * 70_000, "bigheader", (2, 0)),
}
for name, data in files.items():
    open(f"{name}.npy", "wb").write(data)
# Headers numpy cannot read, Python 2 longs or not: no pickle is loaded, and lint must not crash
# while repairing them (an unterminated string, an unclosed bracket).
open("broken_string.npy", "wb").write(npy(header("|O", "(1L,)") + " '" + "''", "never"))
open("broken_bracket.npy", "wb").write(npy(header("|O", "(1L,)") + " (", "never"))

plain = np.dtype({"names": ["x", "y"], "formats": ["<i4", ("<f8", (2,))], "offsets": [0, 8],
                  "itemsize": 32, "titles": ["title", None]})
np.save("plain.npy", np.zeros(3, dtype=plain))
np.savez("plain.npz", **{f"a{i}": np.zeros(2, dtype=t) for i, t in enumerate(
    ["?", "i1", ">u2", "f2", "<f8", "c16", np.longdouble, "M8[ns]", "m8[25s]", "S3", "U2",
     "V4", [("a", "<f4", (2,)), ("b", "M8[D]")]])})
print("wrote", ", ".join(f"{name}.npy" for name in files), "plain.npy plain.npz")
