"""LPM trie, maps of maps, stack trace and bloom filter maps of the VM (tests/kernel/
test_vm_maps_vs_kernel.py replays the same kind of sequences against the kernel)."""

from __future__ import annotations

import errno
import gc
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfkit.errors import VmError
from bpfkit.isa import Builder
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import Helper, MapFlags, MapType, UpdateFlags
from bpfkit.uapi.insn import AtomicOp, Reg
from bpfkit.vm import Vm, VmMap
from bpfkit.vm.maps import map_by_fd
from bpfkit.vm.maps_extra import (
    BPF_F_REUSE_STACKID,
    ArrayOfMapsMap,
    BloomFilterMap,
    HashOfMapsMap,
    LpmTrieMap,
    StackTraceMap,
)

R = Reg
U64 = (1 << 64) - 1
LPM = MapSpec(MapType.LPM_TRIE, 8, 8, 16, MapFlags.NO_PREALLOC, name="lpm")


def neg(code: int) -> int:
    return -code & U64


def key(prefixlen: int, *octets: int) -> bytes:
    return struct.pack("<I", prefixlen) + bytes(octets).ljust(4, b"\0")


def u64(v: int) -> bytes:
    return v.to_bytes(8, "little")


# -- LPM trie -------------------------------------------------------------------------------------
def test_lpm_longest_prefix_wins() -> None:
    t = Vm().create_map(LPM)
    t.update(key(8, 10), u64(8))
    t.update(key(16, 10, 1), u64(16))
    t.update(key(24, 10, 1, 2), u64(24))
    assert t.lookup(key(32, 10, 1, 2, 3)) == u64(24)
    assert t.lookup(key(32, 10, 1, 3, 3)) == u64(16)
    assert t.lookup(key(32, 10, 9, 9, 9)) == u64(8)
    assert t.lookup(key(32, 11, 0, 0, 0)) is None
    assert t.lookup(key(20, 10, 1, 2, 3)) == u64(16)  # the key's own prefixlen caps the match
    assert len(t) == 3


def test_lpm_flags_capacity_and_delete() -> None:
    t = Vm().create_map(MapSpec(MapType.LPM_TRIE, 8, 8, 2, MapFlags.NO_PREALLOC, name="small"))
    assert isinstance(t, LpmTrieMap)
    assert t.bpf_update_bytes(key(8, 10), u64(1), UpdateFlags.EXIST) == -errno.ENOENT
    assert t.bpf_update_bytes(key(8, 10), u64(1), UpdateFlags.NOEXIST) == 0
    assert t.bpf_update_bytes(key(8, 10, 99), u64(2), UpdateFlags.NOEXIST) == -errno.EEXIST
    assert t.bpf_update_bytes(key(33, 10), u64(1), 0) == -errno.EINVAL
    assert t.bpf_update_bytes(key(8, 10), u64(1), UpdateFlags.F_LOCK) == -errno.EINVAL
    assert t.bpf_update_bytes(key(16, 10, 1), u64(3), 0) == 0
    assert t.bpf_update_bytes(key(24, 10, 1, 2), u64(4), 0) == -errno.ENOSPC
    assert t.bpf_update_bytes(key(8, 10, 55), u64(5), UpdateFlags.EXIST) == 0  # replaces key and value
    assert set(t.keys()) == {key(8, 10, 55), key(16, 10, 1)}
    assert t.bpf_delete(key(12, 10)) == -errno.ENOENT  # delete needs the exact prefix
    assert t.bpf_delete(key(16, 10, 1, 7)) == 0
    assert t.lookup(key(32, 10, 1, 0, 0)) == u64(5)


@pytest.mark.parametrize("spec", [
    MapSpec(MapType.LPM_TRIE, 8, 8, 4, name="prealloc"),
    MapSpec(MapType.LPM_TRIE, 4, 8, 4, MapFlags.NO_PREALLOC, name="nodata"),
    MapSpec(MapType.LPM_TRIE, 300, 8, 4, MapFlags.NO_PREALLOC, name="huge"),
])
def test_lpm_create_checks(spec: MapSpec) -> None:
    with pytest.raises(VmError, match=spec.name):
        Vm().create_map(spec)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 16), st.integers(0, 0xFFFF)), max_size=12),
       st.integers(0, 0xFFFF))
