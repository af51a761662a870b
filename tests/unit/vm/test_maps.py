"""Maps with kernel semantics, through programs (helpers) and through the user-space face."""

from __future__ import annotations

import errno

import pytest

from bpfkit.errors import VmError
from bpfkit.isa import Builder
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import Helper, MapType, UpdateFlags
from bpfkit.uapi.insn import Reg
from bpfkit.vm import Vm, VmMap

R = Reg
U64 = (1 << 64) - 1


def neg(code: int) -> int:
    return -code & U64


def _update(b: Builder, m: str, key: int, value: int, flags: int = 0) -> Builder:
    """bpf_map_update_elem(m, &key, &value, flags) with u32 key at fp-4 and u64 value at fp-16."""
    b.st(4, R.R10, -4, key).st(8, R.R10, -16, value)
    b.ld_map(R.R1, m).mov(R.R2, R.R10).add(R.R2, -4).mov(R.R3, R.R10).add(R.R3, -16).mov(R.R4, flags)
    return b.call(Helper.MAP_UPDATE_ELEM)


def _lookup(b: Builder, m: str, key: int) -> Builder:
    b.st(4, R.R10, -4, key).ld_map(R.R1, m).mov(R.R2, R.R10).add(R.R2, -4)
    return b.call(Helper.MAP_LOOKUP_ELEM)


def _run(vm: Vm, b: Builder, maps: dict[str, VmMap], engine: str, verify: bool = True) -> int:
    prog = vm.load(b.build(), maps=maps, relocations=b.relocations, verify=verify)
    return prog.test_run(engine=engine).retval  # type: ignore[arg-type]


def test_hash_map_update_flags_and_capacity(engine: str) -> None:
    vm = Vm()
    h = vm.create_map(MapSpec(MapType.HASH, 4, 8, 2, name="h"))
    results = []
    for key, flags in ((1, UpdateFlags.EXIST), (1, UpdateFlags.NOEXIST), (1, UpdateFlags.NOEXIST),
                       (2, 0), (3, 0), (1, UpdateFlags.ANY), (1, 3)):
        results.append(_run(vm, _update(Builder(), "h", key, key * 100, flags).exit(), {"h": h}, engine))
    assert results == [neg(errno.ENOENT), 0, neg(errno.EEXIST), 0, neg(errno.E2BIG), 0, neg(errno.EINVAL)]
    assert h.lookup((1).to_bytes(4, "little")) == (100).to_bytes(8, "little")
    assert len(h) == 2


def test_lookup_returns_a_pointer_into_the_value(engine: str) -> None:
    vm = Vm()
    a = vm.create_map(MapSpec(MapType.ARRAY, 4, 8, 4, name="a"))
    b = _lookup(Builder(), "a", 2).jmp("jeq", R.R0, 0, "miss")
    b.mov(R.R1, 5).atomic(8, 0x00, R.R0, 0, R.R1).ldx(8, R.R0, R.R0, 0).exit()
    b.label("miss").mov(R.R0, 99).exit()
    assert _run(vm, b, {"a": a}, engine) == 5
    assert _run(vm, b, {"a": a}, engine) == 10
    assert a.lookup((2).to_bytes(4, "little")) == (10).to_bytes(8, "little")
    out_of_range = _lookup(Builder(), "a", 4).exit()
    assert _run(vm, out_of_range, {"a": a}, engine) == 0


def test_map_values_are_bounds_checked(engine: str) -> None:
    # Opt-out (verify=False): out-of-bounds map value accesses on purpose: the run-time check is under test.
    vm = Vm()
    a = vm.create_map(MapSpec(MapType.ARRAY, 4, 8, 4, name="a"))
    b = _lookup(Builder(), "a", 0).ldx(8, R.R0, R.R0, 8).exit()  # one past the value
    with pytest.raises(VmError, match="map value"):
        _run(vm, b, {"a": a}, engine, verify=False)


def test_array_map_semantics() -> None:
    vm = Vm()
    a = vm.create_map(MapSpec(MapType.ARRAY, 4, 4, 2, name="a"))
    assert a.lookup((1).to_bytes(4, "little")) == bytes(4)  # preallocated, zeroed
    with pytest.raises(VmError, match="EINVAL"):
        a.delete((0).to_bytes(4, "little"))
    with pytest.raises(VmError, match="E2BIG"):
        a.update((2).to_bytes(4, "little"), bytes(4))
    with pytest.raises(VmError, match="EEXIST"):
        a.update((0).to_bytes(4, "little"), bytes(4), UpdateFlags.NOEXIST)


