"""Real host memory behind the VM's regions, and the region table native code checks accesses against.

The VM gives every region a fake base address (`bpfkit.vm.memory`); native code works with the real
address of the region's buffer instead, so a checked access is a compare and a plain `mov`. Buffers are
pinned through ctypes views (`from_buffer`), which also stop a bytearray from being resized while native
code may hold its address; read-only buffers (bytes) are copied once into a private buffer.

Python code (helpers, maps, contexts) keeps using fake addresses. Values cross the boundary through
`to_fake` (native -> Python: helper arguments) and `to_real` (Python -> native: helper results, callback
arguments, context pointer fields); a value that is not inside a region is left alone.

Lifetime: a view that stops being used (its region unmapped or rebound) is retired, not freed, until no
run of this VM is active, because an inline cache of native code may still hold its address. Native code
clears its caches whenever `epoch` moves (`JitProgram.refresh`).
"""

from __future__ import annotations

import bisect
import ctypes
import struct
from collections.abc import Callable

from bpfkit._records import record
from bpfkit.errors import VmError
from bpfkit.uapi.insn import MAX_BPF_STACK, MAX_CALL_FRAMES
from bpfkit.vm.context import SKB_FIELDS, XDP_DATA, XDP_DATA_END, XDP_DATA_META, SkbContext, XdpContext
from bpfkit.vm.jit.layout import FIELD_ENTRY, REGION_ENTRY, RegionFlag, RunBlock
from bpfkit.vm.memory import SLOT_SIZE, STACK_SLOT0, AddressSpace, Region
from bpfkit.vm.runtime import U64, Packet

_ENTRY = struct.Struct("<QQQQ")
_FIELD = struct.Struct("<IIQ")

_XDP_POINTERS = (XDP_DATA, XDP_DATA_END, XDP_DATA_META)
_SKB_WORDS = tuple(SKB_FIELDS[name][0] for name in ("data", "data_end", "data_meta", "len"))


@record(frozen=False)
class HostRegion:
    """A region's buffer as host memory: `size` bytes at `addr`, kept alive by `keep`."""

    region: Region
    buf: object
    keep: object
    addr: int
    size: int


def _pin(buf: object) -> tuple[object, int]:
    """A ctypes object over `buf` (or over a copy of it, if it is read-only) and its address."""
    size = len(buf)  # type: ignore[arg-type]
    if size == 0:
        empty = (ctypes.c_char * 1)()  # a distinct address for an empty region; nothing may touch it
        return empty, ctypes.addressof(empty)
    try:
        view = (ctypes.c_char * size).from_buffer(buf)  # type: ignore[arg-type]
    except TypeError:  # bytes or a read-only view: the region is read-only, a copy never goes stale
        view = (ctypes.c_char * size).from_buffer_copy(buf)  # type: ignore[arg-type]
    return view, ctypes.addressof(view)