def test_lpm_agrees_with_a_linear_scan(routes: list[tuple[int, int]], addr: int) -> None:
    """Oracle: the longest stored prefix matching the address's top bits."""
    t = Vm().create_map(MapSpec(MapType.LPM_TRIE, 6, 4, 64, MapFlags.NO_PREALLOC, name="t"))
    table: dict[tuple[int, int], int] = {}
    for i, (plen, data) in enumerate(routes):
        t.update(struct.pack("<I", plen) + data.to_bytes(2, "big"), i.to_bytes(4, "little"))
        table[(plen, data >> (16 - plen))] = i
    best = max(((plen, v) for (plen, top), v in table.items() if addr >> (16 - plen) == top),
               default=None)
    got = t.lookup(struct.pack("<I", 16) + addr.to_bytes(2, "big"))
    assert got == (None if best is None else best[1].to_bytes(4, "little"))


def test_lpm_lookup_from_a_program(engine: str) -> None:
    vm = Vm()
    t = vm.create_map(LPM)
    t.update(key(16, 192, 168), u64(7))
    b = Builder().st(4, R.R10, -8, 32).st(4, R.R10, -4, int.from_bytes(bytes([192, 168, 3, 4]), "little"))
    b.ld_map(R.R1, "t").mov(R.R2, R.R10).add(R.R2, -8).call(Helper.MAP_LOOKUP_ELEM)
    b.jmp("jeq", R.R0, 0, "miss").mov(R.R1, 1).atomic(8, AtomicOp.ADD, R.R0, 0, R.R1)
    b.ldx(8, R.R0, R.R0, 0).exit()
    b.label("miss").mov(R.R0, 99).exit()
    prog = vm.load(b.build(), maps={"t": t}, relocations=b.relocations)
    assert prog.test_run(engine=engine).retval == 8  # type: ignore[arg-type]
    assert t.lookup(key(32, 192, 168, 0, 0)) == u64(8)  # the program wrote the shared value


# -- maps of maps ---------------------------------------------------------------------------------
INNER = MapSpec(MapType.ARRAY, 4, 8, 2, name="inner")


def _nested_lookup(outer_key: int) -> Builder:
    b = Builder().st(4, R.R10, -4, outer_key).ld_map(R.R1, "outer").mov(R.R2, R.R10).add(R.R2, -4)
    b.call(Helper.MAP_LOOKUP_ELEM).jmp("jeq", R.R0, 0, "no_inner")
    b.st(4, R.R10, -8, 1).mov(R.R1, R.R0).mov(R.R2, R.R10).add(R.R2, -8).call(Helper.MAP_LOOKUP_ELEM)
    b.jmp("jeq", R.R0, 0, "no_value").ldx(8, R.R0, R.R0, 0).exit()
    b.label("no_inner").mov(R.R0, 1000).exit().label("no_value").mov(R.R0, 2000).exit()
    return b


@pytest.mark.parametrize("outer_type", [MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS])
def test_nested_lookup_through_a_map_of_maps(outer_type: MapType, engine: str) -> None:
    vm = Vm()
    outer = vm.create_map(MapSpec(outer_type, 4, 4, 4, name="outer", inner_map=INNER))
    a, b_ = vm.create_map(INNER), vm.create_map(INNER)
    a.update((1).to_bytes(4, "little"), u64(11))
    b_.update((1).to_bytes(4, "little"), u64(22))
    outer.update((0).to_bytes(4, "little"), a)  # a VmMap ...
    outer.update((2).to_bytes(4, "little"), b_.fd.to_bytes(4, "little"))  # ... or its fd
    results = []
    for k in (0, 2, 3):
        prog = _nested_lookup(k)
        results.append(vm.load(prog.build(), maps={"outer": outer}, relocations=prog.relocations)
                       .test_run(engine=engine).retval)  # type: ignore[arg-type]
    assert results == [11, 22, 1000]
    assert outer.lookup((2).to_bytes(4, "little")) == b_.fd.to_bytes(4, "little")
    assert isinstance(outer, (ArrayOfMapsMap, HashOfMapsMap)) and outer.inner((0).to_bytes(4, "little")) is a


def test_map_of_maps_checks_the_template() -> None:
    vm = Vm()
    outer = vm.create_map(MapSpec(MapType.HASH_OF_MAPS, 4, 4, 2, name="outer", inner_map=INNER))
    good = vm.create_map(INNER)
    cases = [
        (vm.create_map(MapSpec(MapType.ARRAY, 4, 8, 3, name="bigger")), -errno.EINVAL),
        (vm.create_map(MapSpec(MapType.HASH, 4, 8, 2, name="hash")), -errno.EINVAL),
        (vm.create_map(MapSpec(MapType.ARRAY, 4, 4, 2, name="narrow")), -errno.EINVAL),
        (12345, -errno.EBADF), (Vm().create_map(INNER), -errno.EBADF),  # another VM's map
        (good, 0),
    ]
    for inner, rc in cases:
        assert outer.bpf_update_bytes(b"\0" * 4, inner, 0, user=True) == rc, inner
    assert outer.bpf_update_bytes(b"\1\0\0\0", good, UpdateFlags.EXIST, user=True) == -errno.ENOENT
    assert outer.bpf_update_bytes(b"\1\0\0\0", good, 0, user=True) == 0
    assert outer.bpf_update_bytes(b"\2\0\0\0", good, 0, user=True) == -errno.E2BIG
    assert outer.bpf_update_bytes(b"\1\0\0\0", good, 0) == -errno.EINVAL  # programs cannot update
    assert outer.bpf_delete(b"\1\0\0\0") == 0 and outer.bpf_delete(b"\1\0\0\0") == -errno.ENOENT
    with pytest.raises(VmError, match="update failed: EINVAL"):
        outer.update(b"\3\0\0\0", vm.create_map(MapSpec(MapType.HASH, 4, 8, 2, name="h2")))


