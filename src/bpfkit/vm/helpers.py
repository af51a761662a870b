"""Helper functions under the kernel's ids, and the registry users extend from Python.

A helper is `fn(rt, r1, r2, r3, r4, r5) -> r0` (`bpfkit.vm.runtime.HelperFn`); it reads and writes
program memory through `rt.mem` (bounds-checked) and reaches the VM through `rt.host`. Return values
and error codes follow the kernel's helpers (include/uapi/linux/bpf.h documents each one).
"""

from __future__ import annotations

import errno
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from bpfkit._records import record
from bpfkit.errors import VmHelperError, VmMemoryError
from bpfkit.uapi.enums import Helper
from bpfkit.vm.maps import (
    PerfEventArrayMap,
    ProgArrayMap,
    QueueStackMap,
    RingbufMap,
    VmMap,
)
from bpfkit.vm.maps_extra import BloomFilterMap
from bpfkit.vm.memory import RegionKind
from bpfkit.vm.prandom import Prandom
from bpfkit.vm.runtime import U64, HelperFn, ProgramExit, RunState, TailCallDone

if TYPE_CHECKING:
    from bpfkit.vm.context import _PacketContext

BPF_MAX_LOOPS = 1 << 23
"""bpf_loop's `nr_loops` limit (kernel/bpf/bpf_iter.c BPF_MAX_LOOPS)."""
TASK_COMM_LEN = 16
MAX_PRINTK_ARGS = 3


@record
class HelperDef:
    """A helper: kernel id, name (without `bpf_`), and implementation."""

    id: int
    name: str
    fn: HelperFn


class HelperRegistry(Mapping[int, HelperFn]):
    """Helper id -> implementation. `Vm` copies its registry when it loads a program, so helpers added
    later apply to programs loaded later."""

    def __init__(self, defs: Mapping[int, HelperDef] | None = None) -> None:
        self._defs: dict[int, HelperDef] = dict(defs or {})

    def register(self, helper_id: int, fn: HelperFn, name: str | None = None) -> None:
        """Add or replace helper `helper_id`."""
        helper_id = int(helper_id)
        if not 0 <= helper_id < 1 << 32:
            raise VmHelperError(f"helper id {helper_id} is not a 32-bit id")
        if name is None:
            try:
                name = Helper(helper_id).name.lower()
            except ValueError:
                name = getattr(fn, "__name__", f"helper_{helper_id}")
        self._defs[helper_id] = HelperDef(helper_id, name, fn)

    def helper(self, helper_id: int, name: str | None = None) -> Callable[[HelperFn], HelperFn]:
        """Decorator form of `register`."""
        def wrap(fn: HelperFn) -> HelperFn:
            self.register(helper_id, fn, name)
            return fn
        return wrap

    def copy(self) -> HelperRegistry:
        return HelperRegistry(self._defs)

    def name_of(self, helper_id: int) -> str:
        d = self._defs.get(helper_id)
        return d.name if d else f"#{helper_id}"

    def table(self) -> dict[int, HelperFn]:
        return {i: d.fn for i, d in self._defs.items()}

    def __getitem__(self, helper_id: int) -> HelperFn:
        return self._defs[helper_id].fn

    def __iter__(self) -> Iterator[int]:
        return iter(self._defs)

    def __len__(self) -> int:
        return len(self._defs)


# -- plumbing -------------------------------------------------------------------------------------
def _map(rt: RunState, addr: int) -> VmMap:
    vm_map = rt.host.map_at(addr) if rt.host is not None else None  # type: ignore[attr-defined]
    if vm_map is None:
        raise VmHelperError(f"{addr:#x} is not a map")
    return vm_map  # type: ignore[no-any-return]


def _neg(code: int) -> int:
    return -code & U64


def vm_pointer(rt: RunState, value: int) -> int:
    """A pointer a program stored in memory, as a VM address. Register arguments arrive translated, but
    under the JIT a pointer written to memory (a bpf_snprintf argument array) is a host address."""
    host = getattr(getattr(rt.engine, "runtime", None), "host", None)
    to_fake = getattr(host, "to_fake", None)
    return int(to_fake(value)) if to_fake is not None else value


def _key(rt: RunState, vm_map: VmMap, addr: int) -> bytes:
    return rt.mem.read_bytes(addr, vm_map.key_size)


# -- maps -----------------------------------------------------------------------------------------
def map_lookup_elem(rt: RunState, m: int, key: int, _3: int, _4: int, _5: int) -> int:
    vm_map = _map(rt, m)
    return vm_map.bpf_lookup(rt, _key(rt, vm_map, key))


