"""Helper prototypes: argument and return types of the helpers bpfkit's verifier checks, which
program types may call them, and which map types they accept.

Facts from the kernel's `struct bpf_func_proto` definitions (kernel/bpf/helpers.c, ringbuf.c,
kernel/trace/bpf_trace.c, net/core/filter.c), `check_map_func_compatibility` (kernel/bpf/verifier.c),
and, for availability, from loading a call of each helper in each program type on Linux 6.18.
A helper without a prototype here is refused: bpfkit cannot check its arguments.
"""

from __future__ import annotations

import enum

from bpfkit._records import record
from bpfkit.uapi.enums import Helper, MapType, ProgType


class Arg(enum.Enum):
    """Argument types (the kernel's ARG_* of `enum bpf_arg_type`)."""

    ANYTHING = "anything"
    MAP_PTR = "map_ptr"  # ARG_CONST_MAP_PTR
    MAP_KEY = "map_key"  # ARG_PTR_TO_MAP_KEY: key_size readable bytes
    MAP_VALUE = "map_value"  # ARG_PTR_TO_MAP_VALUE: value_size readable bytes
    UNINIT_MAP_VALUE = "uninit_map_value"  # value_size bytes the helper writes
    MEM = "mem"  # ARG_PTR_TO_MEM | MEM_RDONLY: readable bytes, size in the next argument
    UNINIT_MEM_OR_NULL = "uninit_mem_or_null"  # as UNINIT_MEM, or NULL with a size of 0
    MEM_OR_NULL = "mem_or_null"  # ARG_PTR_TO_MEM | PTR_MAYBE_NULL | MEM_RDONLY: as MEM, or NULL (size 0)
    UNINIT_MEM = "uninit_mem"  # ARG_PTR_TO_UNINIT_MEM: bytes the helper writes, size next
    CONST_SIZE = "size"  # ARG_CONST_SIZE: 1.. bytes of the previous memory argument
    CONST_SIZE_OR_ZERO = "size_or_zero"
    CTX = "ctx"  # ARG_PTR_TO_CTX
    ALLOC_SIZE = "alloc_size"  # ARG_CONST_ALLOC_SIZE_OR_ZERO: a constant
    RINGBUF_MEM = "ringbuf_mem"  # ARG_PTR_TO_ALLOC_MEM | OBJ_RELEASE
    FUNC = "func"  # ARG_PTR_TO_FUNC: a callback
    STACK_OR_NULL = "stack_or_null"  # ARG_PTR_TO_STACK_OR_NULL: the callback's context
    CONST_STR = "const_str"  # ARG_PTR_TO_CONST_STR: a NUL-terminated string in a frozen read-only map
    BTF_SEQ_FILE = "btf_seq_file"  # ARG_PTR_TO_BTF_ID of struct seq_file (btf_seq_file_ids)
    SPIN_LOCK = "spin_lock"  # ARG_PTR_TO_SPIN_LOCK: the bpf_spin_lock field of a map value (from BTF)


class Ret(enum.Enum):
    """Return types (RET_*)."""

    INTEGER = "integer"
    VOID = "void"
    MAP_VALUE_OR_NULL = "map_value_or_null"
    MAP_VALUE = "map_value"  # RET_PTR_TO_MAP_VALUE: never NULL (bpf_get_local_storage)
    RINGBUF_MEM_OR_NULL = "ringbuf_mem_or_null"


_TRACING = frozenset({ProgType.KPROBE, ProgType.TRACEPOINT, ProgType.PERF_EVENT, ProgType.RAW_TRACEPOINT,
                      ProgType.TRACING})
_ALL = frozenset({ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.XDP,
                  ProgType.CGROUP_SKB, *_TRACING})


@record
class Proto:
    """A helper's prototype. `map_types` (when set) are the only map types its map argument may be;
    `changes_packet` says it may move packet data (every packet pointer is invalid after it)."""

    helper: Helper
    args: tuple[Arg, ...]
    ret: Ret = Ret.INTEGER
    types: frozenset[ProgType] = _ALL
    map_types: frozenset[MapType] | None = None
    changes_packet: bool = False
    gpl_only: bool = False
    callback_args: int = 0
    """Helpers with a FUNC argument: how many arguments the callback receives."""
    iter_only: bool = False
    """Only for iterators (TRACING programs with expected attach type BPF_TRACE_ITER)."""

    @property
    def name(self) -> str:
        return "bpf_" + self.helper.name.lower()


