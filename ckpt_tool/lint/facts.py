"""Everything the rules look at, gathered once per file without running or importing anything.

Two readings of the file are kept apart on purpose: ``sites`` is lint's own walk of every pickle
(so a file the reader rejects is still checked for code), and ``checkpoint`` is the reader's model
of what torch would load (storages, devices, archive anomalies), or ``read_error``.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import TYPE_CHECKING

from ckpt_tool.containers import npy, zipdir
from ckpt_tool.containers.detect import Kind, sniff
from ckpt_tool.containers.remote import NO_OPTIONS, RemoteOptions, is_url, open_url
from ckpt_tool.containers.source import FileSource, Source
from ckpt_tool.errors import (
    CkptError,
    FormatError,
    GlobalMutation,
    LimitExceeded,
    NotACheckpoint,
)
from ckpt_tool.limits import DEFAULT_LIMITS, Limits
from ckpt_tool.lint.pickles import (
    MAX_PICKLES_PER_STREAM,
    PickleCollector,
    PickleSite,
    Problem,
    Role,
    is_pickle_member,
    names_code,
    stopped_by_a_limit,
)
from ckpt_tool.model.checkpoint import Anomaly, Checkpoint, Member
from ckpt_tool.model.record import Record
from ckpt_tool.pickles.scan import read_pickle_at
from ckpt_tool.readers import read_checkpoint
from ckpt_tool.readers.dcp_listing import dcp_folder_owning
from ckpt_tool.readers.torch_zip import TorchArchive, without_case

if TYPE_CHECKING:
    import tarfile

    from ckpt_tool.lint.torchscript_code import CodeCall

_DCP_DATA_SUFFIX = ".distcp"
LEGACY_PARTS: list[str | None] = [
    "magic number", "protocol version", "sys_info", "object pickle", "storage keys"]
"""The five pickles at the start of a legacy stream, named as the legacy reader names them."""
_TEXT_SAMPLE = 4096
_PLAIN_PICKLE = "a plain Python pickle (protocol 0 or 1)"
READ_ERRORS = (CkptError, OSError, ValueError, EOFError, struct.error, zlib.error,
               RecursionError, MemoryError)
"""What hostile or damaged input may raise while it is read; anything else is a bug in ckpt.
(tarfile's errors are caught where tarfile is called: ``_tar_members``.)"""


class FileFacts(Record):
    __slots__ = ("path", "kind", "description", "size", "is_text", "sites", "problems",
                 "checkpoint", "read_error", "not_a_checkpoint", "anomalies", "torchscript",
                 "torch_tar", "native_code", "global_mutations", "package_modules",
                 "torchbind_classes", "code_calls", "bytes_read", "requests")
    __hash__ = None  # type: ignore[assignment]  # mutable
    path: str
    kind: Kind | None
    """What the bytes hold; None when the file could not be opened."""
    description: str
    size: int
    is_text: bool
    sites: list[PickleSite]
    problems: list[Problem]
    checkpoint: Checkpoint | None
    read_error: str | None
    not_a_checkpoint: bool
    """The reader's error says the content is something else (not that it is damaged)."""
    anomalies: list[Anomaly]
    torchscript: bool
    torch_tar: bool
    native_code: list[str]
    """Archive members holding shared libraries or executables."""
    global_mutations: list[str]
    """Globals a pickle torch loads sets the state of (BUILD on the global itself)."""
    package_modules: frozenset[str]
    """Python modules a torch.package archive ships (its ``.py`` members): PackageImporter
    imports them from the archive, whatever installed module they are named after."""
    torchbind_classes: frozenset[str] | None
    """The TorchScript custom classes the model's ``torch.ScriptObject`` values name (None when
    the model could not be read)."""
    code_calls: list[CodeCall]
    """Risky calls in a TorchScript archive's own code."""
    bytes_read: int
    """Bytes read from the file (distinct bytes of a local file; fetched bytes of a URL)."""
    requests: int
    """Requests made for a URL (0 for a local file)."""

    def __init__(self, path: str, kind: Kind | None = None, description: str = "", size: int = 0,
                 is_text: bool = False, sites: list[PickleSite] | None = None,
                 problems: list[Problem] | None = None, checkpoint: Checkpoint | None = None,
                 read_error: str | None = None, not_a_checkpoint: bool = False,
                 anomalies: list[Anomaly] | None = None, torchscript: bool = False,
                 torch_tar: bool = False, native_code: list[str] | None = None,
                 global_mutations: list[str] | None = None,
                 package_modules: frozenset[str] = frozenset(),
                 torchbind_classes: frozenset[str] | None = None,
                 code_calls: list[CodeCall] | None = None, bytes_read: int = 0,
                 requests: int = 0) -> None:
        self.path = path
        self.kind = kind
        self.description = description
        self.size = size
        self.is_text = is_text
        self.sites = [] if sites is None else sites
        self.problems = [] if problems is None else problems
        self.checkpoint = checkpoint
        self.read_error = read_error
        self.not_a_checkpoint = not_a_checkpoint
        self.anomalies = [] if anomalies is None else anomalies
        self.torchscript = torchscript
        self.torch_tar = torch_tar
        self.native_code = [] if native_code is None else native_code
        self.global_mutations = [] if global_mutations is None else global_mutations
        self.package_modules = package_modules
        self.torchbind_classes = torchbind_classes
        self.code_calls = [] if code_calls is None else code_calls
        self.bytes_read = bytes_read
        self.requests = requests

    def main_sites(self) -> list[PickleSite]:
        return [site for site in self.sites if site.role is Role.MAIN]


def gather_facts(path: str, limits: Limits, remote: RemoteOptions = NO_OPTIONS) -> FileFacts:
    """Never raises on bad input: what could not be read becomes a ``Problem``."""
    facts = FileFacts(path)
    if is_url(path):
        return _gather_url(path, facts, limits, remote)
    if os.path.isdir(path):
        facts.problems.append(Problem("is a directory"))
        return facts
    if os.path.exists(path) and not os.path.isfile(path):  # opening a FIFO would wait forever
        facts.problems.append(Problem("not a regular file (a pipe, socket or device)"))
        return facts
    try:
        source = FileSource(path)
    except OSError as exc:
        facts.problems.append(Problem(exc.strerror or str(exc)))
        return facts
    with source:
        try:
            _gather(source, facts, limits)
        except READ_ERRORS as exc:
            facts.problems.append(Problem(_describe(exc)))
        facts.bytes_read = source.bytes_read
    return facts


def _gather_url(url: str, facts: FileFacts, limits: Limits, remote: RemoteOptions) -> FileFacts:
    """A remote file, read through range requests like a local one."""
    try:
        source = open_url(url, remote)
    except CkptError as exc:
        facts.problems.append(Problem(str(exc)))
        return facts
    try:
        _gather(source, facts, limits)
    except READ_ERRORS as exc:
        facts.problems.append(Problem(_describe(exc)))
    finally:
        facts.bytes_read, facts.requests = source.bytes_read, source.requests
        source.close()
    return facts


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CkptError | OSError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def _gather(source: Source, facts: FileFacts, limits: Limits) -> None:
    facts.size = source.size
    owner = dcp_folder_owning(source.name)
    if owner is not None:
        _gather_dcp_data(source, facts, limits, owner)
        if source.name.endswith(_DCP_DATA_SUFFIX):
            return  # no loader but DCP opens a .distcp file; any other, torch.load may: below
    kind, facts.description = sniff(source)
    tar_members = _tar_members(source) if kind is Kind.TAR else None
    if kind is Kind.TAR and tar_members is None:
        kind, facts.description = Kind.OTHER, "a tar archive Python's tarfile cannot open"
    if kind is Kind.OTHER:
        head = source.read_at(0, min(source.size, _TEXT_SAMPLE))
        facts.is_text = _looks_like_text(head)
    if kind is Kind.SAFETENSORS:
        _read_model(source, facts, limits)
    polyglot = False
    if _unpickled_from_the_start(kind) and _is_unmarked_pickle(source, limits):
        if kind is Kind.SAFETENSORS and facts.read_error is None:
            polyglot = True
            facts.anomalies.append(Anomaly(
                "ambiguous", "a polyglot: a valid safetensors file that is also a pickle from its "
                "first byte, which torch.load (for any name but *.safetensors) and pickle.load "
                "unpickle"))
        elif kind is Kind.TAR:
            polyglot = True
            facts.anomalies.append(Anomaly(
                "ambiguous", "a polyglot: a tar archive that is also a pickle from its first "
                "byte, which torch.load unpickles when a tar member cannot be extracted"))
        else:
            kind, facts.description, facts.read_error = Kind.PICKLE, _PLAIN_PICKLE, None
    facts.kind = kind
    collector = PickleCollector(limits, facts.sites, facts.problems)
    if kind is Kind.PICKLE or polyglot:
        _gather_plain(source, collector)
    if kind is Kind.OTHER and source.read_at(0, min(source.size, 6)) == npy.MAGIC:
        facts.description = "a numpy .npy array file"
        collector.scan_npy(source, None)
    archive = None
    if kind is Kind.ZIP:
        archive = _gather_zip(source, facts, collector)
    elif kind is Kind.LEGACY:
        collector.scan_stream(source, 0, source.size, LEGACY_PARTS)
    elif tar_members is not None:
        from ckpt_tool.lint.tar import scan_torch_tar

        facts.torch_tar = scan_torch_tar(source, tar_members, collector)
    if kind in (Kind.ZIP, Kind.LEGACY):
        _read_model(source, facts, limits, archive)


def _gather_dcp_data(source: Source, facts: FileFacts, limits: Limits, owner: str) -> None:
    """A data file of a torch.distributed.checkpoint folder: no loader opens it whole; DCP reads
    the byte ranges its metadata names, each a torch.save archive that it ``torch.load``s."""
    facts.kind = Kind.OTHER
    facts.description = f"a data file of the torch.distributed.checkpoint {owner}"
    from ckpt_tool.readers.dcp import slices_of

    collector = PickleCollector(limits, facts.sites, facts.problems)
    metadata = owner if os.path.isfile(owner) else os.path.join(owner, ".metadata")
    try:
        slices = slices_of(metadata, os.path.basename(source.name), limits)
    except CkptError as exc:
        collector.problem(f"its DCP metadata could not be read: {exc}")
        return
    for start, length, item in slices:
        collector.scan_archive_at(source, start, length, f"{item} (bytes {start}..)")
    facts.native_code = collector.native_code


def _tar_members(source: Source) -> list[tarfile.TarInfo] | None:
    """The tar's members, or None when tarfile refuses it (torch.load then unpickles the file
    from its first byte instead)."""
    if is_url(source.name):
        return None  # the old tar format is not read over the network
    import tarfile

    try:
        with tarfile.open(source.name, mode="r:") as tar:  # reads the headers only
            return tar.getmembers()
    except tarfile.TarError:
        return None


def _unpickled_from_the_start(kind: Kind) -> bool:
    """torch.load unpickles any file that is neither a zip nor a tar from its first byte (its
    legacy loader), and fails on a wrong magic number only after that: content that is no
    checkpoint, and a safetensors file whatever its header says, may still be a pickle it runs.
    So may a tar: torch falls back to unpickling it when a member cannot be extracted."""
    return kind in (Kind.OTHER, Kind.SAFETENSORS, Kind.TAR)


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a character cut by the sample's end
    return True


def _is_unmarked_pickle(source: Source, limits: Limits) -> bool:
    """A protocol 0 or 1 pickle has no PROTO to sniff: accept one that walks cleanly to STOP and
    names a global (a harmless one is no concern; text that parses by chance names none), or one
    that names code before it breaks: the unpickler imports and calls as it goes, so the error
    after it comes too late. Only an importable name of code counts there, so that text or data
    whose first lines read as a global (``import os``) is not taken for a pickle."""
    scan, _ = read_pickle_at(source, 0, source.size, limits)
    if scan.error is None:
        return bool(scan.globals or scan.unresolved)
    return names_code(scan) or stopped_by_a_limit(scan)


def is_unmarked_pickle(path: str, limits: Limits = DEFAULT_LIMITS) -> bool:
    """``_is_unmarked_pickle`` for a local file; False when it cannot be read."""
    try:
        with FileSource(path) as source:
            return source.size > 0 and _is_unmarked_pickle(source, limits)
    except READ_ERRORS:
        return False


def _gather_plain(source: Source, collector: PickleCollector) -> None:
    found = collector.scan_stream(source, 0, source.size, [None] * MAX_PICKLES_PER_STREAM)
    if found and found[0][0].error is not None:
        collector.problem(f"the pickle is corrupt: {found[0][0].error}")


def _gather_zip(source: Source, facts: FileFacts, collector: PickleCollector
                ) -> TorchArchive | None:
    """Scan the archive's pickles; return its torch directory for the reader (read once)."""
    main: Member | None = None
    raw_records = None
    archive: TorchArchive | None = None
    try:
        archive = TorchArchive(source, collector.limits)
    except NotACheckpoint:
        members = zipdir.read_central_directory(source, collector.limits, facts.anomalies)
    except LimitExceeded:
        raise
    except FormatError:  # miniz (torch) refuses the archive; Python's zipfile may read it
        _scan_zipfile_directory(source, facts, collector, None)
        raise
    else:
        members, main = archive.members, archive.member("data.pkl")
        facts.torchscript = archive.has("constants.pkl")
        facts.anomalies = list(archive.anomalies)
        if main is not None:
            raw_records = archive.prefix + "data/"
    collector.scan_zip(source, members, main, raw_records=raw_records)
    if archive is not None and main is not None:
        archive.scans.update(("data.pkl", site.scan) for site in facts.sites
                             if site.member == main.name and site.role is Role.MAIN
                             and site.base == 0 and site.scan.start == 0)
    facts.package_modules = _package_modules(members)
    classic = zipdir.classic_directory(source, collector.limits)
    if classic is not None:  # what readers that ignore the zip64 record load instead
        collector.scan_zip(source, classic, None, prefix="(classic directory) ")
    _scan_zipfile_directory(source, facts, collector, members)
    facts.native_code = collector.native_code
    _read_torchscript_code(source, facts, collector, members)
    # Every local header of a local file (a mapped read each); over the network only the
    # pickles', where a disagreement could change what is unpickled.
    checked = members if getattr(source, "mapped", None) is not None else [
        m for m in members if is_pickle_member(m.name) or m == main]
    facts.anomalies += zipdir.local_header_disagreements(source, checked)
    return archive


def _scan_zipfile_directory(source: Source, facts: FileFacts, collector: PickleCollector,
                            members: zipdir.Directory | None) -> None:
    """The members only Python's zipfile lists (numpy.load reads an .npz with it), where it
    reads another directory than miniz (``members``; None when miniz refuses the archive)."""
    try:
        listed = zipdir.zipfile_directory(source, collector.limits, members)
    except LimitExceeded as exc:
        collector.problem(str(exc))
        return
    if listed is None:
        return
    facts.anomalies.append(Anomaly(
        "ambiguous", "Python's zipfile (numpy.load of an .npz) reads another central directory "
        "than torch's reader (miniz): the two load different members"))
    known = {(m.header_offset, m.compressed_size, m.method) for m in members or ()}
    collector.scan_zip(source, [m for m in listed if (m.header_offset, m.compressed_size,
                                                       m.method) not in known],
                       None, prefix="(Python zipfile's directory) ")


def _package_modules(members: list[Member]) -> frozenset[str]:
    """The modules of a torch.package archive (one with ``.data/extern_modules``, found as
    PackageImporter's miniz finds it: without ASCII case): each ``.py`` member under the
    archive's folder, by module name."""
    if not any(without_case(m.name.split("/", 1)[-1]) == ".data/extern_modules"
               for m in members):
        return frozenset()
    modules = set()
    for member in members:
        _, _, path = member.name.partition("/")
        if path.endswith(".py") and not path.startswith(".data/"):
            parts = path[:-3].split("/")
            modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return frozenset(modules)


def _read_torchscript_code(source: Source, facts: FileFacts, collector: PickleCollector,
                           members: list[Member]) -> None:
    """The ``code/`` files torch.jit.load compiles and runs (any folder: a second archive folder
    is read by other loaders). Their bytes count against the same budget as the pickles."""
    for member in members:
        parts = member.name.lower().split("/")  # torch finds them without ASCII case (miniz)
        if len(parts) < 3 or parts[1] != "code" or not parts[-1].endswith(".py"):
            continue
        budget = collector.limits.max_pickle_bytes - collector.inflated[0]
        try:
            data = zipdir.read_member(source, member, budget)
        except CkptError as exc:
            collector.problem(f"could not read {member.name}: {exc}", member.name)
            continue
        collector.inflated[0] += len(data)
        from ckpt_tool.lint.torchscript_code import risky_calls

        facts.code_calls += risky_calls(member.name, data.decode("utf-8", "replace"))


def _read_model(source: Source, facts: FileFacts, limits: Limits,
                archive: TorchArchive | None = None) -> None:
    try:
        facts.checkpoint = read_checkpoint(source, limits, archive)
    except GlobalMutation as exc:
        facts.global_mutations.append(exc.global_name)
        return
    except CkptError as exc:
        facts.read_error = str(exc)
        facts.not_a_checkpoint = isinstance(exc, NotACheckpoint)
        return
    facts.anomalies += [a for a in facts.checkpoint.anomalies if a not in facts.anomalies]
    facts.torchbind_classes = frozenset(facts.checkpoint.built.script_classes)
    facts.torchscript = facts.checkpoint.format.value == "torchscript"
