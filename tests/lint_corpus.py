"""Hostile pickles for the lint tests, built opcode by opcode, and the containers to wrap them in.

Every payload is harmless: if anything ever unpickled one, it would only write
``ckpt_canary.txt`` into the current directory (the tests run in a temporary one). Each route is
one way a pickle reaches a callable; ``live`` marks the routes whose pickle really runs its
payload under ``pickle.loads`` (checked by a test, in a temporary directory), so the corpus
cannot silently drift into pickles that would not work anyway.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

CANARY = "ckpt_canary.txt"
CODE = f"open({CANARY!r}, 'w').write('pwned')"
SHELL = f"echo pwned > {CANARY}"
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# ---- opcodes ---------------------------------------------------------------------------------
MARK, STOP, POP, TUPLE, TUPLE1, TUPLE2 = b"(", b".", b"0", b"t", b"\x85", b"\x86"
EMPTY_TUPLE, EMPTY_DICT, REDUCE, BUILD, OBJ = b")", b"}", b"R", b"b", b"o"
SETITEMS = b"u"

NEWOBJ, NEWOBJ_EX, STACK_GLOBAL, MEMOIZE = b"\x81", b"\x92", b"\x93", b"\x94"


def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def inst(module: str, name: str) -> bytes:
    return b"i" + module.encode() + b"\n" + name.encode() + b"\n"


def text(value: str) -> bytes:
    """BINUNICODE."""
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def short_text(value: str) -> bytes:
    data = value.encode()
    return b"\x8c" + bytes([len(data)]) + data


def binbytes(value: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(value)) + value


def put(index: int) -> bytes:
    return b"q" + bytes([index])


def get(index: int) -> bytes:
    return b"h" + bytes([index])


def frame(body: bytes) -> bytes:
    return b"\x95" + struct.pack("<Q", len(body)) + body


# ---- routes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    id: str
    pickle: bytes
    global_name: str | None
    """The dangerous global the finding must name (None: an unresolved global)."""
    opcode: str
    live: bool = False


EXTENSIONS = {  # opcode, code width, code, the global a victim registered, its argument
    "EXT1": (b"\x82", 1, 0xF1, ("builtins", "exec"), CODE),
    "EXT2": (b"\x83", 2, 0x4242, ("builtins", "eval"), CODE),
    "EXT4": (b"\x84", 4, 0x424242, ("os", "system"), SHELL),
}


CALL_EXEC = text(CODE) + TUPLE1 + REDUCE
ROUTES = [
    # The classic: GLOBAL then REDUCE (fickling's first example).
    Route("global-reduce", proto(2) + glob("builtins", "exec") + CALL_EXEC + STOP,
          "builtins.exec", "GLOBAL", live=True),
    # Python 2 names are renamed by the unpickler: __builtin__.eval is builtins.eval.
    Route("python2-name", proto(2) + glob("__builtin__", "eval") + text(CODE) + TUPLE1
          + REDUCE + STOP, "builtins.eval", "GLOBAL", live=True),
    Route("stack-global", proto(4) + frame(short_text("builtins") + short_text("exec")
          + STACK_GLOBAL + CALL_EXEC + STOP), "builtins.exec", "STACK_GLOBAL", live=True),
    # Names put in the memo, popped, and fetched back before STACK_GLOBAL.
    Route("stack-global-memo", proto(4) + short_text("builtins") + put(0) + POP
          + short_text("exec") + put(1) + POP + get(0) + get(1) + STACK_GLOBAL + CALL_EXEC
          + STOP, "builtins.exec", "STACK_GLOBAL", live=True),
    Route("stack-global-memoize", proto(4) + short_text("exec") + MEMOIZE + POP
          + short_text("builtins") + MEMOIZE + get(1) + get(0) + STACK_GLOBAL + CALL_EXEC
          + STOP, "builtins.exec", "STACK_GLOBAL", live=True),
    # A protocol 4 attribute path: judged as a whole, not by its first part (torch).
    Route("dotted-torch", proto(4) + short_text("torch")
          + short_text("serialization.os.system") + STACK_GLOBAL + text(SHELL) + TUPLE1
          + REDUCE + STOP,
          "torch.serialization.os.system", "STACK_GLOBAL"),
    # ... and one starting from a module that is safe to name (pathlib.Path is allowed).
    Route("dotted-pathlib", proto(4) + short_text("pathlib") + short_text("os.system")
          + STACK_GLOBAL + text(SHELL) + TUPLE1 + REDUCE + STOP, "pathlib.os.system",
          "STACK_GLOBAL", live=True),
    Route("inst", MARK + text(CODE) + inst("builtins", "exec") + STOP, "builtins.exec",
          "INST", live=True),
    Route("obj", MARK + glob("builtins", "exec") + text(CODE) + OBJ + STOP, "builtins.exec",
          "GLOBAL", live=True),
    Route("newobj", proto(2) + glob("subprocess", "Popen") + text(SHELL) + TUPLE1 + NEWOBJ
          + STOP, "subprocess.Popen", "GLOBAL"),
    Route("newobj-ex", proto(4) + glob("subprocess", "Popen") + text(SHELL) + TUPLE1
          + EMPTY_DICT + NEWOBJ_EX + STOP, "subprocess.Popen", "GLOBAL"),
    # BUILD calls the __setstate__ of a class from a code-running module.
    Route("build-setstate", proto(2) + glob("code", "InteractiveInterpreter") + EMPTY_TUPLE
          + NEWOBJ + EMPTY_DICT + BUILD + STOP, "code.InteractiveInterpreter", "GLOBAL"),
    # The callable stored in the memo and fetched back for REDUCE.
    Route("reduce-from-memo", proto(2) + glob("builtins", "exec") + put(3) + POP + get(3)
          + CALL_EXEC + STOP, "builtins.exec", "GLOBAL", live=True),
    *(Route(f"ext-{name.lower()}", proto(2) + opcode + code.to_bytes(width, "little")
            + text(argument) + TUPLE1 + REDUCE + STOP, None, name, live=True)
      for name, (opcode, width, code, _, argument) in EXTENSIONS.items()),
    # Module and name both built by REDUCE: nothing constant to read.
    Route("stack-global-computed", proto(4) + glob("builtins", "str") + text("builtins")
          + TUPLE1 + REDUCE + short_text("exec") + STACK_GLOBAL + CALL_EXEC + STOP, None,
          "STACK_GLOBAL", live=True),
    # A STRING that pickletools cannot decode (but CPython can) hiding a later STACK_GLOBAL.
    Route("string-then-stack-global", proto(4) + b"S'\\xc3\\xa9'\n" + POP
          + short_text("builtins") + short_text("exec") + STACK_GLOBAL + CALL_EXEC + STOP,
          "builtins.exec", "STACK_GLOBAL"),
    # Protocol 0: text only, no PROTO to sniff.
    Route("protocol-0", b"cbuiltins\nexec\n(V" + CODE.encode("raw_unicode_escape")
          + b"\ntR.", "builtins.exec", "GLOBAL", live=True),
]


@contextmanager
def extension_registry() -> Iterator[None]:
    """Register the EXT codes the way a victim's process might have (only for live checks)."""
    for _, _, code, (module, name), _ in EXTENSIONS.values():
        copyreg.add_extension(module, name, code)
    try:
        yield
    finally:
        for _, _, code, (module, name), _ in EXTENSIONS.values():
            copyreg.remove_extension(module, name, code)


