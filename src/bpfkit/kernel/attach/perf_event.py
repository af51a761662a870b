"""Perf events: open one (perf_event_open), run a program when it fires, sample at N Hz on every CPU.

A program is attached to a perf event fd with a BPF link (BPF_LINK_CREATE, attach type BPF_PERF_EVENT,
Linux 5.15; it carries a bpf_cookie) or, on older kernels, with ioctl(PERF_EVENT_IOC_SET_BPF) then
PERF_EVENT_IOC_ENABLE. Tracepoints, kprobes and uprobes use the same path with their own perf event.
Minimum kernel: 4.9 (BPF_PROG_TYPE_PERF_EVENT), 4.1 (programs on kprobe perf events).
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bpfkit.errors import KernelError
from bpfkit.kernel.attach.base import (
    AttachedLink,
    Cleanup,
    LinkGroup,
    fileno_of,
    link_create,
    program_label,
    syscalls_of,
)
from bpfkit.kernel.cpus import online_cpus
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.syscall import Syscalls
from bpfkit.uapi.attr import LinkCreateAttr, PerfEventAttr
from bpfkit.uapi.enums import AttachType
from bpfkit.uapi.perf import PerfEventIoc, PerfFlag, PerfType

PERF_FLAG_FD_CLOEXEC = int(PerfFlag.FD_CLOEXEC)
"""The flag every event is opened with: its fd does not leak into children (bpfkit trace -c, system())."""

EVENT_SOURCES = Path("/sys/bus/event_source/devices")
"""Where the kernel lists its PMUs (each with a `type` file holding its perf_event_attr.type)."""

# Errors of BPF_LINK_CREATE(BPF_PERF_EVENT) that mean "this kernel has no perf_event links": fall back
# to the ioctl. (EINVAL: unknown attach type before 5.15; ENOTSUPP/EOPNOTSUPP from some paths.)
_NO_PERF_LINK = frozenset({_errno.EINVAL, _errno.EOPNOTSUPP, 524})


def open_perf_event(attr: PerfEventAttr, *, pid: int = -1, cpu: int = 0, group_fd: int = -1,
                    what: str = "perf event", sys: Syscalls | None = None) -> Fd:
    """perf_event_open(`attr`, pid, cpu, group_fd, FD_CLOEXEC) as an owned `Fd` labelled `what`."""
    from bpfkit.kernel.syscall import current

    sys = sys or current()
    try:
        fd = sys.perf_event_open(attr, pid, cpu, group_fd, PERF_FLAG_FD_CLOEXEC)
    except KernelError as e:
        parts = str(e).split(": ", 2)  # "syscall: ERRNO (text): hint"
        hint = f"{what}: {parts[2]}" if len(parts) == 3 else what
        raise KernelError(e.syscall, e.errno or 0, hint) from None
    return Fd(fd, what, sys)


def attach_perf_fd(program: Any, perf: Fd, *, kind: str, target: str, cookie: int = 0,
                   cleanups: Iterable[Cleanup] = (), use_link: bool | None = None) -> AttachedLink:
    """Run `program` whenever the event behind `perf` fires. Takes ownership of `perf` (and of
    `cleanups`): on failure they are released before the error is raised.

    `use_link`: True requires a perf_event BPF link, False uses the ioctl, None (default) tries the link
    and falls back to the ioctl when the kernel has none (a `cookie` needs the link).
    """
    sys = perf.syscalls
    extra = list(cleanups)
    try:
        if use_link is not False:
            try:
                def fill(attr: LinkCreateAttr) -> None:
                    attr.perf_event.bpf_cookie = cookie

                link = link_create(program, AttachType.PERF_EVENT, target_fd=perf.fileno(), fill=fill,
                                   what=target)
                return AttachedLink(kind, target, link=link, perf=[perf], cleanups=extra, program=program)
            except KernelError as e:
                if use_link or cookie or e.errno not in _NO_PERF_LINK:
                    raise
        try:
            sys.ioctl(perf.fileno(), PerfEventIoc.SET_BPF, fileno_of(program))
            sys.ioctl(perf.fileno(), PerfEventIoc.ENABLE, 0)
        except KernelError as e:
            raise KernelError("ioctl(PERF_EVENT_IOC_SET_BPF)", e.errno or 0,
                              f"{program_label(program)} on {kind} {target}") from None
        return AttachedLink(kind, target, perf=[perf], cleanups=extra, program=program)
    except BaseException:
        _release(perf, extra)
        raise


def _release(perf: Fd, cleanups: list[Cleanup]) -> None:
    try:
        perf.close()
    finally:
        for c in reversed(cleanups):
            try:
                c()
            except Exception:
                pass


def pmu_type(name: str) -> int:
    """perf_event_attr.type of the dynamic PMU `name` (``uprobe``, ``kprobe``), from sysfs."""
    path = EVENT_SOURCES / name / "type"
    try:
        return int(path.read_text())
    except FileNotFoundError:
        raise KernelError("perf_event_open", _errno.ENOENT,
                          f"this kernel has no {name} PMU ({path} is missing)") from None
    except (OSError, ValueError) as e:
        err = getattr(e, "errno", None) or _errno.EIO
        raise KernelError("perf_event_open", err, f"{path}: {e}") from None


def has_pmu(name: str) -> bool:
    """Whether the kernel lists PMU `name` in /sys/bus/event_source/devices."""
    return (EVENT_SOURCES / name / "type").exists()


def pmu_format_bit(pmu: str, field: str) -> tuple[str, int]:
    """Where field `field` of PMU `pmu` lives: (``config``/``config1``..., first bit), from
    /sys/bus/event_source/devices/<pmu>/format/<field> (``config:0``, ``config:32-63``)."""
    path = EVENT_SOURCES / pmu / "format" / field
    try:
        text = path.read_text().strip()
        word, _, bits = text.partition(":")
        return word, int(bits.split("-")[0])
    except FileNotFoundError:
        raise KernelError("perf_event_open", _errno.ENOENT, f"{pmu} PMU has no {field} ({path})") from None
    except (OSError, ValueError) as e:
        err = getattr(e, "errno", None) or _errno.EIO
        raise KernelError("perf_event_open", err, f"{path}: {e}") from None


def event_attr(event_type: PerfType | int, config: int, *, sample_period: int = 0, sample_freq: int = 0,
               disabled: bool = False) -> PerfEventAttr:
    """A perf_event_attr counting (or, with a period or frequency, sampling) event `config` of
    `event_type`."""
    attr = PerfEventAttr(type=int(event_type), config=config)
    if sample_freq:
        attr.freq = 1
        attr.sample_freq = sample_freq
    else:
        attr.sample_period = sample_period
    attr.disabled = int(disabled)
    return attr


def _event_name(event_type: PerfType | int, config: int) -> str:
    from bpfkit.uapi.perf import PerfHwId, PerfSwId  # uapi.perf_ids: a tracepoint never needs them

    try:
        if event_type == PerfType.SOFTWARE:
            return f"software:{PerfSwId(config).name.lower()}"
        if event_type == PerfType.HARDWARE:
            return f"hardware:{PerfHwId(config).name.lower()}"
    except ValueError:
        pass
    try:
        return f"{PerfType(event_type).name.lower()}:{config:#x}"
    except ValueError:
        return f"type {int(event_type)}:{config:#x}"


def attach_perf_event(program: Any, event_type: PerfType | int, config: int, *, sample_period: int = 0,
                      sample_freq: int = 0, cpus: Sequence[int] | None = None, pid: int = -1,
                      cookie: int = 0) -> LinkGroup:
    """Run a BPF_PROG_TYPE_PERF_EVENT `program` on every sample of event (`event_type`, `config`),
    on each of `cpus` (default: every online CPU; with a `pid`, one event following that task).

    Give `sample_freq` (samples per second per CPU) or `sample_period` (events per sample); one of
    them is needed. Returns one attachment per CPU, closed together.
    """
    if not sample_freq and not sample_period:
        raise ValueError("attach_perf_event: give sample_freq (Hz) or sample_period (events per sample)")
    name = _event_name(event_type, config)
    targets: list[int] = [-1] if pid != -1 and cpus is None else list(cpus if cpus is not None
                                                                     else online_cpus())
    group = LinkGroup()
    sys = syscalls_of(program)
    try:
        for cpu in targets:
            attr = event_attr(event_type, config, sample_period=sample_period, sample_freq=sample_freq)
            where = f"{name} on cpu {cpu}" if cpu >= 0 else f"{name} of pid {pid}"
            perf = open_perf_event(attr, pid=pid, cpu=cpu, what=where, sys=sys)
            group.add(attach_perf_fd(program, perf, kind="perf_event", target=where, cookie=cookie))
    except BaseException:
        group.close()
        raise
    return group


def probe_hardware_events() -> str | None:
    """Why hardware perf events cannot be used here (None when a hardware counter opens)."""
    from bpfkit.uapi.perf import PerfHwId

    attr = event_attr(PerfType.HARDWARE, PerfHwId.CPU_CYCLES, sample_period=1_000_000, disabled=True)
    try:
        open_perf_event(attr, pid=0, cpu=-1, what="hardware cpu cycles").close()
    except KernelError as e:
        return str(e)
    return None
