"""What the verifier cases of several topics share: the `Case` record, program types, the maps and the
program openings more than one topic uses."""

from __future__ import annotations

from dataclasses import dataclass

from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import AttachType, MapType, ProgType

VMLINUX = "/sys/kernel/btf/vmlinux"
XDP = ProgType.XDP
TC = ProgType.SCHED_CLS
SOCK = ProgType.SOCKET_FILTER
KPROBE = ProgType.KPROBE
TP = ProgType.TRACEPOINT
RAW_TP = ProgType.RAW_TRACEPOINT
CG_SKB = ProgType.CGROUP_SKB


@dataclass(frozen=True, slots=True)
class Case:
    """One verifier case: a program, its setting (program type, maps...) and the verdict bpfkit must give."""

    name: str
    text: str
    accept: bool
    reason: str
    prog_type: ProgType | None = XDP
    maps: tuple[MapSpec, ...] = ()
    error: str = ""
    attach: AttachType | None = None
    license: str = "GPL"
    mem_size: int = 0
    kfuncs: tuple[str, ...] = ()
    """`call kfunc(N)` calls kernel function kfuncs[N] (its id in the running kernel's BTF)."""
    attach_to: str = ""
    """TRACING programs: the attach target (`task` for an iterator over tasks)."""


HASH = MapSpec(MapType.HASH, 8, 16, 16, name="hash")
ARRAY = MapSpec(MapType.ARRAY, 4, 64, 4, name="array")
RINGBUF = MapSpec(MapType.RINGBUF, 0, 0, 4096, name="rb")
PROG_ARRAY = MapSpec(MapType.PROG_ARRAY, 4, 4, 4, name="progs")

# Common openings.
KEY0 = """
    r1 = 0
    *(u64 *)(r10 - 8) = r1
    r2 = r10
    r2 += -8
    r1 = map[id:0]
"""
LOOKUP = KEY0 + "    call bpf_map_lookup_elem\n"
KEY32 = """
    r1 = 0
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    r1 = map[id:0]
    call bpf_map_lookup_elem
"""
XDP_PKT = """
    r2 = *(u32 *)(r1 + 0)
    r3 = *(u32 *)(r1 + 4)
"""
RESERVE = """
    r1 = map[id:0]
    r2 = 16
    r3 = 0
    call bpf_ringbuf_reserve
"""

C = Case
"""Short name for `Case` in the case tables."""
