"""More helpers with the kernel's semantics: skb writes and checksum fix-ups, spin locks, stack ids,
snprintf/trace_vprintk. (bpf_get_current_task and bpf_get_func_ip stay unregistered: the VM has no
kernel task_struct nor kernel function, and loading refuses a program calling them, naming the helper.)

Checksums follow net/core/filter.c (bpf_l3_csum_replace, bpf_l4_csum_replace, bpf_csum_diff) and the
generic ones' complement arithmetic of include/net/checksum.h. The checksum field and the from/to values
are handled the way the kernel sees them: 16/32-bit values loaded from packet memory in host (little
endian) order, so a program passes what it loaded from the packet.
"""

from __future__ import annotations

import errno

from bpfkit.errors import VmHelperError
from bpfkit.vm.helpers import _map, _neg, _packet_ctx, format_printk
from bpfkit.vm.maps_extra import (
    BPF_F_SKIP_FIELD_MASK,
    BPF_F_USER_STACK,
    CgroupStorageMap,
    StackTraceMap,
)
from bpfkit.vm.memory import CODE_BASE, RegionKind
from bpfkit.vm.runtime import U64, RunState

EINVAL, EFAULT, ENOENT = errno.EINVAL, errno.EFAULT, errno.ENOENT

BPF_F_RECOMPUTE_CSUM = 1 << 0
BPF_F_INVALIDATE_HASH = 1 << 1
BPF_F_HDR_FIELD_MASK = 0xF
BPF_F_PSEUDO_HDR = 1 << 4
BPF_F_MARK_MANGLED_0 = 1 << 5
BPF_F_MARK_ENFORCE = 1 << 6
BPF_F_IPV6 = 1 << 7
"""Flags of bpf_skb_store_bytes and bpf_l3/l4_csum_replace (include/uapi/linux/bpf.h)."""
BPF_F_USER_BUILD_ID = 1 << 11
"""bpf_get_stack: build id + offset records instead of addresses."""
CSUM_MANGLED_0 = 0xFFFF
MAX_BPF_FUNC_VARARGS = 12
"""Most u64 arguments bpf_snprintf / bpf_trace_vprintk take (include/linux/bpf.h)."""
CSUM_DIFF_MAX = 512
"""Largest from_size / to_size of bpf_csum_diff (net/core/filter.c)."""


# -- ones' complement arithmetic (include/net/checksum.h, generic forms) ---------------------------
def csum_add(a: int, b: int) -> int:
    """32-bit add with end-around carry."""
    res = (a + b) & 0xFFFFFFFF
    return (res + (res < (b & 0xFFFFFFFF))) & 0xFFFFFFFF


def csum_sub(a: int, b: int) -> int:
    return csum_add(a, ~b & 0xFFFFFFFF)


