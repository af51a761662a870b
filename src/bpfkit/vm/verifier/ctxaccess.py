"""Which context fields a program type may read and write, and what a read gives.

A subset of the kernel's `*_is_valid_access` callbacks (net/core/filter.c, kernel/trace/bpf_trace.c):
what is listed here the kernel allows too; anything else is refused. Offsets are those of the UAPI
structs (`struct xdp_md`, `struct __sk_buff`, `struct pt_regs` on x86-64, `struct
bpf_perf_event_data`), as in `bpfkit.vm.context`.
"""

from __future__ import annotations

from bpfkit._records import record
from bpfkit.uapi.enums import AttachType, ProgType
from bpfkit.vm.verifier.state import RegType

ANY = frozenset({1, 2, 4, 8})
NARROW = frozenset({1, 2, 4})
U32_ONLY = frozenset({4})
U64_ONLY = frozenset({8})
NONE: frozenset[int] = frozenset()


@record
class Field:
    """A context field: [off, off+size), the access sizes allowed to read and write it, and the
    pointer type a read produces (None: a scalar)."""

    name: str
    off: int
    size: int
    read: frozenset[int] = NARROW
    write: frozenset[int] = NONE
    loads: RegType | None = None


@record
class Layout:
    """The context of a program type: a C struct name, its size, and its fields."""

    struct: str
    size: int
    fields: tuple[Field, ...]

    def find(self, off: int, size: int) -> Field | None:
        for f in self.fields:
            if f.off <= off and off + size <= f.off + f.size:
                return f
        return None


def _u32(name: str, off: int, write: bool = False) -> Field:
    return Field(name, off, 4, NARROW, U32_ONLY if write else NONE)


XDP_MD = Layout("xdp_md", 24, (
    Field("data", 0, 4, U32_ONLY, loads=RegType.PACKET),
    Field("data_end", 4, 4, U32_ONLY, loads=RegType.PACKET_END),
    Field("data_meta", 8, 4, U32_ONLY, loads=RegType.PACKET_META),
    Field("ingress_ifindex", 12, 4, U32_ONLY),
    Field("rx_queue_index", 16, 4, U32_ONLY),
))
XDP_MD_DEVMAP = Layout("xdp_md", 24, (*XDP_MD.fields, Field("egress_ifindex", 20, 4, U32_ONLY)))

_SKB_COMMON = (
    _u32("len", 0), _u32("pkt_type", 4), _u32("queue_mapping", 12), _u32("protocol", 16),
    _u32("vlan_present", 20), _u32("vlan_tci", 24), _u32("vlan_proto", 28),
    _u32("ingress_ifindex", 36), _u32("ifindex", 40), _u32("hash", 68), _u32("napi_id", 84),
)
_CB = Field("cb", 48, 20, ANY, ANY)

SK_BUFF_FILTER = Layout("__sk_buff", 192, (
    *_SKB_COMMON, _u32("mark", 8), _u32("priority", 32), _u32("tc_index", 44), _CB,
))
SK_BUFF_TC = Layout("__sk_buff", 192, (
    *_SKB_COMMON, _u32("mark", 8, True), _u32("priority", 32, True), _u32("tc_index", 44, True), _CB,
    _u32("tc_classid", 72, True),
    Field("data", 76, 4, U32_ONLY, loads=RegType.PACKET),
    Field("data_end", 80, 4, U32_ONLY, loads=RegType.PACKET_END),
    Field("data_meta", 140, 4, U32_ONLY, loads=RegType.PACKET_META),
    Field("tstamp", 152, 8, U64_ONLY, U64_ONLY),
    _u32("wire_len", 160), _u32("gso_segs", 164), _u32("gso_size", 176),
))
SK_BUFF_CGROUP = Layout("__sk_buff", 192, (
    *_SKB_COMMON, _u32("mark", 8), _u32("priority", 32), _u32("tc_index", 44), _CB,
    Field("data", 76, 4, U32_ONLY, loads=RegType.PACKET),
    Field("data_end", 80, 4, U32_ONLY, loads=RegType.PACKET_END),
))
PT_REGS_SIZE = 21 * 8
PT_REGS = Layout("pt_regs", PT_REGS_SIZE, (Field("regs", 0, PT_REGS_SIZE, ANY),))
PERF_EVENT_DATA = Layout("bpf_perf_event_data", PT_REGS_SIZE + 16, (
    Field("regs", 0, PT_REGS_SIZE, ANY),
    Field("sample_period", PT_REGS_SIZE, 8, U64_ONLY),
    Field("addr", PT_REGS_SIZE + 8, 8, U64_ONLY),
))
MAX_BPF_FUNC_ARGS = 12
RAW_TP_ARGS = Layout("bpf_raw_tracepoint_args", 8 * MAX_BPF_FUNC_ARGS,
                     (Field("args", 0, 8 * MAX_BPF_FUNC_ARGS, ANY),))
PERF_MAX_TRACE_SIZE = 2048
TRACEPOINT = Layout("tracepoint record", PERF_MAX_TRACE_SIZE,
                    (Field("record", 0, PERF_MAX_TRACE_SIZE, ANY),))

_LAYOUTS: dict[ProgType, Layout] = {
    ProgType.SOCKET_FILTER: SK_BUFF_FILTER,
    ProgType.SCHED_CLS: SK_BUFF_TC,
    ProgType.SCHED_ACT: SK_BUFF_TC,
    ProgType.CGROUP_SKB: SK_BUFF_CGROUP,
    ProgType.KPROBE: PT_REGS,
    ProgType.PERF_EVENT: PERF_EVENT_DATA,
    ProgType.RAW_TRACEPOINT: RAW_TP_ARGS,
    ProgType.TRACEPOINT: TRACEPOINT,
}

SUPPORTED = frozenset({ProgType.XDP, ProgType.TRACING, ProgType.LSM, *_LAYOUTS})
"""Program types whose context bpfkit's verifier knows (TRACING's and LSM's from the target BTF: see
`btfmem`, `lsm`)."""

PACKET_READ = frozenset({ProgType.XDP, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.CGROUP_SKB})
PACKET_WRITE = frozenset({ProgType.XDP, ProgType.SCHED_CLS, ProgType.SCHED_ACT})
"""may_access_direct_pkt_data: who may read and who may write packet data directly."""
LD_ABS_TYPES = frozenset({ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT})
"""may_access_skb: program types allowed the legacy LD_ABS/LD_IND packet loads."""


def layout(prog_type: ProgType, attach: AttachType | None) -> Layout:
    if prog_type == ProgType.XDP:
        return XDP_MD_DEVMAP if attach == AttachType.XDP_DEVMAP else XDP_MD
    return _LAYOUTS[prog_type]


def access(prog_type: ProgType, attach: AttachType | None, off: int, size: int,
           write: bool) -> Field | None:
    """The field an access hits, or None if the kernel would refuse it."""
    lay = layout(prog_type, attach)
    if off < 0 or off + size > lay.size or off % size:
        return None
    f = lay.find(off, size)
    if f is None:
        return None
    if size not in (f.write if write else f.read):
        return None
    if f.loads is not None and (write or size != 4 or off != f.off):
        return None
    return f