def map_update_elem(rt: RunState, m: int, key: int, value: int, flags: int, _5: int) -> int:
    vm_map = _map(rt, m)
    if isinstance(vm_map, QueueStackMap):
        return _neg(EINVAL)
    data = rt.mem.read_bytes(value, vm_map.value_size)
    return vm_map.bpf_update_bytes(_key(rt, vm_map, key), data, flags, cpu=rt.cpu) & U64


def map_delete_elem(rt: RunState, m: int, key: int, _3: int, _4: int, _5: int) -> int:
    vm_map = _map(rt, m)
    return vm_map.bpf_delete(_key(rt, vm_map, key)) & U64


def map_lookup_percpu_elem(rt: RunState, m: int, key: int, cpu: int, _4: int, _5: int) -> int:
    vm_map = _map(rt, m)
    if not vm_map.per_cpu or cpu >= vm_map.ncpus:
        return 0
    saved, rt.cpu = rt.cpu, cpu
    try:
        return vm_map.bpf_lookup(rt, _key(rt, vm_map, key))
    finally:
        rt.cpu = saved


def map_push_elem(rt: RunState, m: int, value: int, flags: int, _4: int, _5: int) -> int:
    vm_map = _map(rt, m)
    if isinstance(vm_map, BloomFilterMap):
        return vm_map.push(rt.mem.read_bytes(value, vm_map.value_size), flags) & U64
    if not isinstance(vm_map, QueueStackMap):
        return _neg(EINVAL)
    return vm_map.push(rt.mem.read_bytes(value, vm_map.value_size), flags) & U64


def _pop(rt: RunState, m: int, value: int, remove: bool) -> int:
    vm_map = _map(rt, m)
    if isinstance(vm_map, BloomFilterMap):
        if remove:
            return _neg(EOPNOTSUPP)
        return vm_map.contains(rt.mem.read_bytes(value, vm_map.value_size)) & U64
    if not isinstance(vm_map, QueueStackMap):
        return _neg(EINVAL)
    item = vm_map.pop(remove)
    if item is None:
        return _neg(ENOENT)
    rt.mem.write_bytes(value, item)
    return 0


def map_pop_elem(rt: RunState, m: int, value: int, _3: int, _4: int, _5: int) -> int:
    return _pop(rt, m, value, True)


def map_peek_elem(rt: RunState, m: int, value: int, _3: int, _4: int, _5: int) -> int:
    return _pop(rt, m, value, False)


def for_each_map_elem(rt: RunState, m: int, callback: int, ctx: int, flags: int, _5: int) -> int:
    vm_map = _map(rt, m)
    if flags:
        return _neg(EINVAL)
    count = 0
    for key, value_addr in vm_map.bpf_entries(rt):
        key_region = rt.mem.map(bytes(key), RegionKind.MEMORY, writable=False, name="key")
        try:
            count += 1
            ret = rt.call_function(callback, m, key_region.base, value_addr, ctx)
        finally:
            rt.mem.unmap(key_region)
        if ret:
            break
    return count


def tail_call(rt: RunState, ctx: int, m: int, index: int, _4: int, _5: int) -> int:
    vm_map = _map(rt, m)
    if not isinstance(vm_map, ProgArrayMap):
        raise VmHelperError("bpf_tail_call needs a BPF_MAP_TYPE_PROG_ARRAY map")
    target = vm_map.programs.get(index & 0xFFFFFFFF)
    loaded = getattr(target, "loaded", None)
    guard = getattr(target, "check_tail_call", None)
    if guard is not None:  # a verified program runs only in the context it was verified for
        guard(rt)
    result = rt.tail_call(ctx, loaded)
    if result is None:
        return _neg(ENOENT)
    return TailCallDone(result)


def loop(rt: RunState, nr_loops: int, callback: int, ctx: int, flags: int, _5: int) -> int:
    nr_loops &= 0xFFFFFFFF
    if flags:
        return _neg(EINVAL)
    if nr_loops > BPF_MAX_LOOPS:
        return _neg(E2BIG)
    for i in range(nr_loops):
        if rt.call_function(callback, i, ctx):
            return i + 1
    return nr_loops


# -- ring buffer and perf events ------------------------------------------------------------------
def _ringbuf(rt: RunState, m: int) -> RingbufMap:
    vm_map = _map(rt, m)
    if not isinstance(vm_map, RingbufMap):
        raise VmHelperError(f"map {vm_map.name!r} is not a ring buffer")
    return vm_map