def test_inner_map_flag_relaxes_max_entries() -> None:
    vm = Vm()
    template = MapSpec(MapType.ARRAY, 4, 8, 2, MapFlags.INNER_MAP, name="t")
    outer = vm.create_map(MapSpec(MapType.ARRAY_OF_MAPS, 4, 4, 2, name="outer", inner_map=template))
    bigger = vm.create_map(MapSpec(MapType.ARRAY, 4, 8, 100, MapFlags.INNER_MAP, name="big"))
    assert outer.bpf_update_bytes(b"\0" * 4, bigger, 0, user=True) == 0
    assert outer.bpf_update_bytes(b"\0" * 4, bigger, UpdateFlags.NOEXIST, user=True) == -errno.EINVAL
    assert outer.bpf_update_bytes(b"\5\0\0\0", bigger, 0, user=True) == -errno.E2BIG


@pytest.mark.parametrize("spec", [
    MapSpec(MapType.ARRAY_OF_MAPS, 4, 4, 2, name="no_template"),
    MapSpec(MapType.HASH_OF_MAPS, 4, 8, 2, name="wide", inner_map=INNER),
    MapSpec(MapType.ARRAY_OF_MAPS, 4, 4, 2, name="nested",
            inner_map=MapSpec(MapType.ARRAY_OF_MAPS, 4, 4, 2, inner_map=INNER)),
])
def test_map_of_maps_create_checks(spec: MapSpec) -> None:
    with pytest.raises(VmError, match=spec.name):
        Vm().create_map(spec)


def test_maps_by_fd_do_not_keep_a_vm_alive() -> None:
    vm = Vm()
    m = vm.create_map(INNER)
    mem, fd = vm.mem, m.fd
    assert map_by_fd(mem, fd) is m
    del vm, m
    gc.collect()
    assert map_by_fd(mem, fd) is None


# -- stack traces ---------------------------------------------------------------------------------
def test_stack_trace_map_records() -> None:
    m = Vm().create_map(MapSpec(MapType.STACK_TRACE, 4, 8 * 4, 3, name="st"))
    assert isinstance(m, StackTraceMap) and m.n_buckets == 4
    sid = m.record((1, 2, 3), 0)
    assert 0 <= sid < 4 and m.record((1, 2, 3), 0) == sid
    assert m.lookup(sid.to_bytes(4, "little")) == b"".join(u64(i) for i in (1, 2, 3)) + bytes(8)
    assert m.record((), 0) == -errno.EFAULT
    assert m.record((1, 2), 2) == -errno.EFAULT  # nothing left after skipping two frames
    assert m.record((9, 8, 7, 6, 5, 4), 1) >= 0  # skip one, keep four
    assert m.record((1,), 1 << 11) == -errno.EINVAL
    others = [(i,) for i in range(100)]
    ids = [m.record(s, 0) for s in others]
    assert -errno.EEXIST in ids  # four buckets cannot hold 100 stacks
    collided = others[ids.index(-errno.EEXIST)]
    assert m.record(collided, BPF_F_REUSE_STACKID) >= 0
    assert m.bpf_update_bytes(b"\0" * 4, bytes(32), 0, user=True) == -errno.EINVAL
    assert m.bpf_delete(sid.to_bytes(4, "little")) in (0, -errno.ENOENT)
    assert m.bpf_delete((99).to_bytes(4, "little")) == -errno.EINVAL


# -- bloom filter ---------------------------------------------------------------------------------
def _bloom_prog(push: int | None, peek: int) -> Builder:
    b = Builder()
    if push is not None:
        b.st(8, R.R10, -8, push).ld_map(R.R1, "bf").mov(R.R2, R.R10).add(R.R2, -8).mov(R.R3, 0)
        b.call(Helper.MAP_PUSH_ELEM).mov(R.R6, R.R0)
    b.st(8, R.R10, -16, peek).ld_map(R.R1, "bf").mov(R.R2, R.R10).add(R.R2, -16)
    return b.call(Helper.MAP_PEEK_ELEM).exit()


