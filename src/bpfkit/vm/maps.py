"""Maps of the VM with the kernel's semantics: hash, array, their per-CPU and LRU forms, ring buffer,
perf event array, program array, queue and stack (`bpfkit.vm.maps_extra` has LPM trie, maps of maps,
stack trace and bloom filter).

Each map has two faces. The user-space face (`lookup`, `update`, `delete`, `keys`, `items`) mirrors
the bpf(2) map commands and takes/returns bytes. The program face (`bpf_lookup`, `bpf_update`, ...)
is what the helpers call: it returns addresses of value regions in the VM's address space and negative
errnos, as the kernel's helpers do (kernel/bpf/hashtab.c, arraymap.c, queue_stack_maps.c, ringbuf.c).
Value memory is shared between the faces: a value a program wrote is what `lookup` returns.
"""

from __future__ import annotations

import errno
import mmap
import struct
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from bpfkit.errors import VmError
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType, RingbufHeader, RingbufQuery, UpdateFlags
from bpfkit.uapi.limits import PCPU_MIN_UNIT_SIZE
from bpfkit.vm.memory import MAP_BASE, AddressSpace, Region, RegionKind

if TYPE_CHECKING:
    from bpfkit.vm.runtime import RunState

BPF_F_CURRENT_CPU = 0xFFFFFFFF
"""`BPF_F_CURRENT_CPU` / `BPF_F_INDEX_MASK` of bpf_perf_event_output's flags."""

ENOENT, EEXIST, E2BIG, EINVAL, EAGAIN, EBUSY = (errno.ENOENT, errno.EEXIST, errno.E2BIG, errno.EINVAL,
                                                 errno.EAGAIN, errno.EBUSY)

ARRAY_VALUE_SIZE_MAX = 0x7FFFFFFF
"""Largest value_size of an array map: INT_MAX, the kernel's guard against overflow when rounding it up."""

_BY_FD: weakref.WeakKeyDictionary[AddressSpace, weakref.WeakValueDictionary[int, VmMap]] = \
    weakref.WeakKeyDictionary()
"""Maps by fd per address space; weak both ways, since each map holds its address space."""


def map_by_fd(mem: AddressSpace, fd: int) -> VmMap | None:
    """The map with fake descriptor `fd` in the VM owning `mem` (maps of maps take inner maps by fd)."""
    by_fd = _BY_FD.get(mem)
    return None if by_fd is None else by_fd.get(fd)


def maps_in(mem: AddressSpace) -> list[VmMap]:
    """The live maps of the VM owning `mem`, in fd order."""
    by_fd = _BY_FD.get(mem)
    return [] if by_fd is None else [m for _, m in sorted(by_fd.items())]


