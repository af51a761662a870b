"""Kprobes and kretprobes on kernel functions, and kprobe_multi links.

A kprobe is a perf event of the ``kprobe`` PMU (type from /sys/bus/event_source/devices/kprobe/type) with
``kprobe_func`` (config1) pointing at the function name and ``probe_offset`` (config2) the offset in it,
or ``kprobe_addr`` with no name; the return-probe bit goes into ``config`` where the PMU's format says.
Without the PMU (before 4.17) the probe is made in tracefs's kprobe_events and removed on close.
kprobe_multi attaches one program to many functions in one link (BPF_TRACE_KPROBE_MULTI, needs fprobe).
Minimum kernel: 4.1 (kprobe programs), 4.17 (kprobe PMU), 5.18 (kprobe_multi).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import itertools
import os
import re
from collections.abc import Sequence
from typing import Any

from bpfkit.errors import KernelError, NotSupportedError
from bpfkit.kernel import tracefs
from bpfkit.kernel.attach.base import AttachedLink, link_create, syscalls_of
from bpfkit.kernel.attach.perf_event import (
    attach_perf_fd,
    event_attr,
    has_pmu,
    open_perf_event,
    pmu_format_bit,
    pmu_type,
)
from bpfkit.uapi.attr import LinkCreateAttr, PerfEventAttr
from bpfkit.uapi.enums import AttachType, KprobeMultiFlags
from bpfkit.uapi.perf import PerfType

_probe_numbers = itertools.count()
_FUNC = re.compile(r"^[A-Za-z_][\w.]*$")

SYSCALL_PREFIXES = {"x86_64": "__x64_sys_", "aarch64": "__arm64_sys_", "s390x": "__s390x_sys_",
                    "riscv64": "__riscv_sys_"}
"""What syscall `name`'s entry function is called on each architecture (ksyscall sections)."""


def probe_kprobes() -> str | None:
    """Why kprobes cannot be used here (None when they can): no kprobe PMU and no kprobe_events."""
    if has_pmu("kprobe"):
        return None
    root = tracefs.find_tracefs()
    if root is not None and (root / "kprobe_events").exists():
        return None
    return ("this kernel has no kprobes (CONFIG_KPROBES is off: no "
            "/sys/bus/event_source/devices/kprobe and no tracefs kprobe_events)")


def kprobe_attr(func: str | None, offset: int = 0, *, address: int = 0, retprobe: bool = False
                ) -> tuple[PerfEventAttr, ctypes.Array[ctypes.c_char] | None]:
    """The perf_event_attr of a kprobe PMU event on `func`+`offset` (or on `address`), and the name
    buffer it points to (alive until perf_event_open returns)."""
    attr = event_attr(pmu_type("kprobe"), 0, sample_period=1)
    if retprobe:
        word, bit = pmu_format_bit("kprobe", "retprobe")
        if word != "config":
            raise KernelError("perf_event_open", _errno.EINVAL, f"kprobe PMU keeps retprobe in {word}")
        attr.config = 1 << bit
    buf = None
    if func is not None:
        buf = ctypes.create_string_buffer(func.encode())
        attr.kprobe_func = ctypes.addressof(buf)
        attr.probe_offset = offset
    else:
        attr.kprobe_func = 0
        attr.kprobe_addr = address
    return attr, buf


def attach_kprobe(program: Any, func: str | None = None, offset: int = 0, *, address: int = 0,
                  retprobe: bool = False, cookie: int = 0, legacy: bool | None = None) -> AttachedLink:
    """Attach a kprobe `program` at kernel function `func` (+`offset`), or at `address`; with
    `retprobe` at its return. `legacy` True forces tracefs kprobe_events; None uses the PMU if present."""
    if func is None and not address:
        raise ValueError("attach_kprobe: give a function name or an address")
    if func is not None and not _FUNC.match(func):
        raise ValueError(f"attach_kprobe: {func!r} is not a kernel function name")
    kind = "kretprobe" if retprobe else "kprobe"
    label = (f"{func}+{offset:#x}" if offset else func) if func is not None else f"{address:#x}"
    use_legacy = not has_pmu("kprobe") if legacy is None else legacy
    if use_legacy:
        reason = probe_kprobes() if not legacy else None
        if reason is not None:
            raise NotSupportedError("kprobes", "4.1", _errno.ENOENT, reason)
        return _attach_legacy(program, func, offset, address, retprobe, kind, label, cookie)
    attr, keep = kprobe_attr(func, offset, address=address, retprobe=retprobe)
    perf = open_perf_event(attr, pid=-1, cpu=0, what=f"{kind} {label}", sys=syscalls_of(program))
    del keep
    return attach_perf_fd(program, perf, kind=kind, target=label, cookie=cookie)


