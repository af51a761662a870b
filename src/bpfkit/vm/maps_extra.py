"""More VM maps with the kernel's semantics: LPM trie, maps of maps, stack traces, bloom filter, cgroup
storage.

Each follows the kernel source named in its docstring: the same create-time checks (a `VmError` where
the kernel says EINVAL), the same update flags and the same errnos from the program face.
"""

from __future__ import annotations

import errno
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bpfkit.errors import VmError
from bpfkit.uapi.enums import MapFlags, MapType, UpdateFlags
from bpfkit.vm.maps import VmMap, _check_flags, map_by_fd

if TYPE_CHECKING:
    from bpfkit.vm.runtime import RunState

ENOENT, EEXIST, E2BIG, EINVAL, ENOSPC, EBADF, EOPNOTSUPP, EFAULT = (
    errno.ENOENT, errno.EEXIST, errno.E2BIG, errno.EINVAL, errno.ENOSPC, errno.EBADF, errno.EOPNOTSUPP,
    errno.EFAULT)

LPM_DATA_SIZE_MAX = 256
"""Largest LPM trie key data (kernel/bpf/lpm_trie.c LPM_DATA_SIZE_MAX); keys are a u32 prefixlen plus data."""
PERF_MAX_STACK_DEPTH = 127
"""Frames a stack trace map value can hold (include/uapi/linux/perf_event.h)."""

# Flags of bpf_get_stackid (include/uapi/linux/bpf.h).
BPF_F_SKIP_FIELD_MASK = 0xFF
BPF_F_USER_STACK = 1 << 8
BPF_F_FAST_STACK_CMP = 1 << 9
BPF_F_REUSE_STACKID = 1 << 10

# -- LPM trie -----------------------------------------------------------------------------------------
class LpmTrieMap(VmMap):
    """BPF_MAP_TYPE_LPM_TRIE (kernel/bpf/lpm_trie.c): keys are `struct bpf_lpm_trie_key` (u32 prefixlen
    in host order, then `key_size - 4` bytes of data, most significant bit first); a lookup finds the
    element with the longest prefix matching the key's first `prefixlen` bits. The kernel requires
    BPF_F_NO_PREALLOC, refuses updates beyond `max_entries` with ENOSPC, and accepts only ANY, NOEXIST
    and EXIST."""

    def _validate(self) -> None:
        super()._validate()
        spec = self.spec
        if not spec.flags & MapFlags.NO_PREALLOC:
            raise VmError(f"map {self.name!r}: LPM tries must be created with BPF_F_NO_PREALLOC")
        if not 5 <= spec.key_size <= 4 + LPM_DATA_SIZE_MAX:
            raise VmError(f"map {self.name!r}: LPM trie key_size must be 5..{4 + LPM_DATA_SIZE_MAX} "
                          f"(u32 prefixlen + data), not {spec.key_size}")
        if spec.value_size <= 0:
            raise VmError(f"map {self.name!r}: LPM trie value_size must be positive")
        self.max_prefixlen = 8 * (spec.key_size - 4)
        # (prefixlen, masked data) -> [full key as last stored, value]
        self.nodes: dict[tuple[int, int], tuple[bytes, bytearray]] = {}
        for key, value in spec.contents:
            self.update(key, value)

    def _split(self, key: bytes) -> tuple[int, int]:
        prefixlen = int.from_bytes(key[:4], "little")
        return prefixlen, int.from_bytes(key[4:self.spec.key_size], "big")

    def _masked(self, data: int, prefixlen: int) -> int:
        shift = self.max_prefixlen - prefixlen
        return (data >> shift) << shift

    def _find(self, key: bytes) -> tuple[int, int] | None:
        prefixlen, data = self._split(key)
        prefixlen = min(prefixlen, self.max_prefixlen)
        for plen in range(prefixlen, -1, -1):
            ident = (plen, self._masked(data, plen))
            if ident in self.nodes:
                return ident
        return None

    def lookup(self, key: bytes) -> Any:
        ident = self._find(bytes(key))
        return None if ident is None else bytes(self.nodes[ident][1])

    def keys(self) -> Iterator[bytes]:
        return iter([k for k, _ in self.nodes.values()])

    def __len__(self) -> int:
        return len(self.nodes)

    def bpf_lookup(self, rt: RunState, key: bytes) -> int:
        ident = self._find(key)
        if ident is None:
            return 0
        return self._region(ident, self.nodes[ident][1])

    def bpf_update_bytes(self, key: bytes, value: Any, flags: int, *, user: bool = False,
                         cpu: int = 0) -> int:
        if flags & ~int(UpdateFlags.NOEXIST | UpdateFlags.EXIST) or (flags & 3) == 3:
            return -EINVAL
        key = bytes(key[:self.spec.key_size])
        prefixlen, data = self._split(key)
        if prefixlen > self.max_prefixlen:
            return -EINVAL
        ident = (prefixlen, self._masked(data, prefixlen))
        old = self.nodes.get(ident)
        if old is not None and flags & UpdateFlags.NOEXIST:
            return -EEXIST
        if old is None:
            if flags & UpdateFlags.EXIST:
                return -ENOENT
            if len(self.nodes) >= self.spec.max_entries:
                return -ENOSPC
        vs = self.spec.value_size
        new = bytes(value)[:vs].ljust(vs, b"\0")
        if old is None:
            self.nodes[ident] = (key, bytearray(new))
        else:  # the kernel replaces the node: the stored key is the new one, the value is rewritten
            old[1][:] = new
            self.nodes[ident] = (key, old[1])
        return 0

    def bpf_delete(self, key: bytes) -> int:
        prefixlen, data = self._split(bytes(key))
        if prefixlen > self.max_prefixlen:
            return -EINVAL
        ident = (prefixlen, self._masked(data, prefixlen))
        if self.nodes.pop(ident, None) is None:
            return -ENOENT
        self._drop_region(ident)
        return 0

    def bpf_entries(self, rt: RunState) -> list[tuple[bytes, int]]:
        return []  # bpf_for_each_map_elem does not support LPM tries (the kernel refuses it)