def map_by_address(mem: AddressSpace, address: int) -> VmMap | None:
    """The map whose `struct bpf_map` address (what LD_IMM64 of a map loads) is `address` in the VM
    owning `mem`: map i has fd 1000 + i and address MAP_BASE + 0x1000 * i (`VmMap.__init__`)."""
    offset = address - MAP_BASE
    if offset < 0 or offset % 0x1000:
        return None
    vm_map = map_by_fd(mem, 1000 + offset // 0x1000)
    return vm_map if vm_map is not None and vm_map.address == address else None


def _check_flags(flags: int) -> int:
    if flags & ~int(UpdateFlags.NOEXIST | UpdateFlags.EXIST | UpdateFlags.F_LOCK):
        return -EINVAL
    if (flags & 3) == 3:
        return -EINVAL
    return 0


class MapObserver(Protocol):
    """Told of every change to a map's value regions and keys: the JIT keeps a native index of a map
    this way (`bpfkit.vm.jit.mapindex`), whichever face (user or program) made the change."""

    def region_mapped(self, ident: Any, region: Region) -> None: ...

    def region_dropped(self, ident: Any) -> None: ...

    def key_inserted(self, key: bytes, values: list[bytearray]) -> None: ...

    def key_deleted(self, key: bytes) -> None: ...


class VmMap:
    """A map living in a `Vm`. `fd` is a fake descriptor for LD_IMM64 (BPF_PSEUDO_MAP_FD)."""

    per_cpu = False

    def __init__(self, spec: MapSpec, mem: AddressSpace, index: int, *, ncpus: int = 1) -> None:
        self.spec = spec
        self.mem = mem
        self.index = index
        self.fd = 1000 + index
        self.address = MAP_BASE + 0x1000 * index
        self.ncpus = ncpus
        self._regions: dict[Any, Region] = {}
        self.frozen = False
        self.observer: MapObserver | None = None
        self._validate()
        _BY_FD.setdefault(mem, weakref.WeakValueDictionary())[self.fd] = self

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def key_size(self) -> int:
        return self.spec.key_size

    @property
    def value_size(self) -> int:
        return self.spec.value_size

    @property
    def max_entries(self) -> int:
        return self.spec.max_entries

    def _validate(self) -> None:
        if self.spec.max_entries <= 0 and self.spec.type is not MapType.PERF_EVENT_ARRAY:
            raise VmError(f"map {self.name!r}: max_entries {self.spec.max_entries}: max_entries must be "
                          "positive (the kernel refuses 0 with EINVAL)")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.spec.type.name}>"

    # -- value regions ------------------------------------------------------------------------------
    def _region(self, ident: Any, buf: bytearray | memoryview) -> int:
        region = self._regions.get(ident)
        if region is None:
            region = self._regions[ident] = self.mem.map(buf, RegionKind.MAP_VALUE, name=self.name,
                                                         writable=not self.readonly_prog)
            if self.observer is not None:
                self.observer.region_mapped(ident, region)
        return region.base

    def _drop_region(self, ident: Any) -> None:
        region = self._regions.pop(ident, None)
        if region is not None:
            self.mem.unmap(region)
            if self.observer is not None:
                self.observer.region_dropped(ident)

    @property
    def readonly_prog(self) -> bool:
        return bool(self.spec.flags & 0x80) or (self.frozen and self.spec.name.endswith(".rodata"))

    def value_address(self, offset: int = 0) -> int:
        """The address of byte `offset` of element 0 (BPF_PSEUDO_MAP_VALUE, global data)."""
        raise VmError(f"map {self.name!r} ({self.spec.type.name}) has no direct value access")

    # -- user-space face ----------------------------------------------------------------------------
    def lookup(self, key: bytes) -> Any:
        raise VmError(f"lookup is not supported on {self.spec.type.name} maps")

    def update(self, key: bytes, value: Any, flags: int = 0) -> None:
        self._raise(self.bpf_update_bytes(bytes(key), value, flags, user=True), "update")

    def delete(self, key: bytes) -> None:
        self._raise(self.bpf_delete(bytes(key)), "delete")

    def keys(self) -> Iterator[bytes]:
        return iter(())

    def items(self) -> Iterator[tuple[bytes, Any]]:
        for key in list(self.keys()):
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def __len__(self) -> int:
        return sum(1 for _ in self.keys())

    def _raise(self, rc: int, what: str) -> None:
        if rc < 0:
            raise VmError(f"map {self.name!r}: {what} failed: {errno.errorcode.get(-rc, -rc)}")

    # -- program face -------------------------------------------------------------------------------
    def bpf_lookup(self, rt: RunState, key: bytes) -> int:
        return 0

    def bpf_update_bytes(self, key: bytes, value: Any, flags: int, *, user: bool = False,
                         cpu: int = 0) -> int:
        return -EINVAL

    def bpf_delete(self, key: bytes) -> int:
        return -EINVAL

    def bpf_entries(self, rt: RunState) -> list[tuple[bytes, int]]:
        """(key, value address) of every element, for bpf_for_each_map_elem."""
        return []


