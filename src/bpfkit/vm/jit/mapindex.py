"""Native indexes of VM maps: host memory the JIT's inline map helpers read instead of calling Python.

An index is the map's `MapObserver`: the map tells it of every key inserted or deleted and of every
value region mapped or dropped, whichever face (user space or a program, any engine) made the change,
so native code always sees the map as Python does.

`ArrayIndex` (ARRAY, PERCPU_ARRAY): the real address of each CPU's storage, and one byte per element
and CPU saying whether the element's value region is mapped in the VM (a native lookup returns only
addresses the JIT's region table knows, so that accesses through them are checked like any other; an
element never looked up falls back to Python once, which maps its region).

`HashIndex` (HASH, PERCPU_HASH): an open-addressing table with linear probing, at most half full,
deletions by backward shift (no tombstones). A slot is `slot_words` u64s:
    meta     0 = empty; bit 0 = used, bit 1 + c = the value region of CPU copy c is mapped
    key      `key_words` u64s: the key in little-endian words, the last one zero-padded
    values   one u64 per CPU copy: the real address of that copy's value buffer
The table's address and mask live in a `HashDesc` at a fixed address (native code reads them on every
lookup); the table itself is reallocated when it grows. Python only changes the index while native
code is stopped (in a helper callback or between runs), so a reader never sees a half-made slot.
"""

from __future__ import annotations

import ctypes
from typing import Any

from bpfkit.vm.maps import ArrayMap, HashMap, PercpuArrayMap, PercpuHashMap, VmMap
from bpfkit.vm.memory import Region

U64 = 0xFFFFFFFFFFFFFFFF
HASH_MUL = 0x9E3779B97F4A7C15
"""Multiplier of the key hash (2**64 / golden ratio: Fibonacci hashing)."""
KEY_WORDS_MAX = 8
"""Keys up to 64 bytes are indexed natively; longer ones stay with Python."""
COPIES_MAX = 62
"""Per-CPU copies a slot's meta word can flag as mapped."""
ARRAY_ELEMENTS_MAX = 1 << 24
"""Elements times CPUs of an array indexed natively (one byte each)."""
MIN_CAPACITY = 16


def key_words(key: bytes) -> list[int]:
    """The key as little-endian u64 words, the last one zero-padded."""
    return [int.from_bytes(key[i:i + 8], "little") for i in range(0, len(key), 8)]


def key_hash(words: list[int]) -> int:
    """The index's hash of a key (native code computes the same): for each word w,
    h = (h ^ w) * HASH_MUL mod 2**64, then h ^= h >> 32."""
    h = 0
    for w in words:
        h = ((h ^ w) * HASH_MUL) & U64
        h ^= h >> 32
    return h


class HashDesc(ctypes.Structure):
    """Where a hash index's table is (native code loads both fields on each lookup), and room for the
    key words of the lookup in progress."""

    _fields_ = [("table", ctypes.c_uint64), ("mask", ctypes.c_uint64),
                ("key", ctypes.c_uint64 * KEY_WORDS_MAX)]


def _pin(buf: bytearray | memoryview) -> tuple[object, int]:
    """A ctypes view over `buf` (it also keeps a bytearray from being resized) and its address."""
    view = (ctypes.c_char * max(len(buf), 1)).from_buffer(buf) if len(buf) else (ctypes.c_char * 1)()
    return view, ctypes.addressof(view)


class ArrayIndex:
    """The native face of an ARRAY or PERCPU_ARRAY map."""

    def __init__(self, vm_map: ArrayMap) -> None:
        self.map = vm_map
        self.copies = len(vm_map.storage)
        self.max_entries = vm_map.max_entries
        pins = [_pin(buf) for buf in vm_map.storage]
        self._views = [view for view, _ in pins]
        self.bases = (ctypes.c_uint64 * self.copies)(*(addr for _, addr in pins))
        self.bases_address = ctypes.addressof(self.bases)
        self.mapped = (ctypes.c_uint8 * (self.copies * self.max_entries))()
        self.mapped_address = ctypes.addressof(self.mapped)
        for ident in list(vm_map._regions):
            self.region_mapped(ident, None)

    def region_mapped(self, ident: Any, region: Region | None) -> None:
        cpu, index = ident
        self.mapped[cpu * self.max_entries + index] = 1

    def region_dropped(self, ident: Any) -> None:
        cpu, index = ident
        self.mapped[cpu * self.max_entries + index] = 0

    def key_inserted(self, key: bytes, values: list[bytearray]) -> None:
        """Arrays have every key from the start."""

    def key_deleted(self, key: bytes) -> None:
        """Array elements cannot be deleted."""