def csum_fold(csum: int) -> int:
    """Fold a 32-bit sum to 16 bits and complement it (__sum16)."""
    s = (csum & 0xFFFF) + (csum >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def csum_from32to16(s: int) -> int:
    s = (s + (((s >> 16) | (s << 16)) & 0xFFFFFFFF)) & 0xFFFFFFFF
    return s >> 16


def csum_partial(data: bytes, seed: int) -> int:
    """The ones' complement sum of `data` (host-order words, the last one zero-padded) plus `seed`."""
    data = bytes(data) + bytes(-len(data) % 4)
    total = seed & 0xFFFFFFFF
    for i in range(0, len(data), 4):
        total = csum_add(total, int.from_bytes(data[i:i + 4], "little"))
    return total


def _csum16_add(csum: int, addend: int) -> int:
    res = (csum + addend) & 0xFFFF
    return (res + (res < addend)) & 0xFFFF


def csum_replace2(field: int, old: int, new: int) -> int:
    """include/net/checksum.h csum_replace2 (RFC 1624), on 16-bit values."""
    return ~_csum16_add(_csum16_add(~field & 0xFFFF, ~old & 0xFFFF), new) & 0xFFFF


def csum_replace4(field: int, old: int, new: int) -> int:
    tmp = csum_sub(~field & 0xFFFF, old)
    return csum_fold(csum_add(tmp, new))


def csum_replace_by_diff(field: int, diff: int) -> int:
    return csum_fold(csum_add(diff, ~field & 0xFFFFFFFF))


# -- skb writes ---------------------------------------------------------------------------------------
def _skb(rt: RunState, what: str) -> object:
    from bpfkit.vm.context import SkbContext

    pc = _packet_ctx(rt)
    if not isinstance(pc, SkbContext):
        raise VmHelperError(f"bpf_{what} needs an skb (a socket filter or tc program), not XDP")
    return pc


def skb_store_bytes(rt: RunState, ctx: int, offset: int, src: int, length: int, flags: int) -> int:
    """bpf_skb_store_bytes: write `length` bytes at `offset` from skb->data."""
    pc = _packet_ctx(rt)
    _skb(rt, "skb_store_bytes")
    pkt = pc.packet
    offset &= 0xFFFFFFFF
    length &= 0xFFFFFFFF
    if flags & ~(BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH):
        return _neg(EINVAL)
    if offset > 0x7FFFFFFF or pkt.data + offset + length > pkt.end:
        return _neg(EFAULT)
    data = rt.mem.read_bytes(src, length)
    pkt.frame[pkt.data + offset:pkt.data + offset + length] = data
    return 0


def _csum_field(rt: RunState, offset: int, what: str) -> tuple[bytearray, int] | int:
    pc = _packet_ctx(rt)
    _skb(rt, what)
    pkt = pc.packet
    offset &= 0xFFFFFFFF
    if offset > 0xFFFF or offset & 1 or pkt.data + offset + 2 > pkt.end:
        return _neg(EFAULT)
    return pkt.frame, pkt.data + offset


def l3_csum_replace(rt: RunState, ctx: int, offset: int, old: int, new: int, flags: int) -> int:
    """bpf_l3_csum_replace: fix the 16-bit checksum at `offset` for a field changed from `old` to `new`
    (flags' low 4 bits: its size, 2 or 4; 0 means `new` is a bpf_csum_diff result)."""
    if flags & ~BPF_F_HDR_FIELD_MASK:
        return _neg(EINVAL)
    where = _csum_field(rt, offset, "l3_csum_replace")
    if isinstance(where, int):
        return where
    frame, at = where
    field = int.from_bytes(frame[at:at + 2], "little")
    size = flags & BPF_F_HDR_FIELD_MASK
    if size == 0:
        if old:
            return _neg(EINVAL)
        field = csum_replace_by_diff(field, new & 0xFFFFFFFF)
    elif size == 2:
        field = csum_replace2(field, old & 0xFFFF, new & 0xFFFF)
    elif size == 4:
        field = csum_replace4(field, old & 0xFFFFFFFF, new & 0xFFFFFFFF)
    else:
        return _neg(EINVAL)
    frame[at:at + 2] = field.to_bytes(2, "little")
    return 0


def l4_csum_replace(rt: RunState, ctx: int, offset: int, old: int, new: int, flags: int) -> int:
    """bpf_l4_csum_replace: like l3_csum_replace for a TCP/UDP checksum. BPF_F_MARK_MANGLED_0 leaves a
    zero (absent UDP) checksum alone and writes a computed zero as 0xffff. Test runs build the skb with
    CHECKSUM_NONE, so BPF_F_PSEUDO_HDR changes nothing more (net/core/utils.c
    inet_proto_csum_replace4)."""
    if flags & ~(BPF_F_MARK_MANGLED_0 | BPF_F_MARK_ENFORCE | BPF_F_PSEUDO_HDR | BPF_F_HDR_FIELD_MASK
                 | BPF_F_IPV6):
        return _neg(EINVAL)
    where = _csum_field(rt, offset, "l4_csum_replace")
    if isinstance(where, int):
        return where
    frame, at = where
    field = int.from_bytes(frame[at:at + 2], "little")
    mmzero = bool(flags & BPF_F_MARK_MANGLED_0)
    if mmzero and not flags & BPF_F_MARK_ENFORCE and field == 0:
        return 0
    size = flags & BPF_F_HDR_FIELD_MASK
    if size == 0:
        if old:
            return _neg(EINVAL)
        field = csum_replace_by_diff(field, new & 0xFFFFFFFF)
    elif size in (2, 4):
        mask = 0xFFFF if size == 2 else 0xFFFFFFFF
        field = csum_replace4(field, old & mask, new & mask)
    else:
        return _neg(EINVAL)
    if mmzero and field == 0:
        field = CSUM_MANGLED_0
    frame[at:at + 2] = field.to_bytes(2, "little")
    return 0


def csum_diff(rt: RunState, src: int, src_size: int, dst: int, dst_size: int, seed: int) -> int:
    """bpf_csum_diff: the checksum difference between the words at `src` and at `dst`, plus `seed`,
    folded to 16 bits as Linux >= 6.13 does on every architecture (any sizes up to 512 bytes each; a
    trailing partial word counts as if zero-padded)."""
    src_size &= 0xFFFFFFFF
    dst_size &= 0xFFFFFFFF
    seed &= 0xFFFFFFFF
    if src_size > CSUM_DIFF_MAX or dst_size > CSUM_DIFF_MAX:
        return _neg(EINVAL)
    old = rt.mem.read_bytes(src, src_size) if src_size else b""
    new = rt.mem.read_bytes(dst, dst_size) if dst_size else b""
    if old and new:
        return csum_from32to16(csum_sub(csum_partial(new, seed), csum_partial(old, 0)))
    if new:
        return csum_from32to16(csum_partial(new, seed))
    if old:
        return csum_from32to16(~csum_partial(old, ~seed & 0xFFFFFFFF) & 0xFFFFFFFF)
    return seed


# -- spin locks ---------------------------------------------------------------------------------------
def _lock_word(rt: RunState, lock: int, what: str) -> int:
    region = rt.mem.region_of(lock)
    if region is None or region.kind is not RegionKind.MAP_VALUE:
        raise VmHelperError(f"bpf_{what}: {lock:#x} is not a struct bpf_spin_lock in a map value")
    return rt.mem.load(lock, 4)


def spin_lock(rt: RunState, lock: int, *_: int) -> int:
    """bpf_spin_lock: the VM runs one program at a time, so taking a held lock can only be the
    program deadlocking itself (the kernel's verifier forbids that); it is an error here."""
    if _lock_word(rt, lock, "spin_lock"):
        raise VmHelperError(f"bpf_spin_lock: the lock at {lock:#x} is already held (deadlock)")
    rt.mem.store(lock, 4, 1)
    return 0


def spin_unlock(rt: RunState, lock: int, *_: int) -> int:
    if not _lock_word(rt, lock, "spin_unlock"):
        raise VmHelperError(f"bpf_spin_unlock: the lock at {lock:#x} is not held")
    rt.mem.store(lock, 4, 0)
    return 0


# -- stacks -------------------------------------------------------------------------------------------
def synthetic_stack(rt: RunState, user: bool) -> tuple[int, ...]:
    """The stack the VM reports: `Vm.stack_ips` / `Vm.user_stack_ips` when set (sequences of
    addresses, innermost first); else one frame, the program's own code, for the kernel stack and no
    frames for the user stack (a VM program runs on behalf of no user thread)."""
    attr = "user_stack_ips" if user else "stack_ips"
    ips = getattr(rt.host, attr, None)
    if ips is not None:
        return tuple(int(ip) for ip in ips)
    return () if user else (CODE_BASE,)


def get_stackid(rt: RunState, ctx: int, m: int, flags: int, _4: int, _5: int) -> int:
    """bpf_get_stackid: the id of the current stack in a stack trace map; -EFAULT when the stack has no
    frames (after skipping), as the kernel does."""
    vm_map = _map(rt, m)
    if not isinstance(vm_map, StackTraceMap):
        return _neg(EINVAL)
    ips = synthetic_stack(rt, bool(flags & BPF_F_USER_STACK))
    return vm_map.record(ips, flags) & U64


def get_stack(rt: RunState, ctx: int, buf: int, size: int, flags: int, _5: int) -> int:
    """bpf_get_stack: copy the current stack's addresses into `buf`; the bytes copied (the rest is
    zeroed). -EINVAL for unknown flags or a size that is not a multiple of 8, -EFAULT when there is no
    stack or the skip passes its end; `buf` is zeroed on error (kernel/bpf/stackmap.c)."""
    size &= 0xFFFFFFFF
    if flags & ~(BPF_F_SKIP_FIELD_MASK | BPF_F_USER_STACK | BPF_F_USER_BUILD_ID) or size % 8:
        rc = -EINVAL
    else:
        ips = synthetic_stack(rt, bool(flags & BPF_F_USER_STACK))
        skip = flags & BPF_F_SKIP_FIELD_MASK
        if flags & BPF_F_USER_BUILD_ID or not ips or len(ips) < skip:
            rc = -EFAULT  # the VM has no build ids to report
        else:
            chosen = ips[skip:skip + size // 8]
            data = b"".join((ip & U64).to_bytes(8, "little") for ip in chosen)
            rt.mem.write_bytes(buf, data.ljust(size, b"\0"))
            return len(data)
    if size:
        rt.mem.write_bytes(buf, bytes(size))
    return _neg(-rc)


def get_local_storage(rt: RunState, m: int, flags: int, *_: int) -> int:
    """bpf_get_local_storage: the run's cgroup storage (flags must be 0)."""
    vm_map = _map(rt, m)
    if not isinstance(vm_map, CgroupStorageMap):
        raise VmHelperError(f"bpf_get_local_storage needs a cgroup storage map, not {vm_map.name!r}")
    if flags:  # the kernel's verifier refuses the program: the helper never returns NULL
        raise VmHelperError("bpf_get_local_storage does not support non-zero flags")
    return vm_map.storage_for(rt)


# -- formatted output ---------------------------------------------------------------------------------
def _varargs(rt: RunState, data: int, data_len: int) -> list[int] | None:
    data_len &= 0xFFFFFFFF
    if data_len % 8 or data_len > 8 * MAX_BPF_FUNC_VARARGS:
        return None
    raw = rt.mem.read_bytes(data, data_len) if data_len else b""
    return [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw), 8)]