def test_percpu_array_uses_the_running_cpu() -> None:
    # Opt-out (verify=False): the program skips the NULL check of the lookup (the kernel would refuse
    # it); per-CPU semantics under test.
    vm = Vm(ncpus=3)
    p = vm.create_map(MapSpec(MapType.PERCPU_ARRAY, 4, 8, 1, name="p"))
    b = _lookup(Builder(), "p", 0).mov(R.R1, 1).atomic(8, 0, R.R0, 0, R.R1).mov(R.R0, 0).exit()
    prog = vm.load(b.build(), maps={"p": p}, relocations=b.relocations, verify=False)
    prog.test_run(cpu=0)
    prog.test_run(cpu=2)
    prog.test_run(cpu=2)
    assert [int.from_bytes(v, "little") for v in p.lookup(bytes(4))] == [1, 0, 2]
    cpu = Builder().call(Helper.GET_SMP_PROCESSOR_ID).exit()
    assert vm.load(cpu.build(), verify=False).test_run(cpu=1).retval == 1


def test_lru_hash_evicts_the_least_recently_used() -> None:
    vm = Vm()
    m = vm.create_map(MapSpec(MapType.LRU_HASH, 4, 4, 2, name="l"))
    k = [i.to_bytes(4, "little") for i in range(4)]
    m.update(k[0], b"aaaa")
    m.update(k[1], b"bbbb")
    b = _lookup(Builder(), "l", 0).mov(R.R0, 0).exit()  # touch key 0
    vm.load(b.build(), maps={"l": m}, relocations=b.relocations).test_run()
    m.update(k[2], b"cccc")
    assert sorted(m.keys()) == [k[0], k[2]]


def test_queue_and_stack(engine: str) -> None:
    for kind, first in ((MapType.QUEUE, 1), (MapType.STACK, 3)):
        vm = Vm()
        q = vm.create_map(MapSpec(kind, 0, 8, 3, name="q"))
        b = Builder()
        for v in (1, 2, 3):
            b.st(8, R.R10, -8, v).ld_map(R.R1, "q").mov(R.R2, R.R10).add(R.R2, -8).mov(R.R3, 0)
            b.call(Helper.MAP_PUSH_ELEM)
        b.st(8, R.R10, -8, 4).ld_map(R.R1, "q").mov(R.R2, R.R10).add(R.R2, -8).mov(R.R3, 0)
        b.call(Helper.MAP_PUSH_ELEM).mov(R.R6, R.R0)  # full: -E2BIG
        b.ld_map(R.R1, "q").mov(R.R2, R.R10).add(R.R2, -16).call(Helper.MAP_POP_ELEM)
        b.ldx(8, R.R0, R.R10, -16).jmp("jeq", R.R6, neg(errno.E2BIG) - (1 << 64), "ok")
        b.mov(R.R0, 999).label("ok").exit()
        assert _run(vm, b, {"q": q}, engine) == first
        assert len(q) == 2


def test_ringbuf_reserve_submit_discard_output_query(engine: str) -> None:
    # Opt-out (verify=False): discard of an unchecked reservation (NULL case) is under test.
    vm = Vm()
    rb = vm.create_map(MapSpec(MapType.RINGBUF, 0, 0, 4096, name="rb"))
    b = Builder()
    b.ld_map(R.R1, "rb").mov(R.R2, 16).mov(R.R3, 0).call(Helper.RINGBUF_RESERVE)
    b.jmp("jeq", R.R0, 0, "fail").st(8, R.R0, 0, 0x1111).st(8, R.R0, 8, 0x2222)
    b.mov(R.R1, R.R0).mov(R.R2, 0).call(Helper.RINGBUF_SUBMIT)
    b.ld_map(R.R1, "rb").mov(R.R2, 8).mov(R.R3, 0).call(Helper.RINGBUF_RESERVE)
    b.mov(R.R1, R.R0).mov(R.R2, 0).call(Helper.RINGBUF_DISCARD)
    b.st(8, R.R10, -8, 0x3333).ld_map(R.R1, "rb").mov(R.R2, R.R10).add(R.R2, -8).mov(R.R3, 8)
    b.mov(R.R4, 0).call(Helper.RINGBUF_OUTPUT)
    b.ld_map(R.R1, "rb").mov(R.R2, 0).call(Helper.RINGBUF_QUERY).exit()  # BPF_RB_AVAIL_DATA
    b.label("fail").mov(R.R0, 0).exit()
    assert _run(vm, b, {"rb": rb}, engine, verify=False) == (8 + 16) + (8 + 8) + (8 + 8)
    assert rb.drain() == [(0x1111).to_bytes(8, "little") + (0x2222).to_bytes(8, "little"),
                          (0x3333).to_bytes(8, "little")]
    big = Builder().ld_map(R.R1, "rb").mov(R.R2, 5000).mov(R.R3, 0).call(Helper.RINGBUF_RESERVE).exit()
    assert _run(vm, big, {"rb": rb}, engine, verify=False) == 0