# -- maps of maps -------------------------------------------------------------------------------------
def _meta_equal(inner: VmMap, template: Any) -> bool:
    """kernel/bpf/map_in_map.c bpf_map_meta_equal: same type, key and value size and flags; the same
    max_entries unless the template has BPF_F_INNER_MAP."""
    spec = inner.spec
    if (spec.type, spec.key_size, spec.value_size) != (template.type, template.key_size,
                                                        template.value_size):
        return False
    if (spec.flags & ~MapFlags.INNER_MAP) != (template.flags & ~MapFlags.INNER_MAP):
        return False
    return bool(template.flags & MapFlags.INNER_MAP) or spec.max_entries == template.max_entries


_NOT_INNER = {MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.STRUCT_OPS}


class _MapOfMaps(VmMap):
    """Shared by ARRAY_OF_MAPS and HASH_OF_MAPS: values are maps, given from user space as a `VmMap` or
    its fd; user-space lookup returns the inner map's id (u32), a program's lookup returns the inner map
    itself, usable as the map argument of a nested bpf_map_lookup_elem."""

    def _validate(self) -> None:
        super()._validate()
        template = self.spec.inner_map
        if template is None:
            raise VmError(f"map {self.name!r}: a map of maps needs an inner map template (inner_map)")
        if template.type in _NOT_INNER:
            raise VmError(f"map {self.name!r}: a {template.type.name} map cannot be an inner map")
        if self.spec.value_size != 4:
            raise VmError(f"map {self.name!r}: a map of maps has value_size 4 (a map fd)")
        self.template = template
        self.slots: dict[bytes, VmMap] = {}

    def _inner_from(self, value: Any) -> VmMap | int:
        """The map `value` names (a VmMap, an fd, or the fd as 4 bytes), or a negative errno."""
        if isinstance(value, VmMap):
            inner: VmMap | None = value if value.mem is self.mem else None
        else:
            fd = value if isinstance(value, int) else int.from_bytes(bytes(value)[:4], "little")
            inner = map_by_fd(self.mem, fd)
        if inner is None:
            return -EBADF
        if not _meta_equal(inner, self.template):
            return -EINVAL
        return inner

    def inner(self, key: bytes) -> VmMap | None:
        """The map stored at `key`."""
        return self.slots.get(bytes(key)[:self.spec.key_size])

    def lookup(self, key: bytes) -> Any:
        inner = self.inner(key)
        return None if inner is None else inner.fd.to_bytes(4, "little")

    def keys(self) -> Iterator[bytes]:
        return iter(list(self.slots))

    def bpf_lookup(self, rt: RunState, key: bytes) -> int:
        inner = self.slots.get(key)
        return 0 if inner is None else inner.address

    def bpf_entries(self, rt: RunState) -> list[tuple[bytes, int]]:
        return []


