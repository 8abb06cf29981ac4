"""CKPT002 code-execution, CKPT003 custom-class, CKPT004 weights-only-refused: the globals and
opcodes of the file's pickles, judged by ``policy.judge``."""

from __future__ import annotations

from collections.abc import Iterator

from ckpt_tool.containers.detect import Kind
from ckpt_tool.lint.facts import FileFacts
from ckpt_tool.lint.findings import Finding, make_finding
from ckpt_tool.lint.pickles import PickleSite, Role
from ckpt_tool.lint.policy import (
    CALLING_RUNS_CODE,
    REVIEWED_TORCHBIND,
    SCRIPT_OBJECT,
    AllowedGlobals,
    Verdict,
    judge,
    never_allow_list,
    reason,
)
from ckpt_tool.pickles.safety import TORCH_WEIGHTS_ONLY_OPCODES
from ckpt_tool.pickles.scan import GlobalUse

_MAX_LISTED = 12


Judged = tuple[PickleSite, GlobalUse, Verdict]


def _judged(facts: FileFacts, allowed: AllowedGlobals,
            sites: list[PickleSite] | None = None) -> Iterator[Judged]:
    for site in facts.sites if sites is None else sites:
        for use in site.scan.globals:
            verdict = judge(use.module, use.name, allowed, facts.torchscript)
            if _from_package(use.module, facts.package_modules):
                verdict = Verdict.CODE_EXECUTION  # imported from the archive's own source
            elif use.full_name in CALLING_RUNS_CODE and site.role is Role.MAIN and (
                    facts.checkpoint is None or use.full_name in facts.checkpoint.built.called):
                verdict = Verdict.CODE_EXECUTION  # the pickle calls it: its __init__ runs
            if (use.full_name == SCRIPT_OBJECT and verdict is Verdict.NOT_REVIEWED
                    and site.role is Role.MAIN and facts.torchbind_classes is not None
                    and facts.torchbind_classes <= REVIEWED_TORCHBIND):
                verdict = Verdict.TORCHSCRIPT_CLASS  # judged by the classes its state names
            yield site, use, verdict


def _from_package(module: str, modules: frozenset[str]) -> bool:
    parts = module.split(".")
    return bool(modules) and any(".".join(parts[:n]) in modules for n in range(1, len(parts) + 1))


def _global_text(use: GlobalUse) -> str:
    if "." in use.name:
        return (f"`{use.full_name}` (module `{use.module}`, attribute path `{use.name}`, judged "
                "as a whole)")
    return f"`{use.full_name}`"


def _clip(text: str, width: int = 120) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown if len(names) <= _MAX_LISTED else f"{shown} and {len(names) - _MAX_LISTED} more"


def check_code_execution(facts: FileFacts, allowed: AllowedGlobals) -> list[Finding]:
    """CKPT002: one finding per global (per pickle) that runs code or that nobody reviewed, and
    one per place where the pickle chooses its global at load time (unresolved STACK_GLOBAL, EXT
    codes)."""
    findings: list[Finding] = []
    seen: set[tuple[str | None, int, str]] = set()
    for site, use, verdict in _judged(facts, allowed):
        key = (site.member, site.base, use.full_name)
        if not verdict.may_run_code or key in seen:
            continue
        seen.add(key)
        findings.append(make_finding(
            "CKPT002", facts.path,
            f"{_global_text(use)} named by {use.opcode} at {site.where(use.offset)}: "
            f"{_why_code(use, verdict, facts)} Do not load this file.",
            site.member, site.base + use.offset,
            concise=f"`{use.full_name}` ({use.opcode} at {site.where(use.offset)}): "
                    f"{_short_why(use, verdict, facts)}",
            globals=(use.full_name,)))
    if facts.checkpoint is not None and facts.checkpoint.built.forged_numpy_dtypes:
        forged = facts.checkpoint.built.forged_numpy_dtypes
        findings.append(make_finding(
            "CKPT002", facts.path,
            f"the pickle gives numpy dtype{'s' if len(forged) > 1 else ''} "
            f"{', '.join(forged[:5])} flags numpy never gives that type: numpy trusts them and "
            "reads raw bytes as object pointers (torch.load crashes, or worse). No writer does "
            "this. Do not load this file.",
            concise=f"numpy dtype {forged[0]} with forged flags: memory corruption on load",
            globals=("numpy.dtype",)))
    for name in facts.global_mutations:
        findings.append(make_finding(
            "CKPT002", facts.path,
            f"the pickle torch loads BUILDs the global `{name}` itself: torch.load would set "
            "attributes of the loader's own class or function (a function given dump_patches "
            "and a __name__ makes torch's legacy loader write a .patch file wherever that name "
            "points). No checkpoint writer does this. Do not load this file.",
            concise=f"BUILD on the global `{name}` itself: changes the loader's own objects",
            globals=(name,)))
    for member in facts.native_code:
        findings.append(make_finding(
            "CKPT002", facts.path,
            f"{member} holds native code (a shared library or an executable): a loader that "
            "uses it (torch._inductor's aoti_load_package for a .pt2, an importer of a "
            "package) runs it with the loader's rights, and no scan of its bytes can tell what "
            "it does. Do not load this file unless you trust its source.", member,
            concise=f"{member} holds native code (a shared library or an executable)"))
    for call in facts.code_calls:
        when = ("it is in a __setstate__, which torch.jit.load (so torch.load) runs while "
                "loading" if call.at_load else "TorchScript code runs when the model is called")
        findings.append(make_finding(
            "CKPT002", facts.path,
            f"line {call.line} of {call.member} {call.reason}: `{_clip(call.text)}` ({when}). "
            "Do not load this file.", call.member,
            concise=f"line {call.line} of {call.member} {call.reason.split(',')[0]}"
                    + (" in __setstate__ (runs on load)" if call.at_load else "")))
    for site in facts.sites:
        for unresolved in site.scan.unresolved:
            findings.append(make_finding(
                "CKPT002", facts.path,
                f"{unresolved.opcode} at {site.where(unresolved.offset)} picks its global at load "
                f"time ({unresolved.reason}): it could be any callable. Do not load this file.",
                site.member, site.base + unresolved.offset,
                concise=f"{unresolved.opcode} at {site.where(unresolved.offset)} picks its "
                        "global at load time"))
    return findings