class HashIndex:
    """The native face of a HASH or PERCPU_HASH map (see the module docstring for the layout)."""

    def __init__(self, vm_map: HashMap) -> None:
        self.map = vm_map
        self.key_size = vm_map.key_size
        self.key_words = (vm_map.key_size + 7) // 8
        self.copies = vm_map.ncpus if vm_map.per_cpu else 1
        self.slot_words = 1 + self.key_words + self.copies
        self.values_at = 8 * (1 + self.key_words)
        """Byte offset in a slot of the first value address."""
        self.desc = HashDesc()
        self.desc_address = ctypes.addressof(self.desc)
        self.pos: dict[bytes, int] = {}
        self._pins: dict[bytes, list[object]] = {}
        self._table: ctypes.Array[ctypes.c_uint64] = self._allocate(MIN_CAPACITY)
        for key, values in list(vm_map.table.items()):
            self.key_inserted(key, values)
        for ident in list(vm_map._regions):
            self.region_mapped(ident, None)

    @property
    def capacity(self) -> int:
        return int(self.desc.mask) + 1

    def _allocate(self, capacity: int) -> ctypes.Array[ctypes.c_uint64]:
        table = (ctypes.c_uint64 * (capacity * self.slot_words))()
        self._table = table
        self.desc.table = ctypes.addressof(table)
        self.desc.mask = capacity - 1
        return table

    def _home(self, slot: int) -> int:
        base = slot * self.slot_words + 1
        return key_hash(list(self._table[base:base + self.key_words])) & int(self.desc.mask)

    def _place(self, key: bytes, row: list[int]) -> None:
        """Put a slot's words (`row`: meta, key words, addresses) in the first free slot from its home."""
        mask = int(self.desc.mask)
        sw = self.slot_words
        table = self._table
        i = key_hash(row[1:1 + self.key_words]) & mask
        while table[i * sw]:
            i = (i + 1) & mask
        table[i * sw:(i + 1) * sw] = row  # type: ignore[assignment]
        self.pos[key] = i

    def _grow(self) -> None:
        old, sw = self._table, self.slot_words
        rows = {key: list(old[i * sw:(i + 1) * sw]) for key, i in self.pos.items()}
        self._allocate(self.capacity * 2)
        self.pos = {}
        for key, row in rows.items():
            self._place(key, row)

    # -- MapObserver --------------------------------------------------------------------------------
    def key_inserted(self, key: bytes, values: list[bytearray]) -> None:
        if key in self.pos:
            self.key_deleted(key)
        if 2 * (len(self.pos) + 1) > self.capacity:
            self._grow()
        pins = [_pin(v) for v in values]
        self._pins[key] = [view for view, _ in pins]
        self._place(key, [1, *key_words(key), *(addr for _, addr in pins)])

    def key_deleted(self, key: bytes) -> None:
        hole = self.pos.pop(key, None)
        self._pins.pop(key, None)
        if hole is None:
            return
        table, sw, mask = self._table, self.slot_words, int(self.desc.mask)
        j = hole
        while True:  # backward shift: pull up each later slot of the run that may move to the hole
            j = (j + 1) & mask
            if not table[j * sw]:
                break
            home = self._home(j)
            stays = hole < home <= j if hole <= j else (home > hole or home <= j)
            if stays:
                continue
            table[hole * sw:(hole + 1) * sw] = table[j * sw:(j + 1) * sw]  # type: ignore[assignment]
            self.pos[self._key_at(hole)] = hole
            hole = j
        table[hole * sw:(hole + 1) * sw] = [0] * sw  # type: ignore[assignment]

    def _key_at(self, slot: int) -> bytes:
        base = slot * self.slot_words + 1
        raw = b"".join(int(w).to_bytes(8, "little") for w in self._table[base:base + self.key_words])
        return raw[:self.key_size]

    def region_mapped(self, ident: Any, region: Region | None) -> None:
        key, cpu = ident
        i = self.pos.get(key)
        if i is not None:
            self._table[i * self.slot_words] |= 2 << cpu

    def region_dropped(self, ident: Any) -> None:
        key, cpu = ident
        i = self.pos.get(key)
        if i is not None:
            self._table[i * self.slot_words] &= ~(2 << cpu) & U64

    def lookup(self, key: bytes) -> list[int] | None:
        """The slot words of `key` (for tests and debugging), or None."""
        i = self.pos.get(key)
        return None if i is None else list(self._table[i * self.slot_words:(i + 1) * self.slot_words])


MapIndex = ArrayIndex | HashIndex


def index_for(vm_map: VmMap) -> MapIndex | None:
    """The native index of `vm_map`, made (and attached as its observer) on first use; None for maps
    native code does not handle (other types, LRU, long keys, huge arrays, another observer)."""
    observer = vm_map.observer
    if isinstance(observer, (ArrayIndex, HashIndex)):
        return observer
    if observer is not None:
        return None
    index: MapIndex
    if type(vm_map) in (ArrayMap, PercpuArrayMap):
        assert isinstance(vm_map, ArrayMap)
        if len(vm_map.storage) * vm_map.max_entries > ARRAY_ELEMENTS_MAX:
            return None
        index = ArrayIndex(vm_map)
    elif type(vm_map) in (HashMap, PercpuHashMap):
        assert isinstance(vm_map, HashMap)
        copies = vm_map.ncpus if vm_map.per_cpu else 1
        if vm_map.key_size > 8 * KEY_WORDS_MAX or copies > COPIES_MAX:
            return None
        index = HashIndex(vm_map)
    else:
        return None
    vm_map.observer = index
    return index
