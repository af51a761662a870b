"""The VM's address space: regions of bytes at large fake addresses, every access bounds-checked.

Each region lives in its own *slot* of 2**SLOT_SHIFT bytes: its base address is `slot << SLOT_SHIFT`,
so the region holding an address is found with one shift and one dict lookup, and the offset inside it
with one mask. Plain regions are kept in two dicts (`readable` and `writable`: slot -> buffer) that the
translated code indexes directly; regions with access hooks (a program context whose fields the kernel
rewrites on load) live in `special` and are reached through `load`/`store` only.

Addresses look like kernel pointers (`0xffff8880...` for data, `0xffffc900...` for stack frames) so a
pointer in a trace is recognisable and 0 is never mapped.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable

from bpfkit._records import field, record
from bpfkit.errors import VmMemoryError

SLOT_SHIFT = 28
"""Bits of address inside one slot: a region holds at most 256 MiB."""
SLOT_SIZE = 1 << SLOT_SHIFT
OFFSET_MASK = SLOT_SIZE - 1

DATA_SLOT0 = 0xFFFF888000000000 >> SLOT_SHIFT
"""First slot of data regions (the look of the kernel's direct map)."""
RESERVED_SLOTS = 16
"""Data slots DATA_SLOT0 .. DATA_SLOT0 + 15 are kept for per-run regions (context, packet)."""
STACK_SLOT0 = 0xFFFFC90000000000 >> SLOT_SHIFT
"""Slot of the stack frame at call depth 0; depth d uses STACK_SLOT0 + d."""
CODE_BASE = 0xFFFFFFFFA0000000
"""Fake address of instruction slot 0: a function pointer is CODE_BASE + 8 * slot."""
MAP_BASE = 0xFFFF888100000000
"""Fake address of the first `struct bpf_map`; map i is at MAP_BASE + 0x1000 * i (never mapped)."""

U64 = 0xFFFFFFFFFFFFFFFF

LOADERS: dict[int, Callable[..., tuple[int]]] = {
    1: struct.Struct("<B").unpack_from, 2: struct.Struct("<H").unpack_from,
    4: struct.Struct("<I").unpack_from, 8: struct.Struct("<Q").unpack_from,
}
SIGNED_LOADERS: dict[int, Callable[..., tuple[int]]] = {
    1: struct.Struct("<b").unpack_from, 2: struct.Struct("<h").unpack_from,
    4: struct.Struct("<i").unpack_from, 8: struct.Struct("<q").unpack_from,
}
STORERS: dict[int, Callable[..., None]] = {
    1: struct.Struct("<B").pack_into, 2: struct.Struct("<H").pack_into,
    4: struct.Struct("<I").pack_into, 8: struct.Struct("<Q").pack_into,
}
SIZE_MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: U64}

Buffer = bytearray | bytes | memoryview


class RegionKind(enum.Enum):
    """What a region holds; shown in errors and traces."""

    CTX = "ctx"
    STACK = "stack"
    PACKET = "packet"
    MAP_VALUE = "map value"
    RINGBUF = "ringbuf record"
    RODATA = "rodata"
    MEMORY = "memory"


LoadHook = Callable[[int, int], "int | None"]
"""(offset, size) -> value, or None to read the region's bytes as usual."""
StoreHook = Callable[[int, int, int], bool]
"""(offset, size, value) -> True if handled, False to write the region's bytes as usual."""


@record(frozen=False, eq=False)
class Region:
    """A run of bytes at `base`; `buf` may be a bytearray, bytes (read-only) or a memoryview."""

    base: int
    buf: Buffer
    writable: bool
    kind: RegionKind
    name: str = ""
    load_hook: LoadHook | None = None
    store_hook: StoreHook | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.buf)

    @property
    def end(self) -> int:
        return self.base + len(self.buf)

    def __repr__(self) -> str:
        label = f"{self.kind.value} {self.name}".strip()
        return f"<{label} {self.base:#x}..{self.end:#x}{'' if self.writable else ' ro'}>"


def _describe_fault(addr: int, size: int, write: bool, region: Region | None) -> str:
    what = "write" if write else "read"
    if addr == 0:
        return f"{what} of {size} bytes through a NULL pointer"
    if region is None:
        return f"{what} of {size} bytes at {addr:#x}: no memory is mapped there"
    off = addr - region.base
    if write and not region.writable:
        return f"{what} of {size} bytes at {addr:#x}: the {region.kind.value} region is read-only"
    return (f"{what} of {size} bytes at {addr:#x} is out of bounds of the {region.kind.value} region "
            f"{region.name + ' ' if region.name else ''}({region.size} bytes at {region.base:#x}, "
            f"offset {off})")


