"""The rules about the file as a whole: CKPT001 pth-extension, CKPT005 legacy-format,
CKPT006 unreadable, CKPT007 extension-mismatch and CKPT008 device-tensors."""

from __future__ import annotations

import os
from collections import Counter

from ckpt_tool.containers.detect import Kind
from ckpt_tool.containers.suffixes import stem
from ckpt_tool.inputs import CHECKPOINT_KINDS
from ckpt_tool.lint.facts import FileFacts
from ckpt_tool.lint.findings import Finding, Severity, make_finding
from ckpt_tool.lint.names import (
    checkpoint_suffix,
    expected_kinds,
    is_pth,
    named_as_checkpoint,
)
from ckpt_tool.lint.policy import AllowedGlobals
from ckpt_tool.lint.read_back import read_back_by

_CHUNK = 1 << 20
# str.splitlines (site.py since 3.13) and universal newlines (before) both start a line after
# any of these bytes, whatever the locale's encoding.
_LINE_BREAKS = frozenset(b"\n\r\x0b\x0c\x1c\x1d\x1e\x85")
_BOM = b"\xef\xbb\xbf"


def find_import_line(path: str) -> int | None:
    """Offset of the first line that starts with ``import`` followed by a space or tab: the lines
    site.py executes. Streams the whole file (tensor bytes are text to site.py too)."""
    carry, base = b"\n", -1  # the start of the file starts a line
    with open(path, "rb") as f:
        head = f.read(len(_BOM) + 7)
        if head.startswith(_BOM + b"import") and head[len(_BOM) + 6 :][:1] in (b" ", b"\t"):
            return 0
        f.seek(0)
        while block := f.read(_CHUNK):
            data = carry + block
            at = data.find(b"import", 1)
            while at >= 0:
                follows = data[at + 6 : at + 7]
                if data[at - 1] in _LINE_BREAKS and follows in (b" ", b"\t"):
                    return base + at
                at = data.find(b"import", at + 1)
            keep = min(8, len(data))  # enough for a line break, "import" and what follows
            base += len(data) - keep
            carry = data[len(data) - keep :]
    return None


def check_pth_extension(facts: FileFacts, allowed: AllowedGlobals) -> list[Finding]:
    """CKPT001: a checkpoint named *.pth (a text path-configuration file is left alone)."""
    if not is_pth(facts.path) or facts.kind not in CHECKPOINT_KINDS:
        return []
    message = ("named *.pth: Python's site module reads every *.pth file in a site-packages "
               "directory at start-up as a path-configuration file, and a checkpoint there stops "
               "the interpreter from starting")
    try:
        offset = find_import_line(facts.path)
    except OSError:
        offset = None
    severity = None
    concise = "named *.pth, the extension of site-packages path-configuration files"
    if offset is not None:
        message += (f"; worse, its bytes hold a line starting with `import` (offset {offset}), "
                    "code that site.py would run at every interpreter start")
        concise = (f"named *.pth and holds an `import` line (offset {offset}) that site.py would "
                   "run at interpreter start")
        severity = Severity.ERROR
    reader = read_back_by(facts.path)
    if reader is None:
        message += (". Rename it to .pt with `ckpt lint --fix`, or rewrite it with "
                    "`ckpt convert --to pt`.")
    else:
        message += (f". But {reader.producer} reads it back by this exact name: renamed, "
                    f"{reader.breaks}. `ckpt lint --fix` leaves it alone (--unsafe-fixes renames "
                    "it anyway); keep it out of site-packages, or ignore CKPT001 for it with "
                    "per-file-ignores.")
        concise += f" (read back by this name by {reader.producer}: --fix leaves it)"
    return [make_finding("CKPT001", facts.path, message, None, offset, severity, concise,
                         read_back_by=reader.producer if reader else None)]


def check_legacy_format(facts: FileFacts, allowed: AllowedGlobals) -> list[Finding]:
    """CKPT005: torch's pre-1.6 stream, or its pre-0.4 tar."""
    if facts.kind is Kind.LEGACY:
        what = "a legacy (pre-1.6) torch stream"
        name = os.path.basename(facts.path)
        fix = (f"Rewrite it in the zip format: `ckpt convert {name} --to pt --rewrite "
               f"-o {stem(name)}.zip.pt`.")
    elif facts.torch_tar:
        what = "torch's pre-0.4 tar format"
        fix = "ckpt cannot rewrite it: if you trust it, load it with torch and save it again."
    else:
        return []
    sources = facts.checkpoint.source_records if facts.checkpoint else []
    carried = ""
    if sources:
        carried = (f" It carries the source code of {len(sources)} classes "
                   f"({', '.join(sources[:3])}{', ...' if len(sources) > 3 else ''}): torch.load "
                   "compares it with the installed code and, where a class sets dump_patches, "
                   "writes a <Class>.patch file of the difference into the working directory.")
    return [make_finding(
        "CKPT005", facts.path,
        f"{what}: torch.load(mmap=True) cannot map it, so every load reads all of it into memory, "
        f"and newer tools may not read it at all.{carried} {fix}",
        concise=f"{what}: torch.load(mmap=True) cannot map it")]