class ArrayOfMapsMap(_MapOfMaps):
    """BPF_MAP_TYPE_ARRAY_OF_MAPS (kernel/bpf/arraymap.c, fd arrays): u32 index; updates take only
    BPF_ANY; an index past the end gives E2BIG, deleting an empty slot ENOENT."""

    def _validate(self) -> None:
        super()._validate()
        if self.spec.key_size != 4:
            raise VmError(f"map {self.name!r}: array of maps needs key_size 4")

    def _index(self, key: bytes) -> int | None:
        index = int.from_bytes(key[:4], "little")
        return index if index < self.spec.max_entries else None

    def bpf_update_bytes(self, key: bytes, value: Any, flags: int, *, user: bool = False,
                         cpu: int = 0) -> int:
        if not user:
            return -EINVAL  # programs may only look up in a map of maps (the verifier says so)
        if flags:
            return -EINVAL
        if self._index(key) is None:
            return -E2BIG
        inner = self._inner_from(value)
        if isinstance(inner, int):
            return inner
        self.slots[bytes(key[:4])] = inner
        return 0

    def bpf_delete(self, key: bytes) -> int:
        if self._index(key) is None:
            return -E2BIG
        return 0 if self.slots.pop(bytes(key[:4]), None) is not None else -ENOENT

    def keys(self) -> Iterator[bytes]:
        return (i.to_bytes(4, "little") for i in range(self.spec.max_entries))

    def __len__(self) -> int:
        return self.spec.max_entries


class HashOfMapsMap(_MapOfMaps):
    """BPF_MAP_TYPE_HASH_OF_MAPS (kernel/bpf/hashtab.c): hash semantics (NOEXIST/EXIST, E2BIG when
    full) with maps as values."""

    def bpf_update_bytes(self, key: bytes, value: Any, flags: int, *, user: bool = False,
                         cpu: int = 0) -> int:
        if not user:
            return -EINVAL
        if rc := _check_flags(flags):
            return rc
        key = bytes(key[:self.spec.key_size])
        inner = self._inner_from(value)
        if isinstance(inner, int):
            return inner
        present = key in self.slots
        if present and flags & UpdateFlags.NOEXIST:
            return -EEXIST
        if not present:
            if flags & UpdateFlags.EXIST:
                return -ENOENT
            if len(self.slots) >= self.spec.max_entries:
                return -E2BIG
        self.slots[key] = inner
        return 0

    def bpf_delete(self, key: bytes) -> int:
        return 0 if self.slots.pop(bytes(key[:self.spec.key_size]), None) is not None else -ENOENT

    def __len__(self) -> int:
        return len(self.slots)