def _short_why(use: GlobalUse, verdict: Verdict, facts: FileFacts) -> str:
    if _from_package(use.module, facts.package_modules):
        return "the archive ships its module's source"
    if "." in use.name:
        return "an attribute path, never trusted"
    if verdict is Verdict.NOT_REVIEWED:
        return "not reviewed, may run code"
    return "runs code or touches the system"


def _why_code(use: GlobalUse, verdict: Verdict, facts: FileFacts | None = None) -> str:
    if facts is not None and _from_package(use.module, facts.package_modules):
        return ("its module is Python source the torch.package archive ships: PackageImporter "
                "imports it from the archive, whatever installed module it is named after, "
                "and runs it.")
    if use.full_name in CALLING_RUNS_CODE:
        return f"the pickle calls the class: {CALLING_RUNS_CODE[use.full_name]}."
    why = reason(use.module, use.name)
    if "." in use.name:
        return (f"{why}; unpickling imports it and may call it (torch.load with "
                "weights_only=False would).")
    if verdict is Verdict.NOT_REVIEWED:
        return (f"{why}: it is not known to be safe, and unpickling imports it and calls it with "
                "arguments the file chooses, so it may run code or touch the system (torch.load "
                "with weights_only=False would call it; never allow-list it).")
    return (f"known to run code or touch the system ({why}), and unpickling imports and calls "
            "it (torch.load with weights_only=False would run it).")


def _covered_by_weights_only(facts: FileFacts, site: PickleSite, use: GlobalUse) -> bool:
    """Torch classes are CKPT004's where torch.load reads the pickle; anywhere else (a plain
    pickle, a pickle hidden in a data record or beside data.pkl) CKPT003 lists them."""
    if facts.torchscript and use.module.startswith("__torch__"):
        return True
    return site.role is Role.MAIN and (facts.kind in (Kind.ZIP, Kind.LEGACY) or facts.torch_tar)


def check_custom_class(facts: FileFacts, allowed: AllowedGlobals) -> list[Finding]:
    """CKPT003: one finding per file listing the classes from outside torch, numpy and stdlib
    (and torch classes in pickles that CKPT004 does not judge)."""
    first: dict[str, tuple[PickleSite, GlobalUse]] = {}
    for site, use, verdict in _judged(facts, allowed):
        library_class = verdict in (Verdict.REVIEWED, Verdict.TORCHSCRIPT_CLASS)
        if verdict is Verdict.CUSTOM or (library_class
                                         and not _covered_by_weights_only(facts, site, use)):
            first.setdefault(use.full_name, (site, use))
    if not first:
        return []
    site, use = next(iter(first.values()))
    custom_only = all(judge(u.module, u.name, allowed) is Verdict.CUSTOM for _, u in first.values())
    which = ("from outside torch, numpy and the standard library" if custom_only else
             "(torch classes included: this pickle is not one torch.load(weights_only=True) "
             "judges)")
    return [make_finding(
        "CKPT003", facts.path,
        f"the pickle names classes {which}: "
        f"{_listing(list(first))} (first at {site.where(use.offset)}). Loading it imports that "
        "code and runs it (constructors, __setstate__); save model.state_dict() instead of the "
        "model object, or add the names to allowed-globals if you trust them.",
        site.member, site.base + use.offset,
        concise=f"{_count(len(first), 'class', 'classes')} from outside torch, numpy and the "
                f"standard library: {_short_listing(list(first))}" if custom_only else
                f"{_count(len(first), 'class', 'classes')} loading imports and runs: "
                f"{_short_listing(list(first))}",
        globals=tuple(first))]


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _short_listing(names: list[str], shown: int = 2) -> str:
    more = f" +{len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def check_weights_only(facts: FileFacts, allowed: AllowedGlobals) -> list[Finding]:
    """CKPT004: would ``torch.load(weights_only=True)`` refuse this file?"""
    main = facts.main_sites()
    if facts.torchscript and main:
        return [make_finding(
            "CKPT004", facts.path,
            "a TorchScript archive: torch.load(weights_only=True) refuses it (torch.load hands "
            "TorchScript to torch.jit.load). Load it with torch.jit.load, or save a state_dict.",
            main[0].member, concise="a TorchScript archive: refused by weights_only=True")]
    if facts.torch_tar:
        return [make_finding(
            "CKPT004", facts.path,
            "torch's pre-0.4 tar format: torch.load(weights_only=True) refuses it outright. "
            "If you trust it, load it with torch and save it again.",
            concise="torch's pre-0.4 tar format: refused by weights_only=True")]
    if facts.kind not in (Kind.ZIP, Kind.LEGACY) or not main:
        return []
    return _refused_globals(facts, main, allowed)