def ringbuf_output(rt: RunState, m: int, data: int, size: int, flags: int, _5: int) -> int:
    rb = _ringbuf(rt, m)
    if flags & ~3:
        return _neg(EINVAL)
    return rb.output(rt.mem.read_bytes(data, size)) & U64


def ringbuf_reserve(rt: RunState, m: int, size: int, flags: int, _4: int, _5: int) -> int:
    if flags:
        return 0
    return _ringbuf(rt, m).reserve(size)


def _commit(rt: RunState, data: int, discard: bool) -> int:
    if rt.host is not None:
        for vm_map in rt.host.maps:  # type: ignore[attr-defined]
            if isinstance(vm_map, RingbufMap) and vm_map.commit(data, discard):
                return 0
    raise VmHelperError(f"{data:#x} is not a ring buffer record reserved by this run")


def ringbuf_submit(rt: RunState, data: int, flags: int, _3: int, _4: int, _5: int) -> int:
    return _commit(rt, data, False)


def ringbuf_discard(rt: RunState, data: int, flags: int, _3: int, _4: int, _5: int) -> int:
    return _commit(rt, data, True)


def ringbuf_query(rt: RunState, m: int, flags: int, _3: int, _4: int, _5: int) -> int:
    return _ringbuf(rt, m).query(flags)


def perf_event_output(rt: RunState, ctx: int, m: int, flags: int, data: int, size: int) -> int:
    vm_map = _map(rt, m)
    if not isinstance(vm_map, PerfEventArrayMap):
        return _neg(EINVAL)
    return vm_map.output(rt, flags, rt.mem.read_bytes(data, size)) & U64


# -- time, randomness, task ---------------------------------------------------------------------
def ktime_get_ns(rt: RunState, *_: int) -> int:
    return rt.host.clock_ns() if rt.host is not None else time.monotonic_ns()  # type: ignore[attr-defined]


def ktime_get_boot_ns(rt: RunState, *_: int) -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") \
        else time.monotonic_ns()


def ktime_get_coarse_ns(rt: RunState, *_: int) -> int:
    ns = ktime_get_ns(rt)
    return ns - ns % 4_000_000  # coarse clocks tick once per jiffy (4 ms at HZ=250)


def get_prandom_u32(rt: RunState, *_: int) -> int:
    prandom = getattr(rt.host, "prandom", None)
    return prandom.next_u32() if isinstance(prandom, Prandom) else 0


def get_smp_processor_id(rt: RunState, *_: int) -> int:
    return rt.cpu


def get_numa_node_id(rt: RunState, *_: int) -> int:
    return 0


def get_current_pid_tgid(rt: RunState, *_: int) -> int:
    task = rt.host.task if rt.host is not None else None  # type: ignore[attr-defined]
    pid, tgid = (task.pid, task.tgid) if task else (os.getpid(), os.getpid())
    return (tgid << 32) | pid


def get_current_uid_gid(rt: RunState, *_: int) -> int:
    task = rt.host.task if rt.host is not None else None  # type: ignore[attr-defined]
    uid, gid = (task.uid, task.gid) if task else (os.getuid(), os.getgid())
    return (gid << 32) | uid


def get_current_comm(rt: RunState, buf: int, size: int, _3: int, _4: int, _5: int) -> int:
    task = rt.host.task if rt.host is not None else None  # type: ignore[attr-defined]
    comm = (task.comm if task else "python").encode()[:TASK_COMM_LEN - 1]
    if size == 0:
        return _neg(EINVAL)
    out = (comm[:size - 1] + b"\0").ljust(size, b"\0")
    rt.mem.write_bytes(buf, out)
    return 0


# -- memory -------------------------------------------------------------------------------------
def probe_read(rt: RunState, dst: int, size: int, src: int, _4: int, _5: int) -> int:
    """bpf_probe_read_kernel/user: confined to VM memory; a bad source zeroes dst and gives -EFAULT."""
    size &= 0xFFFFFFFF
    try:
        data = rt.mem.read_bytes(src, size)
    except VmMemoryError:
        rt.mem.write_bytes(dst, bytes(size))
        return _neg(EFAULT)
    rt.mem.write_bytes(dst, data)
    return 0