# ---- containers ------------------------------------------------------------------------------
def benign_pickle(protocol: int = 2) -> bytes:
    return pickle.dumps({"epoch": 3, "name": "conv1.weight"}, protocol=protocol)


def torch_zip(members: dict[str, bytes] | list[tuple[str, bytes]], folder: str = "archive",
              ) -> bytes:
    """A zip laid out like torch.save's: every member under ``folder/`` unless it has a '/'."""
    items = members.items() if isinstance(members, dict) else members
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{folder}/version", "3\n")
        for name, data in items:
            archive.writestr(name if "/" in name else f"{folder}/{name}", data)
    return buffer.getvalue()


def legacy_stream(object_pickle: bytes) -> bytes:
    """torch's pre-1.6 stream with no storages: magic, version, sys_info, object, keys."""
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return (pickle.dumps(LEGACY_MAGIC, 2) + pickle.dumps(1001, 2) + pickle.dumps(sys_info, 2)
            + object_pickle + pickle.dumps([], 2))


def torch_tar(pickle_member: bytes) -> bytes:
    """torch's pre-0.4 tar layout with no storages or tensors."""
    members = {"sys_info": pickle.dumps({"little_endian": True}, 2),
               "storages": pickle.dumps(0, 2) + pickle.dumps([], 2),
               "tensors": pickle.dumps(0, 2), "pickle": pickle_member}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def without_ustar_magic(tar: bytes) -> bytes:
    """A pre-POSIX (v7) tar: every header's ``ustar`` magic zeroed and its checksum redone.
    Python's tarfile (so torch.load's tar loader) checks the checksum, never the magic."""
    out, pos = bytearray(tar), 0
    while pos + 512 <= len(out) and any(out[pos : pos + 512]):
        header = out[pos : pos + 512]
        header[257:265] = bytes(8)
        header[148:156] = b" " * 8
        header[148:156] = b"%06o\0 " % sum(header)
        out[pos : pos + 512] = header
        size = int(bytes(header[124:136]).strip(b"\0 ") or b"0", 8)
        pos += 512 + -(-size // 512) * 512
    return bytes(out)


def tar_of(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
                continue
            info = tarfile.TarInfo(member[0])
            info.size = len(member[1])
            tar.addfile(info, io.BytesIO(member[1]))
    return buffer.getvalue()


def hard_link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info


def with_encrypted_member(archive: bytes, name: str) -> bytes:
    """Set the encryption flag of one member (in its central and local headers): miniz, so
    torch.load, only minds it when that member is read."""
    out = bytearray(archive)
    at = out.find(b"PK\x01\x02")
    while at >= 0:
        length = struct.unpack_from("<H", out, at + 28)[0]
        if out[at + 46 : at + 46 + length] == name.encode():
            local = struct.unpack_from("<I", out, at + 42)[0]
            for flags_at in (at + 8, local + 6):
                out[flags_at] |= 1
        at = out.find(b"PK\x01\x02", at + 1)
    return bytes(out)


def tar_that_tarfile_refuses(pickle_bytes: bytes) -> bytes:
    """A first block that reads as a ustar header (a PAX one, type ``x``) but whose PAX records do
    not parse: tarfile.open fails, so torch.load unpickles the file from its first byte. The
    block is the argument of a BINBYTES (its length sits in the name field), popped, and the
    pickle follows."""
    info = tarfile.TarInfo("x")
    info.type, info.size = tarfile.XHDTYPE, 8
    header = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
    header[0:5] = b"B" + struct.pack("<I", 507)  # BINBYTES of the rest of the block
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + b"0" + pickle_bytes + bytes(512)


def safetensors_lookalike(pickle_bytes: bytes) -> bytes:
    """A pickle whose first 8 bytes read as a small safetensors header length and whose 9th is
    ``{``: BINUNICODE of 4 bytes (``\\0\\0\\0{``), POP, then the pickle. Not a zip or a tar,
    so torch.load unpickles it (and only then fails on the magic number) unless its name ends
    in ``.safetensors`` (torch 2.13 hands those to safetensors)."""
    data = b"X\x04\x00\x00\x00\x00\x00\x00{0" + pickle_bytes
    (length,) = struct.unpack("<Q", data[:8])
    return data + b" " * max(0, 8 + length - len(data))


def in_bytes(payload: bytes, protocol: int) -> bytes:
    """A benign-looking dict whose value is the payload (protocol 2 pickles bytes as latin-1
    text passed to ``_codecs.encode``; protocol 3 and later as BINBYTES)."""
    return pickle.dumps({"note": "weights", "blob": payload}, protocol=protocol)


def load_from_bytes(payload: bytes) -> bytes:
    """The route pickle.dumps of a storage takes: _load_from_bytes(payload)."""
    return loaded_by("torch.storage", "_load_from_bytes", binbytes(payload))


def loaded_by(module: str, name: str, argument: bytes) -> bytes:
    """A benign-looking dict whose value is ``module.name(argument)`` (a loader of the payload
    the pickled ``argument`` holds)."""
    return (proto(2) + EMPTY_DICT + MARK + text("note") + text("weights") + text("blob")
            + glob(module, name) + argument + TUPLE1 + REDUCE + SETITEMS + STOP)


def latin1_text(payload: bytes) -> bytes:
    """Bytes as protocol 2 writes them: ``_codecs.encode(text, 'latin1')``, without PROTO/STOP."""
    return pickle.dumps(payload, protocol=2)[2:-1]


Builder = Callable[[bytes], tuple[str, bytes]]
"""Turns a hostile pickle into (file name, file bytes)."""

CONTAINERS: dict[str, Builder] = {
    "zip": lambda p: ("model.pt", torch_zip({"data.pkl": p})),
    "plain-pkl": lambda p: ("model.pkl", p),
    "plain-bin": lambda p: ("pytorch_model.bin", p),
    "plain-ckpt": lambda p: ("last.ckpt", p),
    "zip-bin": lambda p: ("pytorch_model.bin", torch_zip({"data.pkl": p})),
    "legacy": lambda p: ("model.pt", legacy_stream(p)),
    "second-pickle-after-stop": lambda p: ("model.pt", torch_zip(
        {"data.pkl": benign_pickle() + p})),
    "second-data-pkl": lambda p: ("model.pt", torch_zip(
        [("archive/data.pkl", benign_pickle()), ("other/data.pkl", p)])),
    "duplicate-data-pkl": lambda p: ("model.pt", _duplicate_member(p)),
    "torchscript-constants": lambda p: ("model.pt", torch_zip(
        {"data.pkl": benign_pickle(), "constants.pkl": p})),
    # A payload handed to a loader (the loader is CKPT002 itself; so is what its payload names).
    "load-from-bytes": lambda p: ("model.pt", torch_zip({"data.pkl": load_from_bytes(p)})),
    "load-from-latin1-text": lambda p: ("model.pt", torch_zip({"data.pkl": loaded_by(
        "torch.storage", "_load_from_bytes", latin1_text(p))})),
    "pickle-loads": lambda p: ("model.pt", torch_zip({"data.pkl": loaded_by(
        "_pickle", "loads", binbytes(p))})),
    "zip-in-load-from-bytes": lambda p: ("model.pt", torch_zip({"data.pkl": load_from_bytes(
        torch_zip({"data.pkl": p}, folder="inner"))})),
    "legacy-in-load-from-bytes": lambda p: ("model.pt", torch_zip({"data.pkl": loaded_by(
        "torch.storage", "_load_from_bytes", latin1_text(legacy_stream(p)))})),
    "tar": lambda p: ("model.pth.tar", torch_tar(p)),
    "corrupt-after-global": lambda p: ("model.pt", torch_zip({"data.pkl": p[:-1] + b"\xff"})),
    # torch.load tries a tar before the legacy stream, and unpickles any file that is neither a
    # zip nor a tar; the unpickler runs what it names before it fails on what follows.
    "zip-encrypted-other-member": lambda p: ("model.pt", with_encrypted_member(
        torch_zip({"data.pkl": p, "extra": b"x"}), "archive/extra")),
    "plain-corrupt-after-global": lambda p: ("pytorch_model.bin", p[:-1] + b"\xff"),
    "safetensors-lookalike": lambda p: ("model.pt", safetensors_lookalike(p)),
    "v7-tar": lambda p: ("model.pth.tar", without_ustar_magic(torch_tar(p))),
    "tar-that-tarfile-refuses": lambda p: ("model.pt", tar_that_tarfile_refuses(p)),
    "tar-storages-only": lambda p: ("model.pth.tar", tar_of([("storages", p)])),
    "tar-storages-hard-link": lambda p: ("model.pth.tar", tar_of(
        [("payload", p), hard_link("storages", "payload"), ("tensors", pickle.dumps(0, 2)),
         ("pickle", benign_pickle())])),
}


PLAIN_BYTES: dict[str, Builder] = {
    "in-bytes-protocol-2": lambda p: ("model.pt", torch_zip({"data.pkl": in_bytes(p, 2)})),
    "in-bytes-protocol-4": lambda p: ("model.pt", torch_zip({"data.pkl": in_bytes(p, 4)})),
    "zip-in-bytes": lambda p: ("model.pt", torch_zip({"data.pkl": in_bytes(
        torch_zip({"data.pkl": p}, folder="inner"), 3)})),
    "legacy-in-bytes": lambda p: ("model.pt", torch_zip({"data.pkl": in_bytes(
        legacy_stream(p), 2)})),
}
"""A hostile pickle kept as a plain bytes value: data that nothing unpickles (torch.load returns
the bytes), so not a finding."""


def _duplicate_member(payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", benign_pickle())
        archive.writestr("archive/version", "3\n")
        archive.writestr(zipfile.ZipInfo("archive/data.pkl"), payload)  # same name again
    return buffer.getvalue()