class ArrayMap(VmMap):
    """BPF_MAP_TYPE_ARRAY (and PERCPU_ARRAY): preallocated, zeroed, indexed by a u32 key."""

    def _validate(self) -> None:
        super()._validate()
        if self.spec.key_size != 4:
            raise VmError(f"map {self.name!r}: key_size {self.spec.key_size}: array maps need key_size 4 "
                          "(the kernel refuses others with EINVAL)")
        vs = self.spec.value_size
        if vs <= 0:
            raise VmError(f"map {self.name!r}: value_size {vs}: array maps need a positive value_size "
                          "(the kernel refuses 0 with EINVAL)")
        if self.per_cpu and (vs + 7) // 8 * 8 > PCPU_MIN_UNIT_SIZE:
            raise VmError(f"map {self.name!r}: value_size {vs} is too large for a per-CPU array: the kernel "
                          f"refuses a value rounded up to 8 bytes above {PCPU_MIN_UNIT_SIZE} with E2BIG")
        if vs > ARRAY_VALUE_SIZE_MAX:
            raise VmError(f"map {self.name!r}: value_size {vs} is too large for an array: the kernel "
                          f"refuses more than {ARRAY_VALUE_SIZE_MAX} (INT_MAX) with E2BIG")
        copies = self.ncpus if self.per_cpu else 1
        self.storage = [bytearray(self.spec.value_size * self.spec.max_entries) for _ in range(copies)]
        for key, value in self.spec.contents:
            self.update(key, value)

    def _index(self, key: bytes) -> int | None:
        index = int.from_bytes(key[:4], "little")
        return index if index < self.spec.max_entries else None

    def _view(self, cpu: int, index: int) -> memoryview:
        vs = self.spec.value_size
        return memoryview(self.storage[cpu])[index * vs:(index + 1) * vs]

    def value_address(self, offset: int = 0) -> int:
        return self._region((0, 0), self._view(0, 0)) + offset

    def lookup(self, key: bytes) -> Any:
        index = self._index(bytes(key))
        if index is None:
            return None
        if self.per_cpu:
            return [bytes(self._view(c, index)) for c in range(self.ncpus)]
        return bytes(self._view(0, index))

    def keys(self) -> Iterator[bytes]:
        return (i.to_bytes(4, "little") for i in range(self.spec.max_entries))

    def bpf_lookup(self, rt: RunState, key: bytes) -> int:
        index = self._index(key)
        if index is None:
            return 0
        cpu = rt.cpu if self.per_cpu else 0
        return self._region((cpu, index), self._view(cpu, index))

    def bpf_update_bytes(self, key: bytes, value: Any, flags: int, *, user: bool = False,
                         cpu: int = 0) -> int:
        if rc := _check_flags(flags):
            return rc
        index = self._index(key)
        if index is None:
            return -E2BIG
        if flags & UpdateFlags.NOEXIST:
            return -EEXIST
        vs = self.spec.value_size
        if self.per_cpu and user:
            values = _per_cpu_values(value, vs, self.ncpus)
            for c, v in enumerate(values):
                self._view(c, index)[:] = v
            return 0
        self._view(cpu if self.per_cpu else 0, index)[:] = bytes(value)[:vs].ljust(vs, b"\0")
        return 0

    def bpf_delete(self, key: bytes) -> int:
        return -EINVAL

    def bpf_entries(self, rt: RunState) -> list[tuple[bytes, int]]:
        return [(k, self.bpf_lookup(rt, k)) for k in self.keys()]


class PercpuArrayMap(ArrayMap):
    per_cpu = True


def _per_cpu_values(value: Any, value_size: int, ncpus: int) -> list[bytes]:
    if isinstance(value, (list, tuple)):
        values = [bytes(v) for v in value]
    else:
        raw = bytes(value)
        values = ([raw] * ncpus if len(raw) == value_size else
                  [raw[i * value_size:(i + 1) * value_size] for i in range(ncpus)])
    if len(values) != ncpus or any(len(v) != value_size for v in values):
        raise VmError(f"per-CPU value must be {ncpus} values of {value_size} bytes")
    return values