def probe_read_str(rt: RunState, dst: int, size: int, src: int, _4: int, _5: int) -> int:
    """bpf_probe_read_*_str: copy a NUL-terminated string; returns its length including the NUL."""
    size &= 0xFFFFFFFF
    if size == 0:
        return 0
    try:
        text = rt.mem.read_cstr(src, size - 1)
    except VmMemoryError:
        rt.mem.write_bytes(dst, bytes(size))
        return _neg(EFAULT)
    rt.mem.write_bytes(dst, text + b"\0")
    return len(text) + 1


def strncmp(rt: RunState, s1: int, s1_sz: int, s2: int, _4: int, _5: int) -> int:
    """bpf_strncmp(s1, s1_sz, s2): the kernel's strncmp(s1, s2, s1_sz), so -1, 0 or 1 (kernel/bpf/helpers.c
    calls lib/string.c's strncmp, which returns the sign only). s2 is NUL-terminated."""
    n = s1_sz & 0xFFFFFFFF
    a = rt.mem.read_bytes(s1, n)
    b = rt.mem.read_cstr(s2, n)
    for i in range(n):
        c1, c2 = a[i], b[i] if i < len(b) else 0
        if c1 != c2:
            return (-1 & U64) if c1 < c2 else 1
        if c1 == 0:
            break
    return 0


def trace_printk(rt: RunState, fmt: int, size: int, a1: int, a2: int, a3: int) -> int:
    """bpf_trace_printk: format with the kernel's printf subset; the line goes to `Vm.trace_output`."""
    raw = rt.mem.read_bytes(fmt, size & 0xFFFFFFFF)
    text = raw.split(b"\0", 1)[0].decode("latin-1")
    line = format_printk(rt, text, [a1, a2, a3])
    if rt.host is not None:
        rt.host.trace_output.append(line)  # type: ignore[attr-defined]
    return len(line.encode("latin-1", "replace")) + 1


def format_printk(rt: RunState, fmt: str, args: list[int]) -> str:
    """Expand %d %i %u %x %X %ld %lld %lu %llu %lx %llx %p %pI4 %pi4 %pI6 %pi6 %s %c %% like the
    kernel's bpf_bprintf_prepare + bstr_printf."""
    out: list[str] = []
    i = 0
    argi = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        j = i + 1
        while j < len(fmt) and fmt[j] in "-+ #0123456789.":
            j += 1
        longs = 0
        while j < len(fmt) and fmt[j] in "lhz":
            longs += fmt[j] == "l"
            j += 1
        if j >= len(fmt):
            out.append(fmt[i:])
            break
        conv = fmt[j]
        spec = fmt[i + 1:j].rstrip("lhz")
        if conv == "%":
            out.append("%")
            i = j + 1
            continue
        value = args[argi] if argi < len(args) else 0
        argi += 1
        bits = 64 if longs else 32
        if conv in "di":
            v = value & ((1 << bits) - 1)
            v = v - (1 << bits) if v >> (bits - 1) else v
            out.append(("%" + spec + "d") % v)
        elif conv in "uxXo":
            out.append(("%" + spec + conv) % (value & ((1 << bits) - 1)))
        elif conv == "p" and fmt[j + 1:j + 3] in ("I4", "i4", "I6", "i6"):
            out.append(_format_ip(rt, fmt[j + 1:j + 3], value))
            i = j + 3
            continue
        elif conv == "p":
            out.append(f"{value & U64:x}" if value else "0000000000000000")
        elif conv == "c":
            out.append(chr(value & 0xFF))
        elif conv == "s":
            try:
                text = rt.mem.read_cstr(vm_pointer(rt, value), 1 << 12).decode("latin-1")
            except VmMemoryError:
                text = ""  # bpf_bprintf_prepare copies strings first; a failed copy is an empty string
            out.append(("%" + spec + "s") % text)
        else:
            out.append(fmt[i:j + 1])
        i = j + 1
    return "".join(out)


def _format_ip(rt: RunState, kind: str, addr: int) -> str:
    """%pI4 (1.2.3.4), %pi4 (001.002.003.004), %pI6 (8 groups of 4 hex digits), %pi6 (32 hex digits)
    of the address `addr` points to (lib/vsprintf.c ip4_string / ip6_string); unreadable: empty."""
    size = 4 if kind[1] == "4" else 16
    try:
        raw = rt.mem.read_bytes(vm_pointer(rt, addr), size)
    except VmMemoryError:
        return ""
    if kind == "I4":
        return ".".join(str(b) for b in raw)
    if kind == "i4":
        return ".".join(f"{b:03d}" for b in raw)
    if kind == "I6":
        return ":".join(raw[k:k + 2].hex() for k in range(0, 16, 2))
    return raw.hex()


