"""numpy.load reads an .npz with Python's zipfile, which inflates bzip2 (method 12) and LZMA
(method 14) members as well as deflate; miniz (torch's reader, which ckpt follows) reads deflate
only. An .npz whose object array member b.npy is bzip2- or LZMA-compressed: numpy.load(...,
allow_pickle=True)["b"] unpickles it (builtins.exec writes a canary file), while ckpt could not
read the member's first bytes, passed over it and reported nothing (exit 0); it passed over a
member of a method it cannot read at all (weights_zstd.npz) as quietly."""
import io
import sys
import zipfile

import numpy as np

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/npz_methods"


class Payload:
    def __reduce__(self):
        return (exec, (f"open({canary!r}, 'w').write('ran')",))


def npy(array, allow_pickle=False):
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


for tag, method in (("bz2", zipfile.ZIP_BZIP2), ("lzma", zipfile.ZIP_LZMA)):
    with zipfile.ZipFile(f"weights_{tag}.npz", "w") as z:
        z.writestr("a.npy", npy(np.arange(3)), compress_type=zipfile.ZIP_STORED)
        z.writestr("b.npy", npy(np.array([Payload()], dtype=object), True), compress_type=method)
# The same member marked with a method this Python's zipfile lacks (93, Zstandard, which
# Python 3.14's reads): ckpt cannot scan it and must say so.
data = bytearray(open("weights_bz2.npz", "rb").read())
info = zipfile.ZipFile("weights_bz2.npz").getinfo("b.npy")
data[info.header_offset + 8 : info.header_offset + 10] = (93).to_bytes(2, "little")
central = data.rfind(b"PK\x01\x02")
data[central + 10 : central + 12] = (93).to_bytes(2, "little")
open("weights_zstd.npz", "wb").write(data)
print("wrote weights_bz2.npz weights_lzma.npz weights_zstd.npz")
