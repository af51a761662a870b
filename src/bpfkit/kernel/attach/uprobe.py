"""Uprobes and uretprobes on executables and shared libraries, and uprobe_multi links.

A uprobe is a perf event of the ``uprobe`` PMU (type from /sys/bus/event_source/devices/uprobe/type)
with ``uprobe_path`` (config1) pointing at the file name and ``probe_offset`` (config2) the file offset;
the return-probe bit and the reference counter offset (USDT semaphores) go into ``config`` at the bits
the PMU's format directory names. Where there is no uprobe PMU (before 4.17), the probe is made in
tracefs's uprobe_events and removed again when the attachment closes.
The place is a symbol (``malloc``, ``func+0x4``), an address in the file's virtual address space, or a
file offset; `pid` limits the probe to one process.
Minimum kernel: 4.17 (uprobe PMU), 4.20 (ref_ctr_offset), 6.6 (uprobe_multi links).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bpfkit._records import record
from bpfkit.elf.symbols import read_image
from bpfkit.errors import KernelError
from bpfkit.kernel import tracefs
from bpfkit.kernel.attach.base import AttachedLink, link_create, syscalls_of
from bpfkit.kernel.attach.elfsyms import find_binary
from bpfkit.kernel.attach.perf_event import (
    attach_perf_fd,
    event_attr,
    has_pmu,
    open_perf_event,
    pmu_format_bit,
    pmu_type,
)
from bpfkit.uapi.attr import LinkCreateAttr, PerfEventAttr
from bpfkit.uapi.enums import AttachType, UprobeMultiFlags
from bpfkit.uapi.perf import PerfType

_probe_numbers = itertools.count()


@record
class UprobeTarget:
    """A resolved probe place: the file and the offset in it."""

    path: str
    offset: int

    def __str__(self) -> str:
        return f"{self.path}:{self.offset:#x}"


def resolve(binary: str, symbol: str | None = None, *, address: int | None = None,
            offset: int | None = None, pid: int | None = None) -> UprobeTarget:
    """Where to probe: `binary` (a path, or a library/program name found as `find_binary` does) and one
    of `symbol` (``func`` or ``func+0x8``), `address` (a virtual address as in the ELF file) or `offset`
    (a file offset)."""
    given = [x is not None for x in (symbol, address, offset)]
    if sum(given) != 1:
        raise ValueError("uprobe: give exactly one of symbol, address or offset")
    path = find_binary(binary, pid)
    if offset is not None:
        return UprobeTarget(path, offset)
    image = read_image(path)
    if address is not None:
        return UprobeTarget(path, image.offset_of(address))
    assert symbol is not None
    return UprobeTarget(path, image.symbol_offset(symbol))


def uprobe_attr(target: UprobeTarget, *, retprobe: bool = False, ref_ctr_offset: int = 0
                ) -> tuple[PerfEventAttr, ctypes.Array[ctypes.c_char]]:
    """The perf_event_attr of a uprobe PMU event at `target` (and the path buffer it points to, which
    must stay alive until perf_event_open returns)."""
    path = ctypes.create_string_buffer(os.fsencode(target.path))
    attr = event_attr(pmu_type("uprobe"), 0, sample_period=1)
    config = 0
    for field, value in (("retprobe", int(retprobe)), ("ref_ctr_offset", ref_ctr_offset)):
        if value:
            word, bit = pmu_format_bit("uprobe", field)
            if word != "config":
                raise KernelError("perf_event_open", _errno.EINVAL,
                                  f"uprobe PMU keeps {field} in {word}, which bpfkit does not set")
            config |= value << bit
    attr.config = config
    attr.uprobe_path = ctypes.addressof(path)
    attr.probe_offset = target.offset
    return attr, path


def _pid_cpu(pid: int | None) -> tuple[int, int]:
    """perf_event_open's (pid, cpu): one task on any CPU, or every task from CPU 0's event (a program
    on a probe event runs wherever the probe hits)."""
    return (pid, -1) if pid is not None and pid >= 0 else (-1, 0)


def attach_uprobe(program: Any, binary: str, symbol: str | None = None, *, address: int | None = None,
                  offset: int | None = None, retprobe: bool = False, pid: int | None = None,
                  ref_ctr_offset: int = 0, cookie: int = 0, legacy: bool | None = None) -> AttachedLink:
    """Attach a kprobe-type `program` at the entry (or, with `retprobe`, the return) of `symbol` in
    `binary`, or at `address`/`offset`; only in process `pid` if given.

    `ref_ctr_offset` is the file offset of a USDT semaphore the kernel increments while attached.
    `legacy` True forces the tracefs uprobe_events path, False the PMU; None picks the PMU when present.
    """
    target = resolve(binary, symbol, address=address, offset=offset, pid=pid)
    kind = "uretprobe" if retprobe else "uprobe"
    label = f"{target.path}:{symbol}" if symbol else str(target)
    use_legacy = not has_pmu("uprobe") if legacy is None else legacy
    if use_legacy:
        return _attach_legacy(program, target, kind, label, retprobe, pid, ref_ctr_offset, cookie)
    attr, keep = uprobe_attr(target, retprobe=retprobe, ref_ctr_offset=ref_ctr_offset)
    ppid, cpu = _pid_cpu(pid)
    perf = open_perf_event(attr, pid=ppid, cpu=cpu, what=f"{kind} {label}", sys=syscalls_of(program))
    del keep
    return attach_perf_fd(program, perf, kind=kind, target=label, cookie=cookie)


def _attach_legacy(program: Any, target: UprobeTarget, kind: str, label: str, retprobe: bool,
                   pid: int | None, ref_ctr_offset: int, cookie: int) -> AttachedLink:
    """Make a probe in tracefs (uprobe_events), attach to its tracepoint, remove the probe on close."""
    root = tracefs.tracefs()
    name = f"bpfkit_{os.getpid()}_{next(_probe_numbers)}"
    group = "uprobes"
    spec = f"{target.path}:{target.offset:#x}" + (f"({ref_ctr_offset:#x})" if ref_ctr_offset else "")
    events = root / "uprobe_events"
    _write_event(events, f"{'r' if retprobe else 'p'}:{group}/{name} {spec}")

    def remove() -> None:
        _write_event(events, f"-:{group}/{name}")

    try:
        tp_id = tracefs.tracepoint_id(group, name, root=root)
        attr = event_attr(PerfType.TRACEPOINT, tp_id, sample_period=1)
        ppid, cpu = _pid_cpu(pid)
        perf = open_perf_event(attr, pid=ppid, cpu=cpu, what=f"{kind} {label}", sys=syscalls_of(program))
    except BaseException:
        remove()
        raise
    return attach_perf_fd(program, perf, kind=kind, target=label, cookie=cookie, cleanups=[remove])


def _write_event(path: Path, line: str) -> None:
    # os.open, not open(..., "a"): Python seeks to the end, which tracefs refuses (EINVAL).
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise KernelError(f"write({path})", e.errno or _errno.EIO, repr(line)) from None


def legacy_probe_names(root: Path | None = None) -> list[str]:
    """The probes this process made in uprobe_events (tests check none is left)."""
    base = root if root is not None else tracefs.tracefs()
    prefix = f"bpfkit_{os.getpid()}_"
    try:
        lines = (base / "uprobe_events").read_text().splitlines()
    except OSError:
        return []
    return [ln.split()[0] for ln in lines if prefix in ln.split()[0]]


def attach_uprobe_multi(program: Any, binary: str, symbols: Sequence[str] = (), *,
                        offsets: Sequence[int] = (), retprobe: bool = False, pid: int | None = None,
                        cookies: Sequence[int] = (), ref_ctr_offsets: Sequence[int] = ()) -> AttachedLink:
    """Attach `program` (loaded with BPF_TRACE_UPROBE_MULTI) at many places of one file in one link:
    each of `symbols` (resolved as `resolve` does) and `offsets`. Minimum kernel: 6.6."""
    path = find_binary(binary, pid)
    image = read_image(path) if symbols else None
    places = [image.symbol_offset(s) for s in symbols] if image is not None else []
    places += list(offsets)
    if not places:
        raise ValueError("uprobe_multi: give at least one symbol or offset")
    n = len(places)
    for what, seq in (("cookies", cookies), ("ref_ctr_offsets", ref_ctr_offsets)):
        if seq and len(seq) != n:
            raise ValueError(f"uprobe_multi: {len(seq)} {what} for {n} places")
    path_buf = ctypes.create_string_buffer(os.fsencode(path))
    offs = (ctypes.c_uint64 * n)(*places)
    cks = (ctypes.c_uint64 * n)(*cookies) if cookies else None
    refs = (ctypes.c_uint64 * n)(*ref_ctr_offsets) if ref_ctr_offsets else None

    def fill(attr: LinkCreateAttr) -> None:
        um = attr.uprobe_multi
        um.path = ctypes.addressof(path_buf)
        um.offsets = ctypes.addressof(offs)
        um.cookies = ctypes.addressof(cks) if cks is not None else 0
        um.ref_ctr_offsets = ctypes.addressof(refs) if refs is not None else 0
        um.cnt = n
        um.flags = int(UprobeMultiFlags.RETURN) if retprobe else 0
        um.pid = pid if pid is not None and pid > 0 else 0

    label = f"{path} ({n} place{'s' if n != 1 else ''})"
    link = link_create(program, AttachType.TRACE_UPROBE_MULTI, fill=fill,
                       keep=(path_buf, offs, cks, refs), what=label)
    return AttachedLink("uretprobe_multi" if retprobe else "uprobe_multi", label, link=link, program=program)