def check_unreadable(facts: FileFacts, allowed: AllowedGlobals) -> list[Finding]:
    """CKPT006: what could not be read, archive anomalies, and non-checkpoints named as one."""
    findings = [make_finding("CKPT006", facts.path, problem.message, problem.member)
                for problem in facts.problems]
    named = named_as_checkpoint(facts.path)
    if facts.kind is Kind.OTHER:
        if named and not (is_pth(facts.path) and facts.is_text):
            findings.append(make_finding("CKPT006", facts.path,
                                         f"not a checkpoint: {facts.description}"))
    elif facts.kind is Kind.TAR and not facts.torch_tar and named:
        findings.append(make_finding(
            "CKPT006", facts.path, "not a checkpoint: a tar archive without torch's storages, "
            "tensors and pickle members"))
    elif facts.read_error and (named or not facts.not_a_checkpoint):
        findings.append(make_finding("CKPT006", facts.path, facts.read_error))
    for anomaly in facts.anomalies:
        kind = "ambiguous archive" if anomaly.code == "ambiguous" else "corrupt archive"
        findings.append(make_finding("CKPT006", facts.path, f"{kind}: {anomaly.message}",
                                     anomaly.member))
    return findings


def _mismatch(facts: FileFacts, suffix: str) -> tuple[str, Severity | None]:
    kind = facts.kind
    if kind is Kind.SAFETENSORS:
        return (f"a safetensors file named {suffix}: torch.load cannot read it, and tools that "
                "pick a loader by extension will fail. Rename it to .safetensors.", None)
    if kind is Kind.TAR:
        return (f"a real tar archive named {suffix}: torch.save writes a zip archive under this "
                "name; torch.load reads a tar only with its pre-0.4 loader, which unpickles its "
                "members in full. If you trust it, load it with torch and save it again.", None)
    if kind is Kind.PICKLE:
        return (f"a plain Python pickle, not a torch.save file, named {suffix}: torch.load "
                "unpickles it (running whatever it names) before failing on the missing magic "
                "number. Load it with pickle only if you trust it, or save it with torch.save.",
                Severity.ERROR if suffix == ".safetensors" else None)
    return (f"{facts.description} named {suffix}: people and tools trust .safetensors files to "
            "hold no code, but this one is a pickle-based torch file. Rename it to .pt, or "
            "convert it with `ckpt convert --to safetensors`.", Severity.ERROR)


def check_extension(facts: FileFacts, allowed: AllowedGlobals) -> list[Finding]:
    """CKPT007: the content is a checkpoint, but not the kind the extension names."""
    expected, suffix = expected_kinds(facts.path), checkpoint_suffix(facts.path)
    if expected is None or suffix is None or facts.kind not in CHECKPOINT_KINDS:
        return []
    if facts.kind in expected:
        return []
    message, severity = _mismatch(facts, suffix)
    return [make_finding("CKPT007", facts.path, message, severity=severity,
                         concise=message.split(":", 1)[0])]


def _on_cpu(location: str) -> bool:
    return location.lower().startswith("cpu") or location == "meta"


def check_device_tensors(facts: FileFacts, allowed: AllowedGlobals) -> list[Finding]:
    """CKPT008 (off by default): storages saved from a device other than the CPU."""
    if facts.checkpoint is None:
        return []
    devices = Counter(storage.location for storage in facts.checkpoint.storages.values()
                      if not _on_cpu(storage.location))
    if not devices:
        return []
    listing = ", ".join(f"{device} ({count} storages)" for device, count in sorted(devices.items()))
    name = os.path.basename(facts.path)
    return [make_finding(
        "CKPT008", facts.path,
        f"tensors saved on {listing}: on a machine without that device, "
        f"torch.load({name!r}) fails unless it passes map_location=\"cpu\". Move the tensors to "
        "the CPU before saving.", concise=f"tensors saved on {listing}")]