class HostMemory:
    """The host side of one `AddressSpace` (one VM)."""

    def __init__(self, mem: AddressSpace) -> None:
        self.mem = mem
        self.version = -1
        self.epoch = 0
        self.active = 0
        """Runs in progress; retired buffers are released when it drops to 0."""
        self._live: dict[int, HostRegion] = {}
        self._retired: list[object] = []
        self._starts: list[int] = []
        self.lo = 1
        self.hi = 0
        """Host addresses lo..hi (inclusive) cover every region: `fake_args` leaves values outside alone."""
        self._sorted: list[HostRegion] = []
        self._table: object = None
        self._fields: list[object] = []
        self.resolvers: list[Callable[[int], int | None]] = []
        """Give a host address outside every region a region (a ring buffer record native code
        reserved) and return its fake address, or None."""

    # -- mapping ----------------------------------------------------------------------------------
    def host(self, region: Region) -> HostRegion:
        """The host memory of `region` (pinned on first use, re-pinned if its buffer changed)."""
        hr = self._live.get(id(region))
        if hr is not None and hr.region is region and hr.buf is region.buf:
            return hr
        if hr is not None:
            self._retired.append(hr.keep)
        keep, addr = _pin(region.buf)
        hr = HostRegion(region, region.buf, keep, addr, len(region.buf))
        self._live[id(region)] = hr
        return hr

    def bump(self) -> None:
        """Invalidate every inline cache (they are cleared before native code runs again)."""
        self.epoch += 1

    def release(self) -> None:
        """Free retired buffers; only when no run is active."""
        if self.active == 0:
            self._retired.clear()

    # -- the table --------------------------------------------------------------------------------
    def sync(self, block: RunBlock, packet: Packet | None, *, force: bool = False) -> bool:
        """Bring `block` (region table, frame tops, packet) up to date with the address space.
        Returns whether anything was rebuilt."""
        mem = self.mem
        if not force and mem.version == self.version:
            return False
        live: dict[int, HostRegion] = {}
        for region in mem.regions.values():
            hr = self.host(region)
            live[id(region)] = hr
        for key, hr in self._live.items():
            if key not in live:
                self._retired.append(hr.keep)
        self._live = live
        self._sorted = sorted(live.values(), key=lambda h: h.addr)  # empty regions too: to_fake
        self._starts = [h.addr for h in self._sorted]
        self.lo = self._starts[0] if self._starts else 1
        self.hi = max((h.addr + h.size for h in self._sorted), default=0)
        # Hooked regions (contexts) first: their pointer-field loads go through the scan every time.
        specials = [h for h in live.values() if _special(h.region)]
        plain = [h for h in live.values() if not _special(h.region)]
        entries = bytearray()
        self._retired.append(self._table)
        self._retired.extend(self._fields)
        self._fields = []
        for hr in specials + plain:
            region = hr.region
            flags = RegionFlag.WRITABLE if region.writable else RegionFlag(0)
            fields_addr = 0
            if _special(region):
                flags |= RegionFlag.SPECIAL
                fields = self._native_fields(region)
                if fields is not None:
                    flags |= RegionFlag.PLAIN_LOADS
                    raw = b"".join(_FIELD.pack(off, size, value) for off, size, value in fields)
                    buf = ctypes.create_string_buffer(raw + bytes(FIELD_ENTRY), len(raw) + FIELD_ENTRY)
                    self._fields.append(buf)
                    fields_addr = ctypes.addressof(buf)
            if hr.size == 0:
                continue
            entries += _ENTRY.pack(hr.addr, hr.size, int(flags), fields_addr)
        table = ctypes.create_string_buffer(bytes(entries), max(len(entries), REGION_ENTRY))
        self._table = table
        block.table = ctypes.addressof(table)
        block.table_len = len(entries) // REGION_ENTRY
        self._sync_frames(block)
        self._sync_packet(block, packet)
        self.version = mem.version
        self.bump()
        return True

    def _sync_frames(self, block: RunBlock) -> None:
        for depth in range(MAX_CALL_FRAMES):
            region = self.mem.regions.get(STACK_SLOT0 + depth)
            # Native code writes [r10 - 512, r10) without a check: insist on a full writable frame.
            if region is None or not region.writable or len(region.buf) < MAX_BPF_STACK \
                    or _special(region) or isinstance(region.buf, bytes):
                raise VmError(f"stack frame {depth} of the VM is missing or not a writable "
                              f"{MAX_BPF_STACK}-byte region")
            hr = self.host(region)
            block.frame_tops[depth] = hr.addr + MAX_BPF_STACK

    def _sync_packet(self, block: RunBlock, packet: Packet | None) -> None:
        block.pkt_present = 0
        block.pkt_data = 0
        block.pkt_len = 0
        if packet is None:
            return
        region = packet.region
        if not isinstance(region, Region) or self._live.get(id(region)) is None:
            raise VmError("the run's packet is not a mapped region")
        hr = self._live[id(region)]
        start = packet.data - packet.meta
        length = packet.end - packet.data
        if start < 0 or length < 0 or start + length > hr.size:
            raise VmError("the run's packet window lies outside its region")
        block.pkt_present = 1
        block.pkt_data = hr.addr + start
        block.pkt_len = length

    def _native_fields(self, region: Region) -> list[tuple[int, int, int]] | None:
        """The (offset, size, value) loads native code may answer for a hooked context region, every
        other load being plain bytes; None when the hooks are not known to behave that way."""
        owner = getattr(region.load_hook, "__self__", None)
        if isinstance(owner, XdpContext):
            offsets: tuple[int, ...] = _XDP_POINTERS
        elif isinstance(owner, SkbContext):
            offsets = _SKB_WORDS
        else:
            return None
        assert region.load_hook is not None
        out = []
        for off in offsets:
            value = region.load_hook(off, 4)
            if value is None:
                return None
            out.append((off, 4, self.to_real(value)))
        return out

    # -- translation ------------------------------------------------------------------------------
    def to_real(self, value: int) -> int:
        """A fake address inside (or one past the end of) a region -> its host address."""
        value &= U64
        region = self.mem.region_of(value)
        if region is None:
            return value
        off = value - region.base
        if not 0 <= off <= len(region.buf):
            return value
        return self.host(region).addr + off

    def to_fake(self, value: int) -> int:
        """A host address inside (or one past the end of) a region -> its fake address."""
        value &= U64
        i = bisect.bisect_right(self._starts, value) - 1
        if i >= 0:
            hr = self._sorted[i]
            off = value - hr.addr
            if off <= hr.size:
                return hr.region.base + off
        return self._resolve(value, value)

    def origin_fake(self, addr: int, origin: int) -> int | None:
        """The interpreter's address of a host access at `addr` that is `origin` bytes from the start
        of the value its base pointer came from: that value's fake base plus `origin` (`origin` alone
        for a NULL base). None when no region starts at `addr - origin`."""
        start = (addr - origin) & U64
        if start == 0:
            return origin & U64
        i = bisect.bisect_right(self._starts, start) - 1
        if i >= 0 and self._sorted[i].addr == start:
            return (self._sorted[i].region.base + origin) & U64
        return None

    def fake_args(self, args: tuple[int, ...]) -> tuple[int, ...]:
        """`to_fake` of a helper call's five u64 arguments, done quickly for values outside every
        region (scalars, fake map pointers) when no resolver may claim them."""
        f = self.to_fake
        r1, r2, r3, r4, r5 = args
        if self.resolvers:
            return f(r1), f(r2), f(r3), f(r4), f(r5)
        lo, hi = self.lo, self.hi
        return (f(r1) if lo <= r1 <= hi else r1, f(r2) if lo <= r2 <= hi else r2,
                f(r3) if lo <= r3 <= hi else r3, f(r4) if lo <= r4 <= hi else r4,
                f(r5) if lo <= r5 <= hi else r5)

    def _resolve(self, value: int, default: int) -> int:
        for resolve in self.resolvers:
            fake = resolve(value)
            if fake is not None:
                return fake
        return default

    def describe(self, value: int) -> int:
        """The fake address a faulting host address most plausibly came from: relative to the region
        whose bounds it is closest to (so errors read like the interpreter's)."""
        value &= U64
        fake = self.to_fake(value)
        if fake != value:
            return fake
        if not self._sorted:
            return value
        i = bisect.bisect_right(self._starts, value)
        best: tuple[int, int] | None = None
        if i > 0:
            below = self._sorted[i - 1]
            gap = value - (below.addr + below.size)
            best = (max(gap, 0), below.region.base + (value - below.addr))
        if i < len(self._sorted):
            above = self._sorted[i]
            gap = above.addr - value
            if best is None or gap < best[0]:
                best = (gap, above.region.base - gap)
        if best is None or best[0] >= SLOT_SIZE // 2:
            return value
        return best[1] & U64


def _special(region: Region) -> bool:
    return region.load_hook is not None or region.store_hook is not None
