"""The JIT's native map indexes stay in step with their maps through every insert, delete and value
region change, whichever face made it. The probe below walks the table exactly as the native code does
(hash, mask, linear probing, stop at an empty slot)."""

from __future__ import annotations

import ctypes
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType
from bpfkit.vm import Vm
from bpfkit.vm.jit.mapindex import ArrayIndex, HashIndex, index_for, key_hash, key_words
from bpfkit.vm.maps import HashMap


def probe(index: HashIndex, key: bytes) -> list[int] | None:
    """The slot native code finds for `key` (meta, key words, addresses), or None."""
    words = key_words(key)
    mask, sw = int(index.desc.mask), index.slot_words
    table = (ctypes.c_uint64 * ((mask + 1) * sw)).from_address(int(index.desc.table))
    i = key_hash(words) & mask
    while table[i * sw]:
        row = list(table[i * sw:(i + 1) * sw])
        if row[1:1 + index.key_words] == words:
            return row
        i = (i + 1) & mask
    return None


def hash_map(key_size: int = 4, max_entries: int = 4096, map_type: MapType = MapType.HASH) -> HashMap:
    m = Vm(ncpus=2).create_map(MapSpec(map_type, key_size, 8, max_entries, name="h"))
    assert isinstance(m, HashMap)
    return m


def buffer_address(buf: bytearray) -> int:
    return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))


def check(index: HashIndex, m: HashMap, gone: set[bytes]) -> None:
    for key, values in m.table.items():
        row = probe(index, key)
        assert row is not None, key
        assert row[index.key_words + 1:] == [buffer_address(v) for v in values]
    for key in gone - set(m.table):
        assert probe(index, key) is None
    assert 2 * len(m.table) <= index.capacity


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 40)), max_size=300), st.sampled_from([1, 3, 4, 9]))
def test_inserts_and_deletes_keep_every_key_findable(ops: list[tuple[bool, int]], key_size: int) -> None:
    m = hash_map(key_size)
    index = index_for(m)
    assert isinstance(index, HashIndex)
    seen: set[bytes] = set()
    for insert, n in ops:
        key = n.to_bytes(2, "little").ljust(key_size, b"\x5a")[:key_size]
        seen.add(key)
        if insert:
            m.update(key, n.to_bytes(8, "little"))
        elif key in m.table:
            m.delete(key)
        check(index, m, seen)


def test_growth_and_many_collisions() -> None:
    m = hash_map(8)
    m.update(b"\xff" * 8, bytes(8))  # present before the index: picked up when it is made
    index = index_for(m)
    assert isinstance(index, HashIndex)
    rng = random.Random(1)
    keys = [rng.getrandbits(64).to_bytes(8, "little") for _ in range(2000)]
    for k in keys:
        m.update(k, k)
    for k in keys[::2]:
        m.delete(k)
    check(index, m, set(keys))
    assert index.capacity >= 2 * len(m.table)


def test_mapped_bits_follow_value_regions() -> None:
    vm = Vm(ncpus=2)
    m = vm.create_map(MapSpec(MapType.PERCPU_HASH, 4, 8, 16, name="h"))
    assert isinstance(m, HashMap)
    index = index_for(m)
    assert isinstance(index, HashIndex)
    key = (3).to_bytes(4, "little")
    m.update(key, [bytes(8), bytes(8)])
    row = probe(index, key)
    assert row is not None and row[0] == 1  # used, no value region mapped yet
    m._region((key, 1), m.table[key][1])  # what bpf_lookup on CPU 1 does
    row = probe(index, key)
    assert row is not None and row[0] == 1 | (2 << 1)
    m.delete(key)
    assert probe(index, key) is None


def test_array_index_tracks_mapped_elements() -> None:
    vm = Vm(ncpus=2)
    m = vm.create_map(MapSpec(MapType.PERCPU_ARRAY, 4, 8, 4, name="a"))
    m.value_address()  # maps element 0 of CPU 0 before the index exists
    index = index_for(m)
    assert isinstance(index, ArrayIndex)
    assert list(index.mapped) == [1, 0, 0, 0, 0, 0, 0, 0]
    m._region((1, 3), m._view(1, 3))  # type: ignore[attr-defined]
    assert index.mapped[1 * 4 + 3] == 1
    assert index.bases[1] == buffer_address(m.storage[1])  # type: ignore[attr-defined]


def test_maps_without_a_native_index() -> None:
    vm = Vm()
    assert index_for(vm.create_map(MapSpec(MapType.LRU_HASH, 4, 8, 4, name="l"))) is None
    assert index_for(vm.create_map(MapSpec(MapType.HASH, 65, 8, 4, name="k"))) is None
    assert index_for(vm.create_map(MapSpec(MapType.QUEUE, 0, 8, 4, name="q"))) is None