# -- stack traces -------------------------------------------------------------------------------------
class StackTraceMap(VmMap):
    """BPF_MAP_TYPE_STACK_TRACE (kernel/bpf/stackmap.c): u32 stack id -> up to value_size / 8 u64
    instruction pointers. Ids are buckets of a table of max_entries rounded up to a power of two.
    User space can look up and delete, not update (EINVAL)."""

    def _validate(self) -> None:
        super()._validate()
        spec = self.spec
        if spec.key_size != 4:
            raise VmError(f"map {self.name!r}: stack trace maps need key_size 4")
        if spec.value_size < 8 or spec.value_size % 8 or spec.value_size // 8 > PERF_MAX_STACK_DEPTH:
            raise VmError(f"map {self.name!r}: stack trace value_size must be a multiple of 8 up to "
                          f"{8 * PERF_MAX_STACK_DEPTH}, not {spec.value_size}")
        self.n_buckets = 1 << (spec.max_entries - 1).bit_length()
        self.buckets: dict[int, tuple[int, ...]] = {}

    def record(self, ips: tuple[int, ...], flags: int) -> int:
        """Store a stack as bpf_get_stackid does: its id, or a negative errno (EFAULT for a stack with
        no frames left after the skip, EEXIST for a bucket holding another stack, unless
        BPF_F_REUSE_STACKID)."""
        if flags & ~(BPF_F_SKIP_FIELD_MASK | BPF_F_USER_STACK | BPF_F_FAST_STACK_CMP
                     | BPF_F_REUSE_STACKID):
            return -EINVAL
        skip = flags & BPF_F_SKIP_FIELD_MASK
        ips = tuple(ip & 0xFFFFFFFFFFFFFFFF for ip in ips[skip:skip + self.spec.value_size // 8])
        if not ips:
            return -EFAULT
        stack_id = hash(ips) & (self.n_buckets - 1)
        old = self.buckets.get(stack_id)
        if old is not None and old != ips and not flags & BPF_F_REUSE_STACKID:
            return -EEXIST
        self.buckets[stack_id] = ips
        return stack_id

    def lookup(self, key: bytes) -> Any:
        ips = self.buckets.get(int.from_bytes(bytes(key)[:4], "little"))
        if ips is None:
            return None
        return b"".join(ip.to_bytes(8, "little") for ip in ips).ljust(self.spec.value_size, b"\0")

    def keys(self) -> Iterator[bytes]:
        return iter([k.to_bytes(4, "little") for k in sorted(self.buckets)])

    def __len__(self) -> int:
        return len(self.buckets)

    def bpf_lookup(self, rt: RunState, key: bytes) -> int:
        return 0  # the kernel's stack map has no lookup from programs (bpf_get_stack copies instead)

    def bpf_update_bytes(self, key: bytes, value: Any, flags: int, *, user: bool = False,
                         cpu: int = 0) -> int:
        return -EINVAL

    def bpf_delete(self, key: bytes) -> int:
        stack_id = int.from_bytes(bytes(key)[:4], "little")
        if stack_id >= self.n_buckets:
            return -EINVAL
        return 0 if self.buckets.pop(stack_id, None) is not None else -ENOENT


# -- bloom filter -------------------------------------------------------------------------------------
class BloomFilterMap(VmMap):
    """BPF_MAP_TYPE_BLOOM_FILTER (kernel/bpf/bloom_filter.c): keyless; push adds a value (BPF_ANY
    only), peek answers 0 (maybe present) or ENOENT (certainly absent); pop and delete are EOPNOTSUPP.
    map_extra's low 4 bits are the number of hashes (0 means 5). The VM keeps the exact set, which is a
    bloom filter that never gives a false positive (the kernel's seeds are random anyway)."""

    def _validate(self) -> None:
        super()._validate()
        spec = self.spec
        if spec.key_size != 0 or spec.value_size <= 0:
            raise VmError(f"map {self.name!r}: bloom filters have key_size 0 and a positive value_size")
        if spec.map_extra & ~0xF:
            raise VmError(f"map {self.name!r}: bloom filter map_extra holds only the number of hashes "
                          f"(1..15) in its low 4 bits")
        self.values: set[bytes] = set()

    def push(self, value: bytes, flags: int = 0) -> int:
        if flags != UpdateFlags.ANY:
            return -EINVAL
        vs = self.spec.value_size
        self.values.add(bytes(value)[:vs].ljust(vs, b"\0"))
        return 0

    def contains(self, value: bytes) -> int:
        """0 when `value` may be in the filter, -ENOENT when it is not."""
        return 0 if bytes(value)[:self.spec.value_size] in self.values else -ENOENT

    def update(self, key: bytes, value: Any, flags: int = 0) -> None:
        self._raise(self.push(bytes(value), flags), "push")

    def peek_value(self, value: bytes) -> bool:
        """User-space membership test (BPF_MAP_LOOKUP_ELEM with the value)."""
        return self.contains(value) == 0

    def bpf_delete(self, key: bytes) -> int:
        return -EOPNOTSUPP

    def __len__(self) -> int:
        return 0  # like the kernel's: a bloom filter has no elements to iterate


# -- cgroup storage ---------------------------------------------------------------------------------
class CgroupStorageMap(VmMap):
    """BPF_MAP_TYPE_CGROUP_STORAGE and PERCPU_CGROUP_STORAGE (kernel/bpf/local_storage.c): one value per
    (cgroup, attach type) a program is attached to, reached through bpf_get_local_storage. The VM
    attaches nothing, so it behaves like BPF_PROG_TEST_RUN: each test run gets fresh zeroed storage
    (shared by its repeats), invisible from user space, where lookups find nothing and updates ENOENT.
    Created with max_entries 0 and a u64 or `struct bpf_cgroup_storage_key` (16 bytes) key."""

    def _validate(self) -> None:
        spec = self.spec
        if spec.max_entries != 0:
            raise VmError(f"map {self.name!r}: cgroup storage maps are created with max_entries 0")
        if spec.key_size not in (8, 16):
            raise VmError(f"map {self.name!r}: cgroup storage key_size must be 8 (cgroup id) or 16 "
                          f"(struct bpf_cgroup_storage_key), not {spec.key_size}")
        if not 0 < spec.value_size <= 4096:
            raise VmError(f"map {self.name!r}: cgroup storage value_size must be 1..4096")
        if spec.flags & ~int(MapFlags.NUMA_NODE | MapFlags.RDONLY | MapFlags.WRONLY
                             | MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG):
            raise VmError(f"map {self.name!r}: flags {spec.flags:#x} are not valid for cgroup storage")
        copies = self.ncpus if self.per_cpu else 1
        self.storage = [bytearray(spec.value_size) for _ in range(copies)]
        self._run: weakref.ref[RunState] | None = None

    def storage_for(self, rt: RunState) -> int:
        """The address of the storage a run sees (bpf_get_local_storage); zeroed when a new run starts."""
        if self._run is None or self._run() is not rt:
            for buf in self.storage:
                buf[:] = bytes(len(buf))
            self._run = weakref.ref(rt)
        cpu = rt.cpu if self.per_cpu else 0
        return self._region(cpu, self.storage[cpu])

    def lookup(self, key: bytes) -> Any:
        return None

    def bpf_update_bytes(self, key: bytes, value: Any, flags: int, *, user: bool = False,
                         cpu: int = 0) -> int:
        if flags & ~int(UpdateFlags.EXIST | UpdateFlags.F_LOCK) or flags & UpdateFlags.NOEXIST:
            return -EINVAL
        return -ENOENT

    def bpf_delete(self, key: bytes) -> int:
        return -EINVAL


class PercpuCgroupStorageMap(CgroupStorageMap):
    per_cpu = True


EXTRA_MAP_CLASSES: dict[MapType, type[VmMap]] = {
    MapType.CGROUP_STORAGE: CgroupStorageMap, MapType.PERCPU_CGROUP_STORAGE: PercpuCgroupStorageMap,
    MapType.LPM_TRIE: LpmTrieMap, MapType.ARRAY_OF_MAPS: ArrayOfMapsMap,
    MapType.HASH_OF_MAPS: HashOfMapsMap, MapType.STACK_TRACE: StackTraceMap,
    MapType.BLOOM_FILTER: BloomFilterMap,
}
