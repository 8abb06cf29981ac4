"""Two pickles inside the default limits that make `ckpt lint` slow and big.
dos_memo.pkl (9.9 MB): one STACK_GLOBAL (of builtins.set) sends the whole file through the
  per-opcode Python symbolic walk (scan._scan_symbolic), then 9.9M MEMOIZE fill its memo dict.
  Nothing in it is flagged (lint exits 0).
dos_embedded.pkl (11 MB): names os.system (flagged), then 1.6M short bytes values that each
  start like a pickle; every one becomes a nested PickleCollector + PickleSite (lint/pickles.py
  _nested)."""
N = 9_900_000
open("dos_memo.pkl", "wb").write(
    b"\x80\x04\x8c\x08builtins\x8c\x03set\x93)\x85R0" + b"N" + b"\x94" * N + b"0}.")
inner = b"\x80\x02N."
open("dos_embedded.pkl", "wb").write(
    b"\x80\x02cos\nsystem\n0" + (b"C" + bytes([len(inner)]) + inner + b"0") * 1_600_000 + b"N.")
print("wrote dos_memo.pkl dos_embedded.pkl")