def test_ringbuf_size_must_be_a_page_power_of_two() -> None:
    with pytest.raises(VmError, match="power of 2"):
        Vm().create_map(MapSpec(MapType.RINGBUF, 0, 0, 5000, name="rb"))


def test_perf_event_output(engine: str) -> None:
    # Opt-out (verify=False): a raw-memory program passes r1 (memory, not a context) to
    # bpf_perf_event_output: helper semantics under test.
    vm = Vm(ncpus=2)
    pe = vm.create_map(MapSpec(MapType.PERF_EVENT_ARRAY, 4, 4, 2, name="events"))
    b = Builder().st(4, R.R10, -4, 0xABCD).ld_map(R.R2, "events").ld_imm64(R.R3, 0xFFFFFFFF)
    b.mov(R.R4, R.R10).add(R.R4, -4).mov(R.R5, 4).call(Helper.PERF_EVENT_OUTPUT).exit()
    prog = vm.load(b.build(), maps={"events": pe}, relocations=b.relocations, verify=False)
    assert prog.test_run(engine=engine, cpu=1).retval == 0  # type: ignore[arg-type]
    assert pe.drain() == [(1, (0xABCD).to_bytes(4, "little"))]


def test_global_data_through_map_value_pointers(engine: str) -> None:
    vm = Vm()
    data = vm.create_map(MapSpec(MapType.ARRAY, 4, 16, 1, name=".data",
                                 contents=((bytes(4), bytes(range(16))),)))
    b = Builder().ld_map(R.R1, ".data", value_offset=4).ldx(4, R.R0, R.R1, 0).exit()
    assert _run(vm, b, {".data": data}, engine) == 0x07060504


def test_map_fds_in_ld_imm64(engine: str) -> None:
    vm = Vm()
    h = vm.create_map(MapSpec(MapType.HASH, 4, 8, 8, name="h"))
    b = Builder().st(4, R.R10, -4, 1).st(8, R.R10, -16, 5)
    b.ld_imm64(R.R1, h.fd, pseudo=1).mov(R.R2, R.R10).add(R.R2, -4)  # type: ignore[arg-type]
    b.mov(R.R3, R.R10).add(R.R3, -16).mov(R.R4, 0).call(Helper.MAP_UPDATE_ELEM)
    b.ld_imm64(R.R1, h.fd, pseudo=1).mov(R.R2, R.R10).add(R.R2, -4)  # type: ignore[arg-type]
    b.call(Helper.MAP_DELETE_ELEM).exit()
    assert vm.load(b.build()).test_run(engine=engine).retval == 0  # type: ignore[arg-type]
    assert len(h) == 0


def test_unsupported_map_type() -> None:
    with pytest.raises(VmError, match="not supported"):
        Vm().create_map(MapSpec(MapType.SOCKMAP, 4, 4, 4, name="t"))


# -- creation checks of array maps (kernel/bpf/arraymap.c: array_map_alloc_check) ----------------------
@pytest.mark.parametrize("map_type", [MapType.ARRAY, MapType.PERCPU_ARRAY])
@pytest.mark.parametrize(("key_size", "value_size", "max_entries", "field"), [
    (4, 0, 1, "value_size 0"),
    (4, 8, 0, "max_entries"),
    (8, 8, 1, "key_size 8"),
    (0, 8, 1, "key_size 0"),
])
def test_array_create_refuses_what_the_kernel_refuses(map_type: MapType, key_size: int, value_size: int,
                                                      max_entries: int, field: str) -> None:
    with pytest.raises(VmError, match=field):
        Vm().create_map(MapSpec(map_type, key_size, value_size, max_entries, name="a"))


@pytest.mark.parametrize(("value_size", "ok"), [(32760, True), (32761, True), (32768, True),
                                                (32769, False), (1 << 20, False)])
def test_percpu_array_value_size_limit(value_size: int, ok: bool) -> None:
    spec = MapSpec(MapType.PERCPU_ARRAY, 4, value_size, 1, name="p")
    if ok:
        p = Vm().create_map(spec)
        assert p.lookup(b"\0\0\0\0") == [bytes(value_size)] * p.ncpus
        return
    with pytest.raises(VmError, match=f"value_size {value_size} .*per-CPU.*32768.*E2BIG"):
        Vm().create_map(spec)


def test_array_value_size_limit_is_int_max() -> None:
    # Refused before any storage is allocated; the kernel's limit for plain arrays is INT_MAX, so a
    # value far above the per-CPU limit is still fine there.
    with pytest.raises(VmError, match=r"value_size 2147483648 .*INT_MAX.*E2BIG"):
        Vm().create_map(MapSpec(MapType.ARRAY, 4, 1 << 31, 1, name="big"))
    a = Vm().create_map(MapSpec(MapType.ARRAY, 4, 1 << 16, 2, name="ok"))
    assert a.lookup(b"\1\0\0\0") == bytes(1 << 16)