_RINGBUF = frozenset({MapType.RINGBUF})
_QUEUE = frozenset({MapType.QUEUE, MapType.STACK})
_CGROUP_STORAGE = frozenset({MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE})
_FOR_EACH = frozenset({MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH,
                       MapType.ARRAY, MapType.PERCPU_ARRAY})
"""Maps with a map_for_each_callback (bpf_for_each_map_elem) that bpfkit models."""
_PUSH_PEEK = _QUEUE | {MapType.BLOOM_FILTER}
_PERCPU = frozenset({MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH})
_SKB = frozenset({ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.CGROUP_SKB})
_TC = frozenset({ProgType.SCHED_CLS, ProgType.SCHED_ACT})

_A = Arg
_PROTOS = [
    Proto(Helper.MAP_LOOKUP_ELEM, (_A.MAP_PTR, _A.MAP_KEY), Ret.MAP_VALUE_OR_NULL),
    Proto(Helper.MAP_UPDATE_ELEM, (_A.MAP_PTR, _A.MAP_KEY, _A.MAP_VALUE, _A.ANYTHING)),
    Proto(Helper.MAP_DELETE_ELEM, (_A.MAP_PTR, _A.MAP_KEY)),
    Proto(Helper.MAP_PUSH_ELEM, (_A.MAP_PTR, _A.MAP_VALUE, _A.ANYTHING), map_types=_PUSH_PEEK),
    Proto(Helper.MAP_POP_ELEM, (_A.MAP_PTR, _A.UNINIT_MAP_VALUE), map_types=_QUEUE),
    # A bloom filter's peek reads the value (a membership test): `calls` checks it as readable.
    Proto(Helper.MAP_PEEK_ELEM, (_A.MAP_PTR, _A.UNINIT_MAP_VALUE), map_types=_PUSH_PEEK),
    Proto(Helper.MAP_LOOKUP_PERCPU_ELEM, (_A.MAP_PTR, _A.MAP_KEY, _A.ANYTHING), Ret.MAP_VALUE_OR_NULL,
          map_types=_PERCPU),
    Proto(Helper.PROBE_READ, (_A.UNINIT_MEM, _A.CONST_SIZE_OR_ZERO, _A.ANYTHING), types=_TRACING,
          gpl_only=True),
    Proto(Helper.PROBE_READ_STR, (_A.UNINIT_MEM, _A.CONST_SIZE_OR_ZERO, _A.ANYTHING), types=_TRACING,
          gpl_only=True),
    *(Proto(h, (_A.UNINIT_MEM, _A.CONST_SIZE_OR_ZERO, _A.ANYTHING), gpl_only=True)
      for h in (Helper.PROBE_READ_USER, Helper.PROBE_READ_KERNEL, Helper.PROBE_READ_USER_STR,
                Helper.PROBE_READ_KERNEL_STR)),
    Proto(Helper.KTIME_GET_NS, ()),
    Proto(Helper.KTIME_GET_BOOT_NS, ()),
    Proto(Helper.KTIME_GET_COARSE_NS, (), types=_ALL - _TRACING),
    Proto(Helper.JIFFIES64, ()),
    Proto(Helper.TRACE_PRINTK, (_A.MEM, _A.CONST_SIZE), gpl_only=True),  # r3-r5 are not checked
    Proto(Helper.GET_PRANDOM_U32, ()),
    Proto(Helper.GET_SMP_PROCESSOR_ID, ()),
    Proto(Helper.GET_NUMA_NODE_ID, ()),
    Proto(Helper.GET_CURRENT_PID_TGID, ()),
    Proto(Helper.GET_CURRENT_UID_GID, ()),
    Proto(Helper.GET_CURRENT_TASK, (), gpl_only=True),
    Proto(Helper.GET_CURRENT_COMM, (_A.UNINIT_MEM, _A.CONST_SIZE)),
    Proto(Helper.TAIL_CALL, (_A.CTX, _A.MAP_PTR, _A.ANYTHING), Ret.VOID,
          map_types=frozenset({MapType.PROG_ARRAY})),
    Proto(Helper.PERF_EVENT_OUTPUT, (_A.CTX, _A.MAP_PTR, _A.ANYTHING, _A.MEM, _A.CONST_SIZE_OR_ZERO),
          map_types=frozenset({MapType.PERF_EVENT_ARRAY}), gpl_only=True),
    Proto(Helper.SKB_LOAD_BYTES, (_A.CTX, _A.ANYTHING, _A.UNINIT_MEM, _A.CONST_SIZE), types=_SKB),
    Proto(Helper.XDP_ADJUST_HEAD, (_A.CTX, _A.ANYTHING), types=frozenset({ProgType.XDP}),
          changes_packet=True),
    Proto(Helper.XDP_ADJUST_META, (_A.CTX, _A.ANYTHING), types=frozenset({ProgType.XDP}),
          changes_packet=True),
    Proto(Helper.XDP_ADJUST_TAIL, (_A.CTX, _A.ANYTHING), types=frozenset({ProgType.XDP}),
          changes_packet=True),
    Proto(Helper.RINGBUF_OUTPUT, (_A.MAP_PTR, _A.MEM, _A.CONST_SIZE_OR_ZERO, _A.ANYTHING),
          map_types=_RINGBUF),
    Proto(Helper.RINGBUF_RESERVE, (_A.MAP_PTR, _A.ALLOC_SIZE, _A.ANYTHING), Ret.RINGBUF_MEM_OR_NULL,
          map_types=_RINGBUF),
    Proto(Helper.RINGBUF_SUBMIT, (_A.RINGBUF_MEM, _A.ANYTHING), Ret.VOID),
    Proto(Helper.RINGBUF_DISCARD, (_A.RINGBUF_MEM, _A.ANYTHING), Ret.VOID),
    Proto(Helper.RINGBUF_QUERY, (_A.MAP_PTR, _A.ANYTHING), map_types=_RINGBUF),
    Proto(Helper.LOOP, (_A.ANYTHING, _A.FUNC, _A.STACK_OR_NULL, _A.ANYTHING), callback_args=2),
    Proto(Helper.FOR_EACH_MAP_ELEM, (_A.MAP_PTR, _A.FUNC, _A.STACK_OR_NULL, _A.ANYTHING), callback_args=4,
          map_types=_FOR_EACH),
    Proto(Helper.STRNCMP, (_A.MEM, _A.CONST_SIZE, _A.CONST_STR)),
    Proto(Helper.SNPRINTF, (_A.UNINIT_MEM_OR_NULL, _A.CONST_SIZE_OR_ZERO, _A.CONST_STR, _A.MEM_OR_NULL,
                            _A.CONST_SIZE_OR_ZERO), gpl_only=True),
    # net/core/filter.c: packet writes and checksum fix-ups (tc only; they may move packet data).
    Proto(Helper.SKB_STORE_BYTES, (_A.CTX, _A.ANYTHING, _A.MEM, _A.CONST_SIZE, _A.ANYTHING), types=_TC,
          changes_packet=True),
    Proto(Helper.L3_CSUM_REPLACE, (_A.CTX, _A.ANYTHING, _A.ANYTHING, _A.ANYTHING, _A.ANYTHING), types=_TC,
          changes_packet=True),
    Proto(Helper.L4_CSUM_REPLACE, (_A.CTX, _A.ANYTHING, _A.ANYTHING, _A.ANYTHING, _A.ANYTHING), types=_TC,
          changes_packet=True),
    Proto(Helper.CSUM_DIFF, (_A.MEM_OR_NULL, _A.CONST_SIZE_OR_ZERO, _A.MEM_OR_NULL, _A.CONST_SIZE_OR_ZERO,
                             _A.ANYTHING), types=_TC | {ProgType.XDP}),
    # kernel/trace/bpf_trace.c, kernel/bpf/stackmap.c
    Proto(Helper.TRACE_VPRINTK, (_A.MEM, _A.CONST_SIZE, _A.MEM_OR_NULL, _A.CONST_SIZE_OR_ZERO),
          gpl_only=True),
    Proto(Helper.GET_STACKID, (_A.CTX, _A.MAP_PTR, _A.ANYTHING), types=_TRACING - {ProgType.TRACING},
          map_types=frozenset({MapType.STACK_TRACE}), gpl_only=True),
    Proto(Helper.GET_STACK, (_A.CTX, _A.UNINIT_MEM, _A.CONST_SIZE_OR_ZERO, _A.ANYTHING),
          types=_TRACING - {ProgType.TRACING}, gpl_only=True),
    # kernel/bpf/helpers.c: the program's cgroup storage (its flags must be 0: check_helper_call).
    Proto(Helper.GET_LOCAL_STORAGE, (_A.MAP_PTR, _A.ANYTHING), Ret.MAP_VALUE,
          types=frozenset({ProgType.CGROUP_SKB}), map_types=_CGROUP_STORAGE),
    # The lock is a field the map's BTF declares; bpfkit's maps carry no BTF, so `calls` refuses every
    # use, as the kernel does for a map without BTF.
    Proto(Helper.SPIN_LOCK, (_A.SPIN_LOCK,), Ret.VOID, types=_ALL - _TRACING),
    Proto(Helper.SPIN_UNLOCK, (_A.SPIN_LOCK,), Ret.VOID, types=_ALL - _TRACING),
    Proto(Helper.SEQ_PRINTF, (_A.BTF_SEQ_FILE, _A.MEM, _A.CONST_SIZE, _A.MEM_OR_NULL, _A.CONST_SIZE_OR_ZERO),
          types=frozenset({ProgType.TRACING}), gpl_only=True, iter_only=True),
]