def snprintf(rt: RunState, out: int, out_size: int, fmt: int, data: int, data_len: int) -> int:
    """bpf_snprintf: format into `out` (always NUL-terminated); the length the whole text needs,
    NUL included."""
    args = _varargs(rt, data, data_len)
    if args is None:
        return _neg(EINVAL)
    text = format_printk(rt, rt.mem.read_cstr(fmt, 1 << 16).decode("latin-1"), args)
    encoded = text.encode("latin-1", "replace")
    out_size &= 0xFFFFFFFF
    if out_size:
        rt.mem.write_bytes(out, encoded[:out_size - 1] + b"\0")
    return len(encoded) + 1


def trace_vprintk(rt: RunState, fmt: int, fmt_size: int, data: int, data_len: int, _5: int) -> int:
    """bpf_trace_vprintk: bpf_trace_printk with its arguments in an array of u64."""
    args = _varargs(rt, data, data_len)
    if args is None:
        return _neg(EINVAL)
    raw = rt.mem.read_bytes(fmt, fmt_size & 0xFFFFFFFF)
    line = format_printk(rt, raw.split(b"\0", 1)[0].decode("latin-1"), args)
    if rt.host is not None:
        rt.host.trace_output.append(line)  # type: ignore[attr-defined]
    return len(line.encode("latin-1", "replace")) + 1
