"""Tracepoints: run a BPF_PROG_TYPE_TRACEPOINT program on `category:name` (``syscalls:sys_enter_getpid``).

perf_event_open(PERF_TYPE_TRACEPOINT, config = the tracepoint's id from tracefs) on CPU 0 with pid -1 (a
program on a tracepoint perf event runs on every CPU), then the perf event link or ioctl fallback.
Minimum kernel: 4.7.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bpfkit.kernel import tracefs
from bpfkit.kernel.attach.base import AttachedLink, syscalls_of
from bpfkit.kernel.attach.perf_event import attach_perf_fd, event_attr, open_perf_event
from bpfkit.uapi.perf import PerfType


def split_tracepoint(spec: str) -> tuple[str, str]:
    """``cat:name`` or ``cat/name`` as (category, name); ValueError naming the spec otherwise."""
    for sep in (":", "/"):
        cat, found, name = spec.partition(sep)
        if found and cat and name and sep not in name:
            return cat, name
    raise ValueError(f"tracepoint {spec!r}: expected 'category:name' or 'category/name'")


def attach_tracepoint(program: Any, category: str, name: str | None = None, *, cookie: int = 0,
                      root: Path | None = None) -> AttachedLink:
    """Attach `program` to tracepoint `category:name` (or pass ``"category:name"`` alone).

    `cookie` is what bpf_get_attach_cookie() returns in the program (needs the link, Linux 5.15).
    """
    if name is None:
        category, name = split_tracepoint(category)
    tp_id = tracefs.tracepoint_id(category, name, root=root)
    target = f"{category}:{name}"
    attr = event_attr(PerfType.TRACEPOINT, tp_id, sample_period=1)
    attr.wakeup_events = 1
    perf = open_perf_event(attr, pid=-1, cpu=0, what=f"tracepoint {target}", sys=syscalls_of(program))
    return attach_perf_fd(program, perf, kind="tracepoint", target=target, cookie=cookie)