class AddressSpace:
    """The regions visible to one run of a program."""

    def __init__(self) -> None:
        self.regions: dict[int, Region] = {}
        self.readable: dict[int, Buffer] = {}
        self.writable: dict[int, Buffer] = {}
        self.special: dict[int, Region] = {}
        self._next_slot = DATA_SLOT0 + RESERVED_SLOTS
        self._free: list[int] = []
        self.version = 0
        """Bumped by every change to the mapping (map, unmap, rebind): the JIT resyncs on a change."""

    # -- mapping ----------------------------------------------------------------------------------
    def map(self, buf: Buffer, kind: RegionKind, *, writable: bool = True, name: str = "",
            load_hook: LoadHook | None = None, store_hook: StoreHook | None = None) -> Region:
        """Map `buf` at the next free data slot and return its region."""
        if self._free:
            slot = self._free.pop()
        else:
            slot = self._next_slot
            self._next_slot += 1
        return self.map_at(slot, buf, kind, writable=writable, name=name, load_hook=load_hook,
                           store_hook=store_hook)

    def map_at(self, slot: int, buf: Buffer, kind: RegionKind, *, writable: bool = True, name: str = "",
               load_hook: LoadHook | None = None, store_hook: StoreHook | None = None) -> Region:
        """Map `buf` at `slot`, replacing whatever was there."""
        if len(buf) > SLOT_SIZE:
            raise VmMemoryError(f"region {name or kind.value} of {len(buf)} bytes exceeds {SLOT_SIZE}")
        if writable and isinstance(buf, bytes):
            raise VmMemoryError(f"region {name or kind.value} is writable but backed by bytes")
        self.unmap_slot(slot)
        region = Region(slot << SLOT_SHIFT, buf, writable, kind, name, load_hook, store_hook)
        self.version += 1
        self.regions[slot] = region
        if load_hook is not None or store_hook is not None:
            self.special[slot] = region
        else:
            self.readable[slot] = buf
            if writable:
                self.writable[slot] = buf
        return region

    def unmap(self, region: Region) -> None:
        """Remove a region made by `map`; its slot is reused by a later `map`."""
        slot = region.base >> SLOT_SHIFT
        if self.regions.get(slot) is region:
            self.unmap_slot(slot)
            if slot >= DATA_SLOT0 + RESERVED_SLOTS and slot < STACK_SLOT0:
                self._free.append(slot)

    def unmap_slot(self, slot: int) -> None:
        if self.regions.pop(slot, None) is not None:
            self.version += 1
        self.readable.pop(slot, None)
        self.writable.pop(slot, None)
        self.special.pop(slot, None)

    def rebind(self, region: Region, buf: Buffer) -> None:
        """Point `region` at a new buffer (a packet that grew or shrank); the base stays."""
        slot = region.base >> SLOT_SHIFT
        region.buf = buf
        self.version += 1
        if slot in self.readable:
            self.readable[slot] = buf
        if slot in self.writable:
            self.writable[slot] = buf

    def region_of(self, addr: int) -> Region | None:
        """The region whose slot holds `addr` (the address may still be past its end)."""
        return self.regions.get((addr & U64) >> SLOT_SHIFT)

    # -- access -----------------------------------------------------------------------------------
    def _locate(self, addr: int, size: int, write: bool) -> tuple[Region, int]:
        region = self.regions.get(addr >> SLOT_SHIFT)
        off = addr & OFFSET_MASK
        if region is None or off + size > len(region.buf) or (write and not region.writable):
            raise VmMemoryError(_describe_fault(addr, size, write, region))
        return region, off

    def load(self, addr: int, size: int, signed: bool = False) -> int:
        """Read `size` (1, 2, 4, 8) little-endian bytes at `addr` as an unsigned 64-bit value."""
        region, off = self._locate(addr, size, False)
        if region.load_hook is not None:
            value = region.load_hook(off, size)
            if value is not None:
                if signed:
                    value = _sign_extend(value, size)
                return value & U64
        if signed:
            return SIGNED_LOADERS[size](region.buf, off)[0] & U64
        return LOADERS[size](region.buf, off)[0]

    def store(self, addr: int, size: int, value: int) -> None:
        """Write the low `size` bytes of `value` little-endian at `addr`."""
        region, off = self._locate(addr, size, True)
        value &= SIZE_MASK[size]
        if region.store_hook is not None and region.store_hook(off, size, value):
            return
        STORERS[size](region.buf, off, value)

    def read_bytes(self, addr: int, size: int) -> bytes:
        """Copy `size` bytes at `addr` (for helpers); the whole range must lie in one region."""
        if size < 0:
            raise VmMemoryError(f"negative size {size} reading {addr:#x}")
        if size == 0:
            return b""
        region, off = self._locate(addr, size, False)
        return bytes(region.buf[off:off + size])

    def write_bytes(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        """Write `data` at `addr` (for helpers); the whole range must lie in one writable region."""
        if not data:
            return
        region, off = self._locate(addr, len(data), True)
        region.buf[off:off + len(data)] = data  # type: ignore[index]

    def view(self, addr: int, size: int, write: bool = False) -> memoryview:
        """A memoryview of `size` bytes at `addr`, checked like an access."""
        region, off = self._locate(addr, size, write)
        return memoryview(region.buf)[off:off + size]

    def read_cstr(self, addr: int, limit: int) -> bytes:
        """Bytes at `addr` up to (not including) a NUL, at most `limit` bytes, within one region."""
        region, off = self._locate(addr, 1, False)
        end = min(len(region.buf), off + limit)
        chunk = bytes(region.buf[off:end])
        nul = chunk.find(b"\0")
        return chunk if nul < 0 else chunk[:nul]

    def fault(self, addr: int, size: int, write: bool) -> VmMemoryError:
        """The error for a failed access, as the fast engine reports it."""
        return VmMemoryError(_describe_fault(addr, size, write, self.region_of(addr)))


def _sign_extend(value: int, size: int) -> int:
    bits = size * 8
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value
