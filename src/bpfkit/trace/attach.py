"""Attach a loaded probe program to its attach point, per provider.

Uses the kernel layer's attach modules; returns what must be closed to detach. Each kind's module is
imported when a probe of that kind is attached: start-up is a hot path, and the uprobe module alone pulls
in the ELF reader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bpfkit.errors import NotSupportedError

if TYPE_CHECKING:
    from bpfkit.kernel.attach.base import AttachedLink, LinkGroup
    from bpfkit.kernel.programs import Program
    from bpfkit.lang import ast


def attach_count(ap: ast.AttachPoint) -> int:
    """How many probes ``Attaching N probes...`` counts for `ap`: as bpftrace, each site of a usdt probe."""
    if ap.provider != "usdt":
        return 1
    from bpfkit.trace.system import usdt_sites

    return len(usdt_sites(ap.target, ap.ns, ap.func))


def attach_probe(prog: Program, ap: ast.AttachPoint, pid: int | None = None) -> AttachedLink | LinkGroup:
    """Attach `prog` at `ap`; `pid` restricts uprobes and perf events to one process."""
    p = ap.provider
    if p == "tracepoint":
        from bpfkit.kernel.attach.tracepoint import attach_tracepoint

        return attach_tracepoint(prog, ap.target, ap.func)
    if p == "rawtracepoint":
        from bpfkit.kernel.attach.raw_tracepoint import attach_raw_tracepoint

        return attach_raw_tracepoint(prog, ap.func)
    if p in ("uprobe", "uretprobe"):
        from bpfkit.kernel.attach.uprobe import attach_uprobe

        symbol = ap.func or None
        if symbol is not None and ap.offset:
            symbol = f"{symbol}+{ap.offset:#x}"
        address = ap.address if symbol is None else None
        return attach_uprobe(prog, ap.target, symbol, address=address, retprobe=p == "uretprobe", pid=pid)
    if p == "usdt":
        from bpfkit.kernel.attach.usdt import attach_usdt
        from bpfkit.trace.system import usdt_sites

        provider = ap.ns or usdt_sites(ap.target, "", ap.func)[0].provider
        return attach_usdt(prog, ap.target, provider, ap.func, pid=pid)
    from bpfkit.kernel.attach.perf_event import attach_perf_event
    from bpfkit.uapi.perf import PerfSwId, PerfType

    if p in ("profile", "interval"):
        from bpfkit.lang.probes import TIME_UNITS

        freq = ap.freq or 0
        unit_ns = TIME_UNITS.get(ap.unit, 0)
        kwargs = {"sample_freq": freq} if unit_ns == 0 else {"sample_period": freq * unit_ns}
        cpus = None if p == "profile" else [0]
        return attach_perf_event(prog, PerfType.SOFTWARE, PerfSwId.CPU_CLOCK, cpus=cpus,
                                 pid=pid if pid is not None and p == "profile" else -1, **kwargs)
    if p == "software":
        from bpfkit.trace.system import SOFTWARE_EVENTS

        config, period = SOFTWARE_EVENTS[ap.target]
        return attach_perf_event(prog, PerfType.SOFTWARE, config, sample_period=ap.freq or period,
                                 pid=pid if pid is not None else -1)
    if p == "hardware":
        from bpfkit.lang.perf_events import HARDWARE_EVENTS

        config, period = HARDWARE_EVENTS[ap.target]
        return attach_perf_event(prog, PerfType.HARDWARE, config, sample_period=ap.freq or period,
                                 pid=pid if pid is not None else -1)
    if p in ("kprobe", "kretprobe"):
        from bpfkit.kernel.attach.kprobe import attach_kprobe, probe_kprobes

        why = probe_kprobes()
        if why is not None:
            raise NotSupportedError(f"{p}:{ap.func}", detail=why)
        return attach_kprobe(prog, ap.func, ap.offset or 0, retprobe=p == "kretprobe")
    if p == "iter":
        from bpfkit.kernel.attach.iter import attach_iter

        return attach_iter(prog, target=ap.target)
    if p in ("fentry", "fexit"):
        from bpfkit.kernel.attach.tracing import attach_tracing

        return attach_tracing(prog)
    raise NotSupportedError(f"{p} probes", detail="bpfkit cannot attach this probe type yet")