# -- packets --------------------------------------------------------------------------------------
def _packet_ctx(rt: RunState) -> _PacketContext:
    ctx = rt.context
    from bpfkit.vm.context import _PacketContext

    if not isinstance(ctx, _PacketContext):
        raise VmHelperError("this helper needs a packet (an XDP or skb run)")
    return ctx


def xdp_adjust_head(rt: RunState, ctx: int, delta: int, _3: int, _4: int, _5: int) -> int:
    pc = _packet_ctx(rt)
    pkt = pc.packet
    delta = _s32(delta)
    data = pkt.data + delta
    meta_len = pkt.data - pkt.meta
    # data may move down into the headroom (keeping room for the metadata) and up to leave >= 14 bytes
    if data - meta_len < 0 or data > pkt.end - 14:
        return _neg(EINVAL)
    pkt.data = data
    pkt.meta = data - meta_len
    pc.remap()
    return 0


def xdp_adjust_meta(rt: RunState, ctx: int, delta: int, _3: int, _4: int, _5: int) -> int:
    pc = _packet_ctx(rt)
    pkt = pc.packet
    meta = pkt.meta + _s32(delta)
    if meta < 0 or meta > pkt.data or pkt.data - meta > 32:
        return _neg(EINVAL)  # the kernel allows at most 32 bytes of metadata, 4-byte aligned
    if (pkt.data - meta) & 3:
        return _neg(EINVAL)
    pkt.meta = meta
    pc.remap()
    return 0


def xdp_adjust_tail(rt: RunState, ctx: int, delta: int, _3: int, _4: int, _5: int) -> int:
    pc = _packet_ctx(rt)
    pkt = pc.packet
    end = pkt.end + _s32(delta)
    tailroom_limit = len(pkt.frame) - 320  # the kernel keeps room for skb_shared_info at the end
    if end < pkt.data + 14 or end > tailroom_limit:
        return _neg(EINVAL)
    if end > pkt.end:
        pkt.frame[pkt.end:end] = bytes(end - pkt.end)
    pkt.end = end
    pc.remap()
    return 0


def skb_load_bytes(rt: RunState, ctx: int, offset: int, to: int, length: int, _5: int) -> int:
    pc = _packet_ctx(rt)
    pkt = pc.packet
    offset &= 0xFFFFFFFF
    length &= 0xFFFFFFFF
    if offset >= 0x80000000 or length == 0 or pkt.data + offset + length > pkt.end:
        if length:
            rt.mem.write_bytes(to, bytes(length))
        return _neg(EFAULT)
    rt.mem.write_bytes(to, bytes(pkt.frame[pkt.data + offset:pkt.data + offset + length]))
    return 0


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


ENOENT, EINVAL, E2BIG, EFAULT, EOPNOTSUPP = (errno.ENOENT, errno.EINVAL, errno.E2BIG, errno.EFAULT,
                                           errno.EOPNOTSUPP)