class HashMap(VmMap):
    """BPF_MAP_TYPE_HASH, PERCPU_HASH, LRU_HASH and LRU_PERCPU_HASH."""

    lru = False

    def _validate(self) -> None:
        super()._validate()
        if self.spec.key_size <= 0 or self.spec.value_size <= 0:
            raise VmError(f"map {self.name!r}: hash maps need positive key and value sizes")
        self.table: OrderedDict[bytes, list[bytearray]] = OrderedDict()
        for key, value in self.spec.contents:
            self.update(key, value)

    def _copies(self) -> int:
        return self.ncpus if self.per_cpu else 1

    def lookup(self, key: bytes) -> Any:
        values = self.table.get(bytes(key))
        if values is None:
            return None
        if self.per_cpu:
            return [bytes(v) for v in values]
        return bytes(values[0])

    def keys(self) -> Iterator[bytes]:
        return iter(list(self.table))

    def __len__(self) -> int:
        return len(self.table)

    def bpf_lookup(self, rt: RunState, key: bytes) -> int:
        values = self.table.get(key)
        if values is None:
            return 0
        if self.lru:
            self.table.move_to_end(key)
        cpu = rt.cpu if self.per_cpu else 0
        return self._region((key, cpu), values[cpu])

    def bpf_update_bytes(self, key: bytes, value: Any, flags: int, *, user: bool = False,
                         cpu: int = 0) -> int:
        if rc := _check_flags(flags):
            return rc
        key = bytes(key[:self.spec.key_size])
        vs = self.spec.value_size
        values = self.table.get(key)
        if values is not None and flags & UpdateFlags.NOEXIST:
            return -EEXIST
        if values is None:
            if flags & UpdateFlags.EXIST:
                return -ENOENT
            if len(self.table) >= self.spec.max_entries:
                if not self.lru:
                    return -E2BIG
                old, _ = self.table.popitem(last=False)
                self._forget(old)
            values = [bytearray(vs) for _ in range(self._copies())]
            self.table[key] = values
            if self.observer is not None:
                self.observer.key_inserted(key, values)
        elif self.lru:
            self.table.move_to_end(key)
        if self.per_cpu and user:
            for c, v in enumerate(_per_cpu_values(value, vs, self.ncpus)):
                values[c][:] = v
        else:
            values[cpu if self.per_cpu else 0][:] = bytes(value)[:vs].ljust(vs, b"\0")
        return 0

    def _forget(self, key: bytes) -> None:
        for cpu in range(self._copies()):
            self._drop_region((key, cpu))
        if self.observer is not None:
            self.observer.key_deleted(key)

    def bpf_delete(self, key: bytes) -> int:
        key = bytes(key[:self.spec.key_size])
        if self.table.pop(key, None) is None:
            return -ENOENT
        self._forget(key)
        return 0

    def bpf_entries(self, rt: RunState) -> list[tuple[bytes, int]]:
        return [(k, self.bpf_lookup(rt, k)) for k in list(self.table)]


class PercpuHashMap(HashMap):
    per_cpu = True


class LruHashMap(HashMap):
    lru = True


class LruPercpuHashMap(HashMap):
    lru = True
    per_cpu = True


class ProgArrayMap(VmMap):
    """BPF_MAP_TYPE_PROG_ARRAY: u32 index -> program, for bpf_tail_call."""

    def _validate(self) -> None:
        super()._validate()
        self.programs: dict[int, Any] = {}

    def set(self, index: int, program: Any) -> None:
        """Put `program` (a VmProgram) at `index`."""
        if not 0 <= index < self.spec.max_entries:
            raise VmError(f"map {self.name!r}: index {index} out of range")
        self.programs[index] = program

    def update(self, key: bytes, value: Any, flags: int = 0) -> None:
        self.set(int.from_bytes(bytes(key)[:4], "little"), value)

    def delete(self, key: bytes) -> None:
        if self.programs.pop(int.from_bytes(bytes(key)[:4], "little"), None) is None:
            self._raise(-ENOENT, "delete")

    def lookup(self, key: bytes) -> Any:
        return self.programs.get(int.from_bytes(bytes(key)[:4], "little"))

    def keys(self) -> Iterator[bytes]:
        return (i.to_bytes(4, "little") for i in sorted(self.programs))