def _refused_globals(facts: FileFacts, main: list[PickleSite],
                     allowed: AllowedGlobals) -> list[Finding]:
    refused: dict[str, Verdict] = {}
    place: tuple[PickleSite, int] | None = None
    for site, use, verdict in _judged(facts, allowed, main):
        if verdict.weights_only_refuses and use.full_name not in refused:
            refused[use.full_name] = verdict
            place = place or (site, use.offset)
    opcodes = sorted(set().union(*(site.scan.opcodes for site in main))
                     - TORCH_WEIGHTS_ONLY_OPCODES)
    if not refused and not opcodes:  # unresolved globals come with STACK_GLOBAL or EXT opcodes
        return []
    if place is None:
        place = (main[0], 0)
    site, offset = place
    trusted = tuple(name for name, verdict in refused.items()
                    if verdict.may_be_allow_listed and not never_allow_list(name))
    parts = []
    if refused:
        parts.append(f"{_count(len(refused), 'global', 'globals')} off its allow-list "
                     f"({_short_listing(list(refused))})")
    if opcodes:
        parts.append(f"opcodes {_short_listing(opcodes, 3)}")
    return [make_finding("CKPT004", facts.path, _weights_only_message(refused, opcodes),
                         site.member, site.base + offset,
                         concise="refused by torch.load(weights_only=True): " + "; ".join(parts),
                         globals=tuple(refused), allow_list=trusted)]


def _weights_only_message(refused: dict[str, Verdict], opcodes: list[str]) -> str:
    parts = ["torch.load(weights_only=True), the default since torch 2.6, refuses this file:"]
    if refused:
        parts.append(f"it names globals not on torch's allow-list: {_listing(list(refused))}"
                     + ("," if opcodes else "."))
    if opcodes:
        joint = "and its" if refused else "its"
        parts.append(f"{joint} pickle uses opcodes torch's weights-only unpickler lacks: "
                     f"{', '.join(opcodes)} (re-save with torch.save's default pickle_protocol=2; "
                     "allow-listing cannot help with these).")
    trusted = [name for name, verdict in refused.items()
               if verdict.may_be_allow_listed and not never_allow_list(name)]
    state = [name for name, verdict in refused.items()
             if verdict.may_be_allow_listed and never_allow_list(name)]
    unsafe = [name for name, verdict in refused.items() if verdict.may_run_code]
    custom = [name for name, verdict in refused.items() if verdict is Verdict.CUSTOM
              or (verdict is Verdict.TORCHSCRIPT_CLASS and name != SCRIPT_OBJECT)]
    if trusted:
        parts.append("ckpt reviewed these as harmless to construct; if you trust the file, allow "
                     "them before loading: "
                     f"`torch.serialization.add_safe_globals([{', '.join(trusted)}])`.")
    if custom:
        parts.append(f"{_listing(custom)}: code from outside torch, numpy and the standard "
                     "library that ckpt cannot vouch for (see CKPT003); allow-list it only if you "
                     "wrote it.")
    if state:
        parts.append(f"{_listing(state)}: ckpt judged what this file gives them, but never "
                     "allow-list them: numpy trusts the dtype flags a file states, and a "
                     "DeviceMesh a file calls sets up a process group, so any other file could "
                     "misuse them.")
    if SCRIPT_OBJECT in refused and refused[SCRIPT_OBJECT] is Verdict.TORCHSCRIPT_CLASS:
        parts.append(f"{SCRIPT_OBJECT} holds quantized packed weights here (classes ckpt "
                     "reviewed), but never allow-list it: it would admit every TorchScript custom "
                     "class, whatever its __setstate__ does.")
    if unsafe:
        parts.append(f"Never allow-list {_listing(unsafe)} (see CKPT002): with it allowed, even "
                     "weights_only=True would run what the file asks.")
    parts.append("Or rewrite the file with `ckpt convert --to safetensors`.")
    return " ".join(parts)
