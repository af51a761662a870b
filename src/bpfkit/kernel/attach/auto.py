"""Auto-attach: attach a program where its section name says (``tracepoint/syscalls/sys_enter_openat``,
``uprobe//usr/lib/libc.so.6:malloc``, ``raw_tp/sched_switch``...), as libbpf's skeletons do.

Sections that need a target the name cannot give (xdp and tc need an interface, cgroup programs a
cgroup, socket filters a socket, perf_event an event, netfilter a hook) are not auto-attachable: the
program is skipped, and listed in `AutoAttached.skipped`. Section conventions come from
`bpfkit.obj.sections`. Target syntax after the section prefix:

- ``tracepoint/<category>/<name>``, ``raw_tp/<name>``, ``tp_btf/<name>``
- ``kprobe/<func>[+<offset>]``, ``kretprobe/<func>``, ``ksyscall/<syscall>``, ``kprobe.multi/<glob>``
- ``uprobe/<binary>:<func>[+<offset>]`` (or ``:<0xaddress>``), ``uretprobe/...``,
  ``uprobe.multi/<binary>:<glob>``
- ``usdt/<binary>:<provider>:<name>``
- ``fentry/<func>``, ``fexit/<func>``, ``fmod_ret/<func>``, ``lsm/<hook>`` (target fixed at load),
  ``iter/<target>``
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bpfkit.errors import BpfkitError
from bpfkit.kernel.attach.base import AttachedLink, LinkGroup
from bpfkit.obj.sections import SectionInfo, section_info


class AutoAttachError(BpfkitError):
    """A section name that says where to attach, with a target bpfkit cannot use."""


class AutoAttached(LinkGroup):
    """What `attach_all` attached (a `LinkGroup`) and, in `skipped`, which programs it left alone, why."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[str, str] = {}


NOT_AUTO_ATTACHABLE = {
    "xdp": "needs an interface (attach_xdp)",
    "xdp/devmap": "runs from a devmap entry", "xdp/cpumap": "runs from a cpumap entry",
    "tcx/ingress": "needs an interface (attach_tcx)", "tcx/egress": "needs an interface (attach_tcx)",
    "tc": "needs an interface (attach_tcx)", "classifier": "needs an interface (attach_tcx)",
    "perf_event": "needs a perf event (attach_perf_event)",
    "socket": "needs a socket (attach_socket_filter)",
    "netfilter": "needs a protocol family and hook (attach_netfilter)",
    "syscall": "is run with BPF_PROG_TEST_RUN, not attached",
    "freplace": "needs a target program",
}


def _split_binary(target: str, section: str) -> tuple[str, str]:
    binary, sep, rest = target.rpartition(":")
    if not sep or not binary or not rest:
        raise AutoAttachError(f"section {section!r}: expected <binary>:<function> after the prefix")
    return binary, rest


def _uprobe(program: Any, info: SectionInfo, retprobe: bool) -> AttachedLink:
    from bpfkit.kernel.attach.uprobe import attach_uprobe

    binary, where = _split_binary(info.target, info.section)
    if where.startswith("0x"):
        return attach_uprobe(program, binary, address=int(where, 16), retprobe=retprobe)
    return attach_uprobe(program, binary, where, retprobe=retprobe)


def _uprobe_multi(program: Any, info: SectionInfo) -> AttachedLink:
    from bpfkit.kernel.attach.elfsyms import find_binary, read_image
    from bpfkit.kernel.attach.uprobe import attach_uprobe_multi

    binary, pattern = _split_binary(info.target, info.section)
    image = read_image(find_binary(binary))
    names = sorted(n for n in image.symbol_names() if fnmatch.fnmatchcase(n, pattern))
    if not names:
        raise AutoAttachError(f"section {info.section!r}: no function of {image.path} matches {pattern!r}")
    return attach_uprobe_multi(program, image.path, names, retprobe=info.kind.startswith("uret"))


def _usdt(program: Any, info: SectionInfo) -> LinkGroup:
    from bpfkit.kernel.attach.usdt import attach_usdt

    parts = info.target.rsplit(":", 2)
    if len(parts) != 3 or not all(parts):
        raise AutoAttachError(f"section {info.section!r}: expected usdt/<binary>:<provider>:<name>")
    return attach_usdt(program, parts[0], parts[1], parts[2])


def _kprobe(program: Any, info: SectionInfo, retprobe: bool) -> AttachedLink:
    from bpfkit.kernel.attach.kprobe import attach_kprobe

    func, plus, off = info.target.partition("+")
    try:
        offset = int(off, 0) if plus else 0
    except ValueError:
        raise AutoAttachError(f"section {info.section!r}: bad offset {off!r}") from None
    return attach_kprobe(program, func, offset, retprobe=retprobe)


def _ksyscall(program: Any, info: SectionInfo, retprobe: bool) -> AttachedLink:
    from bpfkit.kernel.attach.kprobe import attach_kprobe, syscall_function

    return attach_kprobe(program, syscall_function(info.target), retprobe=retprobe)


def _kprobe_multi(program: Any, info: SectionInfo) -> AttachedLink:
    from bpfkit.kernel import tracefs
    from bpfkit.kernel.attach.kprobe import attach_kprobe_multi

    pattern = info.target
    if any(c in pattern for c in "*?["):
        path = tracefs.tracefs() / "available_filter_functions"
        try:
            funcs = [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip()]
        except OSError as e:
            raise AutoAttachError(f"section {info.section!r}: cannot read {path}: {e}") from None
        names = sorted({f for f in funcs if fnmatch.fnmatchcase(f, pattern)})
        if not names:
            raise AutoAttachError(f"section {info.section!r}: no kernel function matches {pattern!r}")
    else:
        names = [pattern]
    return attach_kprobe_multi(program, names, retprobe=info.kind.startswith("kret"))