class PerfEventArrayMap(VmMap):
    """BPF_MAP_TYPE_PERF_EVENT_ARRAY: records output by bpf_perf_event_output, kept per CPU index."""

    def _validate(self) -> None:
        if self.spec.max_entries <= 0:
            self.spec = MapSpec(self.spec.type, 4, 4, self.ncpus, self.spec.flags, self.spec.name)
        self.events: list[tuple[int, bytes]] = []

    def output(self, rt: RunState, flags: int, data: bytes) -> int:
        index = flags & 0xFFFFFFFF
        if flags & ~0xFFFFFFFF:
            return -EINVAL
        if index == BPF_F_CURRENT_CPU:
            index = rt.cpu
        if index >= self.spec.max_entries:
            return -E2BIG
        self.events.append((index, data))
        return 0

    def drain(self) -> list[tuple[int, bytes]]:
        """The records output so far as (cpu, bytes), oldest first; they are removed."""
        out, self.events = self.events, []
        return out


_POS = struct.Struct("<QQQ")
_HDR = struct.Struct("<II")
_BUSY, _DISCARD = int(RingbufHeader.BUSY_BIT), int(RingbufHeader.DISCARD_BIT)
RINGBUF_MAX_RECORD_SZ = 0xFFFFFFFF // 4
"""`RINGBUF_MAX_RECORD_SZ` (kernel/bpf/ringbuf.c): the largest size bpf_ringbuf_reserve considers."""
RINGBUF_HEAD = 64
"""Bytes before a VM ring's data in `RingbufMap.area`: consumer, producer, busy records (u64 each)."""
RINGBUF_REGION = 1 << 31
"""pg_off bit of a record that has a VM region (its commit goes through Python)."""


