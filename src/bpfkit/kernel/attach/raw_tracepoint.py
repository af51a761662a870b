"""Raw tracepoints: a program on a tracepoint's raw arguments (`raw_tp/sched_switch`), and tp_btf.

BPF_RAW_TRACEPOINT_OPEN with the tracepoint's name (no tracefs, no perf event). tp_btf programs (typed
raw tracepoints, BPF_PROG_TYPE_TRACING) name their tracepoint at load: see `tp_btf_target_id`.
Minimum kernel: 4.17 (raw tracepoints), 5.5 (tp_btf), 6.10 (cookies).
"""

from __future__ import annotations

from typing import Any

from bpfkit.kernel.attach.base import AttachedLink
from bpfkit.kernel.attach.tracing import raw_tracepoint_open, tracing_target_id
from bpfkit.uapi.enums import AttachType


def attach_raw_tracepoint(program: Any, name: str, *, cookie: int = 0) -> AttachedLink:
    """Attach a BPF_PROG_TYPE_RAW_TRACEPOINT(_WRITABLE) `program` to raw tracepoint `name`
    (``sys_enter``, ``sched_switch``); `cookie` needs Linux 6.10."""
    if not name or "/" in name or ":" in name:
        raise ValueError(f"raw tracepoint {name!r}: give the bare tracepoint name (sched_switch)")
    return AttachedLink("raw_tracepoint", name, link=raw_tracepoint_open(program, name, cookie, name),
                        program=program)


def tp_btf_target_id(tracepoint: str) -> int:
    """The `attach_btf_id` to load a tp_btf program for `tracepoint` with (typedef btf_trace_<name>)."""
    return tracing_target_id(AttachType.TRACE_RAW_TP, tracepoint)


def attach_tp_btf(program: Any, tracepoint: str = "", *, cookie: int = 0) -> AttachedLink:
    """Attach a tp_btf `program` (loaded with BPF_TRACE_RAW_TP and `tp_btf_target_id`)."""
    what = tracepoint or "tp_btf"
    link = raw_tracepoint_open(program, None, cookie, what)
    return AttachedLink("tp_btf", what, link=link, program=program)