def _tracing(program: Any, info: SectionInfo) -> AttachedLink:
    from bpfkit.kernel.attach.tracing import attach_tracing

    return attach_tracing(program, info.attach_type, target=info.target)


def _iter(program: Any, info: SectionInfo) -> AttachedLink:
    from bpfkit.kernel.attach.iter import attach_iter

    return attach_iter(program, target=info.target)


def _tracepoint(program: Any, info: SectionInfo) -> AttachedLink:
    from bpfkit.kernel.attach.tracepoint import attach_tracepoint, split_tracepoint

    try:
        cat, name = split_tracepoint(info.target)
    except ValueError as e:
        raise AutoAttachError(f"section {info.section!r}: {e}") from None
    return attach_tracepoint(program, cat, name)


def _raw_tp(program: Any, info: SectionInfo) -> AttachedLink:
    from bpfkit.kernel.attach.raw_tracepoint import attach_raw_tracepoint

    return attach_raw_tracepoint(program, info.target)


def _tp_btf(program: Any, info: SectionInfo) -> AttachedLink:
    from bpfkit.kernel.attach.raw_tracepoint import attach_tp_btf

    return attach_tp_btf(program, info.target)


Attacher = Callable[[Any, SectionInfo], "AttachedLink | LinkGroup"]

ATTACHERS: dict[str, Attacher] = {
    "tracepoint": _tracepoint,
    "raw_tracepoint": _raw_tp,
    "raw_tracepoint.w": _raw_tp,
    "tp_btf": _tp_btf,
    "kprobe": lambda p, i: _kprobe(p, i, False),
    "kretprobe": lambda p, i: _kprobe(p, i, True),
    "ksyscall": lambda p, i: _ksyscall(p, i, False),
    "kretsyscall": lambda p, i: _ksyscall(p, i, True),
    "kprobe.multi": _kprobe_multi,
    "kretprobe.multi": _kprobe_multi,
    "uprobe": lambda p, i: _uprobe(p, i, False),
    "uretprobe": lambda p, i: _uprobe(p, i, True),
    "uprobe.multi": _uprobe_multi,
    "uretprobe.multi": _uprobe_multi,
    "usdt": _usdt,
    "fentry": _tracing,
    "fexit": _tracing,
    "fmod_ret": _tracing,
    "lsm": _tracing,
    "iter": _iter,
}
"""Attach kind (`SectionDef.kind`) -> how to attach from the section's target."""


def why_not_auto(section: str) -> str | None:
    """Why a program in `section` cannot be auto-attached (None when it can)."""
    info = section_info(section)
    if info is None:
        return f"section {section!r} follows no known convention"
    kind = info.kind
    if kind in ATTACHERS:
        if not info.target and kind not in ("fentry", "fexit", "fmod_ret", "lsm", "tp_btf"):
            return f"section {section!r} names no target after {info.definition.prefix!r}"
        return None
    if kind in NOT_AUTO_ATTACHABLE:
        return f"{kind} {NOT_AUTO_ATTACHABLE[kind]}"
    if kind.startswith(("cgroup", "sockops")):
        return f"{kind} needs a cgroup (attach_cgroup)"
    return f"{kind} programs are not auto-attachable"


def attach_program(program: Any, section: str) -> AttachedLink | LinkGroup:
    """Attach `program` where `section` says; AutoAttachError when the section does not say where."""
    reason = why_not_auto(section)
    if reason is not None:
        raise AutoAttachError(f"cannot auto-attach {getattr(program, 'name', '') or 'program'!r}: {reason}")
    info = section_info(section)
    assert info is not None
    return ATTACHERS[info.kind](program, info)


def _pairs(programs: Any, sections: Mapping[str, str] | None) -> Iterable[tuple[str, Any, str]]:
    """(name, program, section) from a collection, a mapping of Programs, or (section, program) pairs."""
    if hasattr(programs, "programs") and hasattr(programs, "spec"):
        specs = programs.spec.programs
        return [(n, p, specs[n].section) for n, p in programs.programs.items()]
    if isinstance(programs, Mapping):
        out = []
        for n, p in programs.items():
            sec = (sections or {}).get(n) or getattr(p, "section", "")
            if not sec:
                raise AutoAttachError(f"attach_all: no section name for program {n!r} (pass sections=)")
            out.append((n, p, sec))
        return out
    return [(getattr(p, "name", "") or sec, p, sec) for sec, p in programs]


def attach_all(programs: Any, *, sections: Mapping[str, str] | None = None) -> AutoAttached:
    """Attach every auto-attachable program: `programs` is a loaded collection (with `.programs` and
    `.spec`), a mapping name -> Program (sections from `sections` or the programs' `section`), or
    (section, Program) pairs. Programs whose section gives no target are skipped (`skipped` says why).
    If one attach fails, the ones made are detached and the error is raised.
    """
    result = AutoAttached()
    try:
        for name, prog, section in _pairs(programs, sections):
            reason = why_not_auto(section)
            if reason is not None:
                result.skipped[name] = reason
                continue
            made = attach_program(prog, section)
            for link in (made if isinstance(made, LinkGroup) else [made]):
                result.add(link)
    except BaseException:
        result.close()
        raise
    return result
