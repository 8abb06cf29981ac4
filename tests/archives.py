"""Build torch-style zip archives around hand-made pickles, for hostile-input tests."""

from __future__ import annotations

import io
import zipfile


def torch_archive(data_pkl: bytes, records: dict[str, bytes] | None = None, *,
                  folder: str = "archive", compress_pickle: bool = False,
                  extra_members: list[tuple[str, bytes]] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        method = zipfile.ZIP_DEFLATED if compress_pickle else zipfile.ZIP_STORED
        archive.writestr(zipfile.ZipInfo(f"{folder}/data.pkl"), data_pkl, compress_type=method)
        for name, payload in (records or {}).items():
            archive.writestr(f"{folder}/{name}", payload)
        archive.writestr(f"{folder}/byteorder", b"little")
        archive.writestr(f"{folder}/version", b"3\n")
        for name, payload in extra_members or []:
            archive.writestr(name, payload)
    return out.getvalue()


def tensor_pickle(numel: int, key: str = "0") -> bytes:
    """``{"w": <float32 tensor of numel elements in storage key>}`` as torch pickles it."""
    key_bytes = key.encode()
    numel_op = b"J" + numel.to_bytes(4, "little") if numel < 2**31 else (
        b"\x8a\x08" + numel.to_bytes(8, "little"))
    return (
        b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00"
        b"\x00\x00storageq\x03ctorch\nFloatStorage\nq\x04X" + len(key_bytes).to_bytes(4, "little")
        + key_bytes + b"X\x03\x00\x00\x00cpuq\x05" + numel_op + b"tq\x06QK\x00K\x01\x85K\x01\x85"
        b"\x89ccollections\nOrderedDict\n)Rq\x07tq\x08Rq\x09s."
    )