class RingbufMap(VmMap):
    """BPF_MAP_TYPE_RINGBUF in the kernel's layout (kernel/bpf/ringbuf.c), shared by Python and the JIT.

    `area` holds the consumer and producer positions (u64 each, growing forever) and the number of
    records reserved and not yet committed, then at RINGBUF_HEAD the data: records at their position
    modulo `max_entries`, each an 8-byte header (u32 length with the BUSY and DISCARD bits, u32 pg_off)
    then the data rounded up to 8 bytes. As in the kernel, pg_off locates the ring from a record: it is
    the header's offset in `area` in 8-byte units (bit 31 set when the record has a VM region). The
    kernel maps the data pages twice so a record that wraps is contiguous; here the data is twice the
    ring's size and a record starting near the end runs on into the second half (the producer is never
    a full ring ahead of the consumer, so live records never overlap). Reservation follows
    __bpf_ringbuf_reserve: NULL when the record would put the producer a full ring (or more) ahead of
    the consumer.

    A record reserved through Python is also a region of its own (bounds-checked like the VM's other
    memory). Native code (`bpfkit.vm.jit.native_ringbuf`) reserves and commits in the same memory
    without a region, for programs the verifier accepted; `region_for` gives such a record a region
    when it is handed to Python.
    """

    def _validate(self) -> None:
        size = self.spec.max_entries
        if size <= 0 or size & (size - 1) or size % 4096:
            raise VmError(f"map {self.name!r}: ring buffer size must be a power of 2 and a multiple "
                          f"of the page size, not {size}")
        # Anonymous memory: zero pages the OS provides as records reach them (rings can be large).
        self.area = mmap.mmap(-1, RINGBUF_HEAD + 2 * size)
        self.pos = memoryview(self.area)[:RINGBUF_HEAD]
        self.data = memoryview(self.area)[RINGBUF_HEAD:]
        self.mask = size - 1
        self.by_addr: dict[int, tuple[int, Region]] = {}
        """Region base -> (offset of the record's header in `data`, region) of records with a region."""
        self.discarded = 0
        """Records skipped by `drain` because the program discarded them."""

    def _positions(self) -> tuple[int, int, int]:
        cons, prod, busy = _POS.unpack_from(self.pos)
        return int(cons), int(prod), int(busy)

    @property
    def cons_pos(self) -> int:
        return self._positions()[0]

    @property
    def prod_pos(self) -> int:
        return self._positions()[1]

    @staticmethod
    def _footprint(size: int) -> int:
        return (size + RingbufHeader.HDR_SZ + 7) & ~7

    @staticmethod
    def _pg_off(off: int) -> int:
        return (RINGBUF_HEAD + off) >> 3

    def _reserve(self, size: int) -> int | None:
        """Reserve a record of `size` bytes (header BUSY); the offset of its header, or None."""
        if size > RINGBUF_MAX_RECORD_SZ:
            return None
        need = self._footprint(size)
        cons, prod, busy = self._positions()
        if need > self.spec.max_entries or prod + need - cons > self.mask:
            return None
        off = prod & self.mask
        _HDR.pack_into(self.data, off, size | _BUSY, self._pg_off(off))
        _POS.pack_into(self.pos, 0, cons, prod + need, busy + 1)
        return off

    def _map_record(self, off: int) -> int:
        length = _HDR.unpack_from(self.data, off)[0] & ~(_BUSY | _DISCARD)
        region = self.mem.map(self.data[off + 8:off + 8 + length], RegionKind.RINGBUF, name=self.name)
        length = _HDR.unpack_from(self.data, off)[0]
        _HDR.pack_into(self.data, off, length, self._pg_off(off) | RINGBUF_REGION)
        self.by_addr[region.base] = (off, region)
        return region.base

    def reserve(self, size: int) -> int:
        """Reserve `size` bytes; the record's address (a region of its own), or 0 when there is no room."""
        off = self._reserve(size)
        return 0 if off is None else self._map_record(off)

    def region_for(self, data_offset: int) -> int | None:
        """The address of a region for the busy record whose data starts at `data_offset` of `data`
        (mapped now if it has none); None when no busy record starts there."""
        off = data_offset - 8
        if not 0 <= off < len(self.data) - 8:
            return None
        length, pg_off = _HDR.unpack_from(self.data, off)
        if not length & _BUSY or not self._live(off):
            return None
        if pg_off & RINGBUF_REGION:
            for base, (at, _) in self.by_addr.items():
                if at == off:
                    return base
        return self._map_record(off)

    def _live(self, off: int) -> bool:
        """Whether a record header sits at `off` between the consumer and the producer."""
        pos, prod, _ = self._positions()
        while pos < prod:
            at = pos & self.mask
            if at == off:
                return True
            pos += self._footprint(_HDR.unpack_from(self.data, at)[0] & ~(_BUSY | _DISCARD))
        return False

    def _commit_at(self, off: int, discard: bool) -> None:
        length = _HDR.unpack_from(self.data, off)[0]
        if length & _BUSY:
            cons, prod, busy = self._positions()
            _POS.pack_into(self.pos, 0, cons, prod, busy - 1)
        size = length & ~(_BUSY | _DISCARD)
        _HDR.pack_into(self.data, off, size | (_DISCARD if discard else 0), self._pg_off(off))

    def commit(self, addr: int, discard: bool) -> bool:
        """Submit (or discard) the record at `addr`, a record region's address; False if it is not one."""
        found = self.by_addr.pop(addr, None)
        if found is None:
            return False
        off, region = found
        self._commit_at(off, discard)
        self.mem.unmap(region)
        return True

    def output(self, data: bytes) -> int:
        off = self._reserve(len(data))
        if off is None:
            return -EAGAIN
        self.data[off + 8:off + 8 + len(data)] = data
        self._commit_at(off, False)
        return 0

    def query(self, what: int) -> int:
        cons, prod, _ = self._positions()
        if what == RingbufQuery.AVAIL_DATA:
            return prod - cons
        if what == RingbufQuery.RING_SIZE:
            return self.spec.max_entries
        if what == RingbufQuery.CONS_POS:
            return cons
        if what == RingbufQuery.PROD_POS:
            return prod
        return 0

    def drain(self) -> list[bytes]:
        """Consume the committed records in order (stopping at one still reserved), as a user-space
        consumer of the kernel's ring does; discarded records are skipped and counted."""
        out: list[bytes] = []
        cons, prod, busy = self._positions()
        data = self.data
        while cons < prod:
            off = cons & self.mask
            length = _HDR.unpack_from(data, off)[0]
            if length & _BUSY:
                break
            size = length & ~_DISCARD
            if length & _DISCARD:
                self.discarded += 1
            else:
                out.append(bytes(data[off + 8:off + 8 + size]))
            cons += (size + 15) & ~7
        _POS.pack_into(self.pos, 0, cons, prod, busy)
        return out

    def release_all(self) -> None:
        """Discard reservations left open when a run ends (the kernel's verifier forbids that)."""
        for addr in list(self.by_addr):
            self.commit(addr, True)
        cons, prod, busy = self._positions()
        while busy and cons < prod:
            off = cons & self.mask
            length = _HDR.unpack_from(self.data, off)[0]
            if length & _BUSY:
                self._commit_at(off, True)
                busy -= 1
            cons += self._footprint(length & ~(_BUSY | _DISCARD))


