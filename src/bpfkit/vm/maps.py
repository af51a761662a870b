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
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bpfkit.errors import VmError
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType, RingbufHeader, RingbufQuery, UpdateFlags
from bpfkit.vm.memory import MAP_BASE, AddressSpace, Region, RegionKind

if TYPE_CHECKING:
    from bpfkit.vm.runtime import RunState

BPF_F_CURRENT_CPU = 0xFFFFFFFF
"""`BPF_F_CURRENT_CPU` / `BPF_F_INDEX_MASK` of bpf_perf_event_output's flags."""

ENOENT, EEXIST, E2BIG, EINVAL, EAGAIN, EBUSY = (errno.ENOENT, errno.EEXIST, errno.E2BIG, errno.EINVAL,
                                                 errno.EAGAIN, errno.EBUSY)


_BY_FD: weakref.WeakKeyDictionary[AddressSpace, weakref.WeakValueDictionary[int, VmMap]] = \
    weakref.WeakKeyDictionary()
"""Maps by fd per address space; weak both ways, since each map holds its address space."""


def map_by_fd(mem: AddressSpace, fd: int) -> VmMap | None:
    """The map with fake descriptor `fd` in the VM owning `mem` (maps of maps take inner maps by fd)."""
    by_fd = _BY_FD.get(mem)
    return None if by_fd is None else by_fd.get(fd)


def _check_flags(flags: int) -> int:
    if flags & ~int(UpdateFlags.NOEXIST | UpdateFlags.EXIST | UpdateFlags.F_LOCK):
        return -EINVAL
    if (flags & 3) == 3:
        return -EINVAL
    return 0


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
            raise VmError(f"map {self.name!r}: max_entries must be positive")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.spec.type.name}>"

    # -- value regions ------------------------------------------------------------------------------
    def _region(self, ident: Any, buf: bytearray | memoryview) -> int:
        region = self._regions.get(ident)
        if region is None:
            region = self._regions[ident] = self.mem.map(buf, RegionKind.MAP_VALUE, name=self.name,
                                                         writable=not self.readonly_prog)
        return region.base

    def _drop_region(self, ident: Any) -> None:
        region = self._regions.pop(ident, None)
        if region is not None:
            self.mem.unmap(region)

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
            raise VmError(f"map {self.name!r}: array maps need key_size 4")
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


@dataclass(slots=True)
class _Record:
    size: int
    region: Region
    state: str = "busy"  # busy, submitted, discarded


class RingbufMap(VmMap):
    """BPF_MAP_TYPE_RINGBUF: `max_entries` bytes of records, each an 8-byte header plus data rounded
    up to 8 (BPF_RINGBUF_HDR_SZ). Reserved records are regions of their own until submitted."""

    def _validate(self) -> None:
        size = self.spec.max_entries
        if size <= 0 or size & (size - 1) or size % 4096:
            raise VmError(f"map {self.name!r}: ring buffer size must be a power of 2 and a multiple "
                          f"of the page size, not {size}")
        self.records: deque[_Record] = deque()
        self.by_addr: dict[int, _Record] = {}
        self.prod_pos = 0
        self.cons_pos = 0
        self.discarded = 0
        """Records skipped by `drain` because the program discarded them."""

    @staticmethod
    def _footprint(size: int) -> int:
        return (size + RingbufHeader.HDR_SZ + 7) & ~7

    def reserve(self, size: int) -> int:
        """Reserve `size` bytes; the record's address, or 0 when there is no room."""
        if size > 0xFFFFFFFF >> 2:
            return 0
        need = self._footprint(size)
        if self.prod_pos - self.cons_pos + need > self.spec.max_entries:
            return 0
        region = self.mem.map(bytearray(size), RegionKind.RINGBUF, name=self.name)
        record = _Record(size, region)
        self.records.append(record)
        self.by_addr[region.base] = record
        self.prod_pos += need
        return region.base

    def commit(self, addr: int, discard: bool) -> bool:
        record = self.by_addr.pop(addr, None)
        if record is None:
            return False
        record.state = "discarded" if discard else "submitted"
        self.mem.unmap(record.region)
        return True

    def output(self, data: bytes) -> int:
        addr = self.reserve(len(data))
        if not addr:
            return -EAGAIN
        self.by_addr[addr].region.buf[:] = data  # type: ignore[index]
        self.commit(addr, False)
        return 0

    def query(self, what: int) -> int:
        if what == RingbufQuery.AVAIL_DATA:
            return self.prod_pos - self.cons_pos
        if what == RingbufQuery.RING_SIZE:
            return self.spec.max_entries
        if what == RingbufQuery.CONS_POS:
            return self.cons_pos
        if what == RingbufQuery.PROD_POS:
            return self.prod_pos
        return 0

    def drain(self) -> list[bytes]:
        """Consume the submitted records in order (stopping at one still reserved)."""
        out: list[bytes] = []
        while self.records and self.records[0].state != "busy":
            record = self.records.popleft()
            self.cons_pos += self._footprint(record.size)
            if record.state == "submitted":
                out.append(bytes(record.region.buf))
            else:
                self.discarded += 1
        return out

    def release_all(self) -> None:
        """Discard reservations left open when a run ends (the kernel's verifier forbids that)."""
        for addr in list(self.by_addr):
            self.commit(addr, True)


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