def _attach_legacy(program: Any, func: str | None, offset: int, address: int, retprobe: bool, kind: str,
                   label: str, cookie: int) -> AttachedLink:
    root = tracefs.tracefs()
    events = root / "kprobe_events"
    if not events.exists():
        raise NotSupportedError("kprobes", "4.1", _errno.ENOENT, f"{events} is missing (CONFIG_KPROBES off)")
    name = f"bpfkit_{os.getpid()}_{next(_probe_numbers)}"
    place = (f"{func}+{offset}" if offset else func) if func is not None else f"{address:#x}"
    _write(events, f"{'r' if retprobe else 'p'}:kprobes/{name} {place}")

    def remove() -> None:
        _write(events, f"-:kprobes/{name}")

    try:
        tp_id = tracefs.tracepoint_id("kprobes", name, root=root)
        attr = event_attr(PerfType.TRACEPOINT, tp_id, sample_period=1)
        perf = open_perf_event(attr, pid=-1, cpu=0, what=f"{kind} {label}", sys=syscalls_of(program))
    except BaseException:
        remove()
        raise
    return attach_perf_fd(program, perf, kind=kind, target=label, cookie=cookie, cleanups=[remove])


def _write(path: os.PathLike[str], line: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise KernelError(f"write({os.fspath(path)})", e.errno or _errno.EIO, repr(line)) from None


def syscall_function(name: str, machine: str | None = None) -> str:
    """The kernel function behind syscall `name` on this architecture (``__x64_sys_getpid``)."""
    import platform

    arch = machine or platform.machine()
    prefix = SYSCALL_PREFIXES.get(arch)
    if prefix is None:
        raise NotSupportedError(f"ksyscall on {arch}", None, detail="unknown syscall wrapper prefix")
    return prefix + name


def attach_kprobe_multi(program: Any, symbols: Sequence[str] = (), *, addresses: Sequence[int] = (),
                        retprobe: bool = False, cookies: Sequence[int] = ()) -> AttachedLink:
    """Attach `program` (loaded with BPF_TRACE_KPROBE_MULTI) to every kernel function in `symbols` (or
    at `addresses`) in one link. Minimum kernel: 5.18 (CONFIG_FPROBE)."""
    if bool(symbols) == bool(addresses):
        raise ValueError("attach_kprobe_multi: give symbols or addresses (one of them)")
    n = len(symbols) or len(addresses)
    if cookies and len(cookies) != n:
        raise ValueError(f"attach_kprobe_multi: {len(cookies)} cookies for {n} functions")
    names = [ctypes.create_string_buffer(s.encode()) for s in symbols]
    syms = (ctypes.c_uint64 * n)(*(ctypes.addressof(b) for b in names)) if symbols else None
    addrs = (ctypes.c_uint64 * n)(*addresses) if addresses else None
    cks = (ctypes.c_uint64 * n)(*cookies) if cookies else None

    def fill(attr: LinkCreateAttr) -> None:
        km = attr.kprobe_multi
        km.flags = int(KprobeMultiFlags.RETURN) if retprobe else 0
        km.cnt = n
        km.syms = ctypes.addressof(syms) if syms is not None else 0
        km.addrs = ctypes.addressof(addrs) if addrs is not None else 0
        km.cookies = ctypes.addressof(cks) if cks is not None else 0

    label = ", ".join(symbols[:3]) + (", ..." if len(symbols) > 3 else "") if symbols else f"{n} addresses"
    link = link_create(program, AttachType.TRACE_KPROBE_MULTI, fill=fill, keep=(names, syms, addrs, cks),
                       what=label)
    return AttachedLink("kretprobe_multi" if retprobe else "kprobe_multi", label, link=link, program=program)