class QueueStackMap(VmMap):
    """BPF_MAP_TYPE_QUEUE (FIFO) and STACK (LIFO): no keys, push/pop/peek of fixed-size values."""

    lifo = False

    def _validate(self) -> None:
        super()._validate()
        if self.spec.key_size != 0:
            raise VmError(f"map {self.name!r}: queue and stack maps have key_size 0")
        self.items_: deque[bytes] = deque()

    def push(self, value: bytes, flags: int = 0) -> int:
        if flags & ~int(UpdateFlags.EXIST):
            return -EINVAL
        if len(self.items_) >= self.spec.max_entries:
            if not flags & UpdateFlags.EXIST:
                return -E2BIG
            self.items_.popleft()  # BPF_EXIST: make room by dropping the oldest element
        vs = self.spec.value_size
        self.items_.append(bytes(value)[:vs].ljust(vs, b"\0"))
        return 0

    def pop(self, remove: bool = True) -> bytes | None:
        if not self.items_:
            return None
        if self.lifo:
            return self.items_.pop() if remove else self.items_[-1]
        return self.items_.popleft() if remove else self.items_[0]

    def update(self, key: bytes, value: Any, flags: int = 0) -> None:
        self._raise(self.push(bytes(value), flags), "push")

    def lookup(self, key: bytes = b"") -> Any:
        return self.pop(remove=False)

    def __len__(self) -> int:
        return len(self.items_)


class StackMap(QueueStackMap):
    lifo = True


MAP_CLASSES: dict[MapType, type[VmMap]] = {
    MapType.HASH: HashMap, MapType.ARRAY: ArrayMap, MapType.PROG_ARRAY: ProgArrayMap,
    MapType.PERF_EVENT_ARRAY: PerfEventArrayMap, MapType.PERCPU_HASH: PercpuHashMap,
    MapType.PERCPU_ARRAY: PercpuArrayMap, MapType.LRU_HASH: LruHashMap,
    MapType.LRU_PERCPU_HASH: LruPercpuHashMap, MapType.QUEUE: QueueStackMap, MapType.STACK: StackMap,
    MapType.RINGBUF: RingbufMap,
}


def create_map(spec: MapSpec, mem: AddressSpace, index: int, *, ncpus: int) -> VmMap:
    """A VM map for `spec`; `VmError` for map types the VM does not emulate."""
    from bpfkit.vm.maps_extra import EXTRA_MAP_CLASSES

    cls = MAP_CLASSES.get(spec.type) or EXTRA_MAP_CLASSES.get(spec.type)
    if cls is None:
        raise VmError(f"map {spec.name!r}: type {spec.type.name} is not supported by the VM")
    return cls(spec, mem, index, ncpus=ncpus)