def default_helpers() -> HelperRegistry:
    """The helpers the VM emulates, under their kernel ids."""
    reg = HelperRegistry()
    for helper, fn in (
        (Helper.MAP_LOOKUP_ELEM, map_lookup_elem), (Helper.MAP_UPDATE_ELEM, map_update_elem),
        (Helper.MAP_DELETE_ELEM, map_delete_elem), (Helper.PROBE_READ, probe_read),
        (Helper.KTIME_GET_NS, ktime_get_ns), (Helper.TRACE_PRINTK, trace_printk),
        (Helper.GET_PRANDOM_U32, get_prandom_u32), (Helper.GET_SMP_PROCESSOR_ID, get_smp_processor_id),
        (Helper.TAIL_CALL, tail_call), (Helper.GET_CURRENT_PID_TGID, get_current_pid_tgid),
        (Helper.GET_CURRENT_UID_GID, get_current_uid_gid), (Helper.GET_CURRENT_COMM, get_current_comm),
        (Helper.PERF_EVENT_OUTPUT, perf_event_output), (Helper.SKB_LOAD_BYTES, skb_load_bytes),
        (Helper.GET_NUMA_NODE_ID, get_numa_node_id),
        (Helper.XDP_ADJUST_HEAD, xdp_adjust_head), (Helper.PROBE_READ_STR, probe_read_str),
        (Helper.XDP_ADJUST_META, xdp_adjust_meta), (Helper.XDP_ADJUST_TAIL, xdp_adjust_tail),
        (Helper.MAP_PUSH_ELEM, map_push_elem), (Helper.MAP_POP_ELEM, map_pop_elem),
        (Helper.MAP_PEEK_ELEM, map_peek_elem), (Helper.PROBE_READ_USER, probe_read),
        (Helper.PROBE_READ_KERNEL, probe_read), (Helper.PROBE_READ_USER_STR, probe_read_str),
        (Helper.PROBE_READ_KERNEL_STR, probe_read_str), (Helper.KTIME_GET_BOOT_NS, ktime_get_boot_ns),
        (Helper.RINGBUF_OUTPUT, ringbuf_output), (Helper.RINGBUF_RESERVE, ringbuf_reserve),
        (Helper.RINGBUF_SUBMIT, ringbuf_submit), (Helper.RINGBUF_DISCARD, ringbuf_discard),
        (Helper.RINGBUF_QUERY, ringbuf_query), (Helper.KTIME_GET_COARSE_NS, ktime_get_coarse_ns),
        (Helper.FOR_EACH_MAP_ELEM, for_each_map_elem), (Helper.LOOP, loop),
        (Helper.MAP_LOOKUP_PERCPU_ELEM, map_lookup_percpu_elem), (Helper.STRNCMP, strncmp),
    ):
        reg.register(int(helper), fn)  # type: ignore[arg-type]
    from bpfkit.vm import helpers_extra as x

    extra: tuple[tuple[Helper, HelperFn], ...] = (
        (Helper.SKB_STORE_BYTES, x.skb_store_bytes), (Helper.L3_CSUM_REPLACE, x.l3_csum_replace),
        (Helper.L4_CSUM_REPLACE, x.l4_csum_replace), (Helper.CSUM_DIFF, x.csum_diff),
        (Helper.SPIN_LOCK, x.spin_lock), (Helper.SPIN_UNLOCK, x.spin_unlock),
        (Helper.GET_STACKID, x.get_stackid), (Helper.GET_STACK, x.get_stack), (Helper.SNPRINTF, x.snprintf),
        (Helper.TRACE_VPRINTK, x.trace_vprintk), (Helper.GET_LOCAL_STORAGE, x.get_local_storage),
    )  # get_current_task(_btf) and get_func_ip stay unregistered: loading refuses them by name
    for extra_id, extra_fn in extra:
        reg.register(int(extra_id), extra_fn)
    return reg


# -- the conformance suite's helpers ------------------------------------------------------------
def _gather_bytes(rt: RunState, a: int, b: int, c: int, d: int, e: int) -> int:
    return ((a & 0xFF) << 32) | ((b & 0xFF) << 24) | ((c & 0xFF) << 16) | ((d & 0xFF) << 8) | (e & 0xFF)


def _memfrob(rt: RunState, addr: int, size: int, _3: int, _4: int, _5: int) -> int:
    data = rt.mem.read_bytes(addr, size)
    rt.mem.write_bytes(addr, bytes(x ^ 42 for x in data))
    return 0


def _no_op(rt: RunState, *_: int) -> int:
    return 0


def _sqrti(rt: RunState, a: int, *_: int) -> int:
    return math.isqrt(a)


def _strcmp(rt: RunState, a: int, b: int, *_: int) -> int:
    sa, sb = rt.mem.read_cstr(a, 1 << 16), rt.mem.read_cstr(b, 1 << 16)
    for x, y in zip(sa + b"\0", sb + b"\0", strict=False):
        if x != y:
            return (x - y) & U64
    return 0


def _unwind(rt: RunState, a: int, *_: int) -> int:
    if a == 0:
        raise ProgramExit(0)  # the unwind helper ends the program when it returns 0
    return a


def conformance_helpers() -> HelperRegistry:
    """The helpers of the bpf_conformance runner's uBPF plugin: 0 gather_bytes, 1 memfrob, 2 no_op,
    3 sqrti, 4 strcmp_ext, 5 unwind (returns its argument; ends the program when that is 0)."""
    reg = HelperRegistry()
    for helper_id, name, fn in ((0, "gather_bytes", _gather_bytes), (1, "memfrob", _memfrob),
                                (2, "no_op", _no_op), (3, "sqrti", _sqrti), (4, "strcmp_ext", _strcmp),
                                (5, "unwind", _unwind)):
        reg.register(helper_id, fn, name)
    return reg