def test_bloom_filter_from_programs(engine: str) -> None:
    # Opt-out (verify=False), for `pop` only: bpf_map_pop_elem on a bloom filter is under test (the
    # kernel and bpfkit's verifier refuse it at load).
    vm = Vm()
    bf = vm.create_map(MapSpec(MapType.BLOOM_FILTER, 0, 8, 16, name="bf"))
    assert isinstance(bf, BloomFilterMap)

    def run(b: Builder, verify: bool = True) -> int:
        return vm.load(b.build(), maps={"bf": bf}, relocations=b.relocations, verify=verify).test_run(
            engine=engine).retval  # type: ignore[arg-type]

    assert run(_bloom_prog(None, 5)) == neg(errno.ENOENT)
    assert run(_bloom_prog(5, 5)) == 0
    assert run(_bloom_prog(None, 6)) == neg(errno.ENOENT)
    pop = Builder().ld_map(R.R1, "bf").mov(R.R2, R.R10).add(R.R2, -8).call(Helper.MAP_POP_ELEM).exit()
    assert run(pop, verify=False) == neg(errno.EOPNOTSUPP)
    assert bf.push(u64(1), UpdateFlags.EXIST) == -errno.EINVAL
    assert bf.peek_value(u64(5)) and not bf.peek_value(u64(1))
    assert bf.bpf_delete(b"") == -errno.EOPNOTSUPP


def test_bloom_filter_create_checks() -> None:
    with pytest.raises(VmError, match="bloom"):
        Vm().create_map(MapSpec(MapType.BLOOM_FILTER, 4, 8, 16, name="bloom"))
    with pytest.raises(VmError, match="number of hashes"):
        Vm().create_map(MapSpec(MapType.BLOOM_FILTER, 0, 8, 16, name="b", map_extra=16))


def test_new_map_types_are_vm_maps() -> None:
    vm = Vm()
    for spec in (LPM, MapSpec(MapType.STACK_TRACE, 4, 8, 1, name="s"),
                 MapSpec(MapType.BLOOM_FILTER, 0, 4, 1, name="b"),
                 MapSpec(MapType.ARRAY_OF_MAPS, 4, 4, 1, name="o", inner_map=INNER)):
        assert isinstance(vm.create_map(spec), VmMap)


# -- cgroup storage -------------------------------------------------------------------------------
def _bump_storage(flags: int = 0) -> Builder:
    b = Builder().ld_map(R.R1, "cs").mov(R.R2, flags).call(Helper.GET_LOCAL_STORAGE)
    return b.ldx(8, R.R1, R.R0, 0).add(R.R1, 1).stx(8, R.R0, 0, R.R1).mov(R.R0, R.R1).exit()


@pytest.mark.parametrize("map_type", [MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE])
def test_cgroup_storage_is_fresh_per_test_run(map_type: MapType, engine: str) -> None:
    vm = Vm()
    cs = vm.create_map(MapSpec(map_type, 16, 8, 0, name="cs"))
    b = _bump_storage()
    prog = vm.load(b.build(), maps={"cs": cs}, relocations=b.relocations)
    assert prog.test_run(repeat=4, engine=engine).retval == 4  # type: ignore[arg-type]
    assert prog.test_run(repeat=2, engine=engine).retval == 2  # type: ignore[arg-type]
    assert cs.lookup(bytes(16)) is None
    assert cs.bpf_update_bytes(bytes(16), u64(1), 0, user=True) == -errno.ENOENT
    assert cs.bpf_update_bytes(bytes(16), u64(1), UpdateFlags.NOEXIST, user=True) == -errno.EINVAL


def test_cgroup_storage_checks() -> None:
    # Opt-out (verify=False): non-zero flags are under test at run time (the kernel and bpfkit's
    # verifier refuse them at load).
    for spec in (MapSpec(MapType.CGROUP_STORAGE, 16, 8, 1, name="entries"),
                 MapSpec(MapType.CGROUP_STORAGE, 12, 8, 0, name="key12"),
                 MapSpec(MapType.CGROUP_STORAGE, 8, 0, 0, name="empty"),
                 MapSpec(MapType.CGROUP_STORAGE, 8, 8, 0, MapFlags.NO_PREALLOC, name="flags")):
        with pytest.raises(VmError, match=spec.name):
            Vm().create_map(spec)
    vm = Vm()
    cs = vm.create_map(MapSpec(MapType.CGROUP_STORAGE, 8, 8, 0, name="cs"))
    b = _bump_storage(flags=1)
    with pytest.raises(VmError, match="non-zero flags"):
        vm.load(b.build(), maps={"cs": cs}, relocations=b.relocations, verify=False).test_run()