PROTOS: dict[int, Proto] = {int(p.helper): p for p in _PROTOS}
"""Helper id -> prototype."""

MAP_ONLY_HELPERS: dict[MapType, frozenset[Helper]] = {
    MapType.PROG_ARRAY: frozenset({Helper.TAIL_CALL}),
    MapType.PERF_EVENT_ARRAY: frozenset({Helper.PERF_EVENT_OUTPUT, Helper.PERF_EVENT_READ,
                                         Helper.PERF_EVENT_READ_VALUE, Helper.SKB_OUTPUT,
                                         Helper.XDP_OUTPUT}),
    MapType.RINGBUF: frozenset({Helper.RINGBUF_OUTPUT, Helper.RINGBUF_RESERVE, Helper.RINGBUF_QUERY}),
    MapType.QUEUE: frozenset({Helper.MAP_PUSH_ELEM, Helper.MAP_POP_ELEM, Helper.MAP_PEEK_ELEM}),
    MapType.STACK: frozenset({Helper.MAP_PUSH_ELEM, Helper.MAP_POP_ELEM, Helper.MAP_PEEK_ELEM}),
    MapType.BLOOM_FILTER: frozenset({Helper.MAP_PUSH_ELEM, Helper.MAP_PEEK_ELEM}),
    MapType.CGROUP_STORAGE: frozenset({Helper.GET_LOCAL_STORAGE}),
    MapType.PERCPU_CGROUP_STORAGE: frozenset({Helper.GET_LOCAL_STORAGE}),
    MapType.STACK_TRACE: frozenset({Helper.GET_STACKID}),
    MapType.ARRAY_OF_MAPS: frozenset({Helper.MAP_LOOKUP_ELEM}),
    MapType.HASH_OF_MAPS: frozenset({Helper.MAP_LOOKUP_ELEM}),
}
"""Map types only some helpers may take (the map side of check_map_func_compatibility)."""

SUPPORTED_MAP_TYPES = frozenset({
    MapType.HASH, MapType.ARRAY, MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_HASH,
    MapType.LRU_PERCPU_HASH, MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY, MapType.RINGBUF,
    MapType.QUEUE, MapType.STACK, MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.STACK_TRACE,
    MapType.LPM_TRIE, MapType.BLOOM_FILTER, MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE,
})
"""Map types whose helper rules bpfkit's verifier knows."""


def map_compatible(proto: Proto, map_type: MapType) -> bool:
    """Whether the helper may take a map of this type."""
    only = MAP_ONLY_HELPERS.get(map_type)
    if only is not None and proto.helper not in only:
        return False
    return proto.map_types is None or map_type in proto.map_types
