"""Map semantics against the running kernel, one map type at a time."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel import features
from bpfkit.kernel.codec import CodecError
from bpfkit.kernel.cpus import possible_cpus
from bpfkit.kernel.maps import Map, MapOperationError
from bpfkit.kernel.programs import Program
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapFlags, MapType, ProgType, UpdateFlags

pytestmark = pytest.mark.kernel

RET_0 = bytes.fromhex("b700000000000000" "9500000000000000")


@pytest.fixture
def pin_dir() -> Iterator[Path]:
    d = Path("/sys/fs/bpf") / f"bpfkit-test-{os.getpid()}"
    d.mkdir()
    try:
        yield d
    finally:
        for p in d.iterdir():
            p.unlink()
        d.rmdir()


def test_hash_dict_semantics() -> None:
    with Map.create(MapSpec(MapType.HASH, 4, 8, 4, name="h"), key=int, value="Q") as m:
        assert len(m) == 0 and list(m) == []
        m[1] = 10
        m[2] = 20
        assert m[1] == 10 and 2 in m and 3 not in m
        assert sorted(m.items()) == [(1, 10), (2, 20)] and len(m) == 2
        m.update(3, 30, UpdateFlags.NOEXIST)
        with pytest.raises(KernelError) as ei:
            m.update(3, 31, UpdateFlags.NOEXIST)
        assert ei.value.errno == errno.EEXIST and "map 'h'" in str(ei.value)
        with pytest.raises(KernelError) as ei:
            m.update(9, 1, UpdateFlags.EXIST)
        assert ei.value.errno == errno.ENOENT
        m[4] = 40
        with pytest.raises(KernelError) as ei:
            m[5] = 50  # full: max_entries 4
        assert ei.value.errno == errno.E2BIG and "the map is full" in str(ei.value)
        m[4] = 41  # replacing in a full map is fine
        del m[4]
        with pytest.raises(KeyError):
            m[4]
        with pytest.raises(KeyError):
            del m[4]
        assert m.lookup_and_delete(3) == 30 and 3 not in m
        assert sorted(m) == [1, 2]


def test_hash_iteration_survives_deleting_while_iterating() -> None:
    with Map.create(MapSpec(MapType.HASH, 4, 4, 64), key=int, value=int) as m:
        for i in range(50):
            m[i] = i
        for k in list(m):
            del m[k]
        assert len(m) == 0
        for i in range(50):
            m[i] = i
        removed = 0
        for k in m:  # deleting the current key makes the kernel restart from the first key
            del m[k]
            removed += 1
        assert removed == 50 and len(m) == 0


def test_array_semantics() -> None:
    with Map.create(MapSpec(MapType.ARRAY, 4, 4, 3), key=int, value=int) as m:
        assert len(m) == 3 and list(m) == [0, 1, 2]
        assert dict(m.items()) == {0: 0, 1: 0, 2: 0}  # arrays are zero-filled
        m[2] = 7
        assert m[2] == 7
        with pytest.raises(KernelError) as ei:
            del m[0]
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(KernelError) as ei:
            m[3] = 1
        assert ei.value.errno == errno.E2BIG
        with pytest.raises(KernelError):
            m.update(0, 1, UpdateFlags.NOEXIST)  # every index exists


@pytest.mark.parametrize("map_type", [MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH])
def test_percpu_values(map_type: MapType) -> None:
    n = possible_cpus()
    with Map.create(MapSpec(map_type, 4, 4, 4), key=int, value=int) as m:
        assert m.is_percpu and m.ncpus == n
        m[1] = list(range(100, 100 + n))
        assert m[1] == list(range(100, 100 + n))
        with pytest.raises(CodecError, match=f"{n} entries"):
            m[1] = [1] * (n + 1)


def test_percpu_odd_value_size_pads_to_8() -> None:
    n = possible_cpus()
    with Map.create(MapSpec(MapType.PERCPU_ARRAY, 4, 12, 1)) as m:
        vals = [bytes([i]) * 12 for i in range(n)]
        m[0] = vals
        assert m[0] == vals


def test_lru_hash_evicts() -> None:
    with Map.create(MapSpec(MapType.LRU_HASH, 4, 4, 64), key=int, value=int) as m:
        for i in range(1000):
            m[i] = i  # never E2BIG: old entries go
        assert 0 < len(m) <= 64 + possible_cpus() * 64
        assert 999 in m


def test_stack_and_queue_order() -> None:
    with Map.create(MapSpec(MapType.STACK, 0, 4, 3), value=int) as s, \
            Map.create(MapSpec(MapType.QUEUE, 0, 4, 3), value=int) as q:
        for v in (1, 2, 3):
            s.push(v)
            q.push(v)
        with pytest.raises(KernelError) as ei:
            q.push(4)
        assert ei.value.errno == errno.E2BIG
        q.push(4, UpdateFlags.EXIST)  # drops the oldest
        assert s.peek() == 3 and q.peek() == 2
        assert [s.pop() for _ in range(3)] == [3, 2, 1]
        assert [q.pop() for _ in range(3)] == [2, 3, 4]
        with pytest.raises(KeyError):
            s.pop()
        with pytest.raises(KeyError):
            q.peek()
        with pytest.raises(MapOperationError):
            list(q)


def test_lpm_trie_longest_prefix_match() -> None:
    def key(prefix: int, addr: str) -> bytes:
        return struct.pack("=I", prefix) + socket.inet_aton(addr)

    spec = MapSpec(MapType.LPM_TRIE, 8, 4, 16, MapFlags.NO_PREALLOC, "routes")
    with Map.create(spec, value=int) as m:
        m[key(8, "10.0.0.0")] = 1
        m[key(16, "10.1.0.0")] = 2
        assert m[key(32, "10.1.2.3")] == 2
        assert m[key(32, "10.2.0.1")] == 1
        with pytest.raises(KeyError):
            m[key(32, "11.0.0.1")]
        assert len(m) == 2


def test_bloom_filter_membership() -> None:
    with Map.create(MapSpec(MapType.BLOOM_FILTER, 0, 4, 1000, map_extra=3), value=int) as b:
        for v in range(0, 64, 4):
            b.push(v)
        assert all(v in b for v in range(0, 64, 4))
        # 16 of 1000 entries with 3 hashes: a false positive among these is all but impossible
        assert not any(b.peek_value(v) for v in range(1000, 1050))
        with pytest.raises(MapOperationError):
            len(b)


def test_ringbuf_and_user_ringbuf_have_no_dict_interface() -> None:
    for t in (MapType.RINGBUF, MapType.USER_RINGBUF):
        with Map.create(MapSpec(t, 0, 0, 4096 * 4)) as rb:
            assert rb.info().max_entries == 4096 * 4
            with pytest.raises(MapOperationError, match="has no keys"):
                rb[0]
    with pytest.raises(KernelError) as ei:
        Map.create(MapSpec(MapType.RINGBUF, 0, 0, 1000, name="rb"))  # not a power-of-2 page multiple
    assert ei.value.errno == errno.EINVAL and "map 'rb'" in str(ei.value)


def test_stack_trace_map() -> None:
    with Map.create(MapSpec(MapType.STACK_TRACE, 4, 8 * 127, 16), key=int) as m:
        with pytest.raises(KeyError):
            m[0]
        assert len(m) == 0


def test_prog_array_holds_programs_and_reads_back_ids() -> None:
    with Map.create(MapSpec(MapType.PROG_ARRAY, 4, 4, 4), key=int, value=int) as m, \
            Program.load(RET_0, ProgType.XDP, name="tail") as p:
        m[1] = p
        assert m[1] == p.id
        assert 1 in m and 0 not in m
        assert list(m) == [0, 1, 2, 3] and len(m) == 4
        del m[1]
        assert 1 not in m


@pytest.mark.parametrize("outer", [MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS])
def test_map_of_maps(outer: MapType) -> None:
    inner_spec = MapSpec(MapType.ARRAY, 4, 8, 2, name="inner")
    with Map.create(MapSpec(outer, 4, 4, 4, name="outer", inner_map=inner_spec), key=int, value=int) as m, \
            Map.create(inner_spec) as inner, Map.create(MapSpec(MapType.ARRAY, 4, 4, 2)) as wrong:
        m[0] = inner
        assert m[0] == inner.id
        with pytest.raises(KernelError) as ei:
            m[1] = wrong  # value size differs from the template
        assert ei.value.errno == errno.EINVAL


def test_map_of_maps_with_explicit_template() -> None:
    with Map.create(MapSpec(MapType.ARRAY, 4, 4, 1)) as template, \
            Map.create(MapSpec(MapType.ARRAY_OF_MAPS, 4, 4, 1), inner_map=template, key=int, value=int) as m:
        m[0] = template
        assert m[0] == template.id


def test_perf_event_array_and_cgroup_storage_create() -> None:
    with Map.create(MapSpec(MapType.PERF_EVENT_ARRAY, 4, 4, possible_cpus())) as pe:
        assert len(pe) == possible_cpus()
        with pytest.raises(KernelError, match="not supported") as ei:
            pe.lookup(0)  # perf event fds cannot be read back
        assert ei.value.errno == 524  # ENOTSUPP
    with Map.create(MapSpec(MapType.CGROUP_STORAGE, 16, 8, 0)) as cs:
        assert cs.info().key_size == 16


def test_task_storage_with_btf() -> None:
    """Task storage needs BTF for its key/value (here the minimal int BTF); the key is a pidfd."""
    if not hasattr(os, "pidfd_open"):
        pytest.skip("os.pidfd_open needs Python 3.9 on Linux 5.3")
    with features.minimal_btf() as btf:
        spec = MapSpec(MapType.TASK_STORAGE, 4, 4, 0, MapFlags.NO_PREALLOC, "ts", btf_key_type_id=1,
                       btf_value_type_id=1)
        with Map.create(spec, btf=btf, value=int) as m:
            pidfd = os.pidfd_open(os.getpid())
            try:
                m[pidfd] = 1234
                assert m[pidfd] == 1234
                del m[pidfd]
                with pytest.raises(KeyError):
                    m[pidfd]
            finally:
                os.close(pidfd)
            assert m.info().btf_id > 0


@pytest.mark.parametrize(
    ("map_type", "value_size"),
    [(MapType.DEVMAP, 4), (MapType.DEVMAP_HASH, 8), (MapType.CPUMAP, 4), (MapType.XSKMAP, 4),
     (MapType.SOCKMAP, 4), (MapType.SOCKHASH, 4), (MapType.REUSEPORT_SOCKARRAY, 8)],
)
def test_redirect_and_socket_maps_create(map_type: MapType, value_size: int) -> None:
    with Map.create(MapSpec(map_type, 4, value_size, 4, name="m")) as m:
        info = m.info()
        assert (info.type, info.key_size, info.value_size, info.max_entries) == (map_type, 4, value_size, 4)


def test_devmap_holds_ifindexes() -> None:
    lo = socket.if_nametoindex("lo")
    with Map.create(MapSpec(MapType.DEVMAP, 4, 4, 2), key=int, value=int) as m:
        m[0] = lo
        assert m[0] == lo


def test_batch_operations_hash() -> None:
    with Map.create(MapSpec(MapType.HASH, 4, 4, 1024), key=int, value=int) as m:
        assert m.update_batch({i: i * 3 for i in range(500)}) == 500
        got = m.lookup_batch(batch_size=7)
        assert sorted(got) == [(i, i * 3) for i in range(500)]
        assert sorted(got) == sorted(m.items())
        assert m.delete_batch(range(100)) == 100
        assert len(m) == 400
        with pytest.raises(KeyError):
            m.delete_batch([100, 5])  # 5 is gone
        assert 100 not in m  # keys before the missing one were deleted
        taken = m.lookup_and_delete_batch(batch_size=64)
        assert sorted(taken) == [(i, i * 3) for i in range(101, 500)]
        assert len(m) == 0


def test_batch_operations_percpu_array() -> None:
    n = possible_cpus()
    with Map.create(MapSpec(MapType.PERCPU_ARRAY, 4, 8, 10), key=int, value=int) as m:
        m.update_batch([(i, [i] * n) for i in range(10)])
        assert m.lookup_batch(batch_size=3) == [(i, [i] * n) for i in range(10)]


def test_freeze_makes_read_only() -> None:
    with Map.create(MapSpec(MapType.ARRAY, 4, 4, 1, name="ro"), key=int, value=int) as m:
        m[0] = 5
        m.freeze()
        with pytest.raises(KernelError) as ei:
            m[0] = 6
        assert ei.value.errno == errno.EPERM and "frozen" in str(ei.value)
        assert m[0] == 5


def test_spec_contents_and_freeze() -> None:
    spec = MapSpec(MapType.ARRAY, 4, 4, 2, name=".rodata", contents=((b"\0\0\0\0", b"abcd"),), freeze=True)
    with Map.create(spec) as m:
        assert m[0] == b"abcd"
        with pytest.raises(KernelError):
            m[1] = b"efgh"


def test_f_lock_without_spin_lock_is_refused() -> None:
    with Map.create(MapSpec(MapType.HASH, 4, 4, 1), key=int, value=int) as m:
        with pytest.raises(KernelError) as ei:
            m.update(1, 1, UpdateFlags.F_LOCK)
        assert ei.value.errno == errno.EINVAL


def test_pin_from_pinned_from_id_info(pin_dir: Path) -> None:
    path = pin_dir / "counts"
    with Map.create(MapSpec(MapType.HASH, 4, 4, 8, name="counts"), key=int, value=int) as m:
        m[1] = 11
        m.pin(path)
        with pytest.raises(KernelError) as ei:
            m.pin(path)
        assert ei.value.errno == errno.EEXIST and str(path) in str(ei.value)
        info = m.info()
        assert (info.type, info.name, info.key_size, info.value_size, info.max_entries) == (
            MapType.HASH, "counts", 4, 4, 8)
        with Map.from_pinned(path, key=int, value=int) as p:
            assert p.id == m.id == info.id and p[1] == 11 and p.name == "counts"
            p[2] = 22
        with Map.from_id(info.id, key=int, value=int) as q:
            assert q[2] == 22
        with Map.from_pinned(path, readonly=True, key=int, value=int) as r:
            assert r[1] == 11
            with pytest.raises(KernelError) as ei:
                r[3] = 3
            assert ei.value.errno == errno.EPERM
    with Map.from_pinned(path, key=int, value=int) as again:  # the pin keeps the map alive
        assert again[1] == 11
    with pytest.raises(KernelError, match="no object is pinned"):
        Map.from_pinned(pin_dir / "missing")


def test_pin_outside_bpffs_explains(tmp_path: Path) -> None:
    with Map.create(MapSpec(MapType.ARRAY, 4, 4, 1)) as m:
        with pytest.raises(KernelError) as ei:
            m.pin(tmp_path / "x")
        assert ei.value.errno == errno.EPERM
        assert "not on a bpf file system: pin under /sys/fs/bpf" in str(ei.value)


def test_numa_node_flag() -> None:
    with Map.create(MapSpec(MapType.HASH, 4, 4, 1, numa_node=0)) as m:
        assert m.info().flags & MapFlags.NUMA_NODE


def test_struct_key_and_value_types() -> None:
    class Key(ctypes.Structure):
        _fields_ = [("pid", ctypes.c_uint32), ("cpu", ctypes.c_uint32)]

    with Map.create(MapSpec(MapType.HASH, 8, 16, 4), key=Key, value="QQ") as m:
        m[Key(1, 2)] = (3, 4)
        ((k, v),) = list(m.items())
        assert (k.pid, k.cpu, v) == (1, 2, (3, 4))


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (MapSpec(MapType.ARRAY, 8, 4, 1, name="arr"), "key_size must be 4 for BPF_MAP_TYPE_ARRAY (got 8)"),
        (MapSpec(MapType.RINGBUF, 0, 0, 1000, name="rb"), "power of 2 multiple of the page size"),
        (MapSpec(MapType.LPM_TRIE, 8, 4, 1, name="lpm"), "BPF_F_NO_PREALLOC"),
        (MapSpec(MapType.QUEUE, 4, 4, 1, name="q"), "key_size must be 0"),
    ],
)
def test_create_einval_names_the_field(spec: MapSpec, needle: str) -> None:
    with pytest.raises(KernelError) as ei:
        Map.create(spec)
    assert ei.value.errno == errno.EINVAL
    assert f"map {spec.name!r}: " in str(ei.value) and needle in str(ei.value)
