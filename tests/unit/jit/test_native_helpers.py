"""Helpers the JIT runs natively (`bpfkit.vm.jit.fastcalls`): map lookup and update on array and hash
maps, ktime, prandom and the CPU id. Each gives what the interpreter gives, and the hot path makes no
call into Python (counted at the JIT's helper dispatcher); the cases that are not simple still go to
Python and still agree."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from bpfkit.errors import BpfkitError, VmMemoryError
from bpfkit.isa import Builder
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import Helper, MapType
from bpfkit.uapi.insn import AtomicOp, PseudoSrc, Reg
from bpfkit.vm import Vm
from bpfkit.vm.jit import JitOptions, jit_supported, set_options
from bpfkit.vm.maps import VmMap

from .dispatch_counter import PythonCalls

R = Reg
U64 = (1 << 64) - 1
EEXIST, ENOENT, E2BIG, EINVAL = 17, 2, 7, 22

pytestmark = pytest.mark.skipif(jit_supported() is not None, reason=f"no JIT here: {jit_supported()}")


def u32(n: int) -> bytes:
    return n.to_bytes(4, "little")


def u64(n: int) -> bytes:
    return n.to_bytes(8, "little")


def neg(code: int) -> int:
    return -code & U64


Setup = Callable[[Vm], dict[str, VmMap]]


class Pair:
    """The same program on two identical VMs, one run by the interpreter, one by the JIT. Programs are
    verified (as `Vm.load` does by default) unless `verify` is False: programs that fault on purpose."""

    def __init__(self, build: Callable[[], Builder], setup: Setup, *, seed: int = 1, verify: bool = True,
                 **vm_kw: Any) -> None:
        self.vms = {engine: Vm(seed=seed, **vm_kw) for engine in ("interp", "jit")}
        self.maps = {engine: setup(vm) for engine, vm in self.vms.items()}
        self.progs = {}
        for engine, vm in self.vms.items():
            b = build()
            self.progs[engine] = vm.load(b.build(), relocations=b.relocations, maps=self.maps[engine],
                                         verify=verify)

    def outcome(self, **kw: Any) -> tuple[object, ...]:
        """One run in each engine: results (or errors, message and all) must match."""
        out: dict[str, tuple[object, ...]] = {}
        for engine, prog in self.progs.items():
            try:
                out[engine] = ("ok", prog.test_run(engine=engine, **kw).retval)  # type: ignore[arg-type]
            except BpfkitError as err:
                out[engine] = ("error", type(err).__name__, str(err))
        assert out["jit"] == out["interp"]
        return out["jit"]

    def run(self, **kw: Any) -> int:
        """One run in each engine that must succeed; returns r0."""
        result = self.outcome(**kw)
        assert result[0] == "ok", result
        value = result[1]
        assert isinstance(value, int)
        return value

    def fault(self, **kw: Any) -> str:
        """One run in each engine that must fault with the same VmMemoryError; returns its message."""
        result = self.outcome(**kw)
        assert result[:2] == ("error", "VmMemoryError"), result
        return str(result[2])

    def contents(self, name: str) -> None:
        """The map `name` holds the same in both VMs."""
        a, b = self.maps["interp"][name], self.maps["jit"][name]
        assert sorted(a.items()) == sorted(b.items())

    def jit_map(self, name: str) -> VmMap:
        return self.maps["jit"][name]


def one_map(spec: MapSpec, fill: dict[bytes, Any] | None = None) -> Setup:
    def setup(vm: Vm) -> dict[str, VmMap]:
        m = vm.create_map(spec)
        for k, v in (fill or {}).items():
            m.update(k, v)
        return {"m": m}
    return setup


def lookup_add(key: int, add: int = 1, key_size: int = 4) -> Callable[[], Builder]:
    """*lookup(m, key) += add; r0 = the new value, or 99 when the key is missing."""
    def build() -> Builder:
        b = Builder()
        for off in range(0, key_size, 4):
            b.st(4, R.R10, -16 + off, (key >> (8 * off)) & 0xFFFFFFFF if off < 8 else 0)
        b.ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -16).call(Helper.MAP_LOOKUP_ELEM)
        b.jmp("jeq", R.R0, 0, "missing")
        b.ldx(8, R.R1, R.R0, 0).add(R.R1, add).stx(8, R.R0, 0, R.R1).ldx(8, R.R0, R.R0, 0).exit()
        b.label("missing").mov(R.R0, 99).exit()
        return b
    return build


def update(key: int, value: int, flags: int, key_size: int = 4, value_size: int = 8) -> Callable[[], Builder]:
    """r0 = update(m, key, value, flags)."""
    def build() -> Builder:
        b = Builder()
        for off in range(0, key_size, 4):
            b.st(4, R.R10, -64 + off, (key >> (8 * off)) & 0xFFFFFFFF if off < 8 else 0)
        for off in range(0, value_size, 4):
            b.st(4, R.R10, -48 + off, (value >> (8 * off)) & 0xFFFFFFFF if off < 8 else 0)
        b.ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -64).mov(R.R3, R.R10).add(R.R3, -48)
        b.mov(R.R4, flags).call(Helper.MAP_UPDATE_ELEM).exit()
        return b
    return build


# -- arrays -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("verify", [True, False], ids=["verified", "checked"])
@pytest.mark.parametrize("map_type", [MapType.ARRAY, MapType.PERCPU_ARRAY])
def test_array_lookup_is_native_after_the_first_touch(map_type: MapType, verify: bool,
                                                      python_calls: PythonCalls) -> None:
    """Unverified ("checked"), every access through the returned pointer is bounds-checked against the
    JIT's region table: the native result must be the address that table knows."""
    pair = Pair(lookup_add(2, 5), one_map(MapSpec(map_type, 4, 8, 4, name="a")), ncpus=2, verify=verify)
    assert pair.run(cpu=1) == 5  # maps element 2's value region (one Python call)
    python_calls.count = 0
    assert [pair.run(cpu=1) for _ in range(4)] == [10, 15, 20, 25]
    assert python_calls.count == 0
    pair.contents("m")


def test_array_key_out_of_range_is_null_natively(python_calls: PythonCalls) -> None:
    pair = Pair(lookup_add(4), one_map(MapSpec(MapType.ARRAY, 4, 8, 4, name="a")))
    assert pair.run() == 99
    assert python_calls.count == 0


@pytest.mark.parametrize(("key", "flags", "expected", "native"), [
    (1, 0, 0, True), (1, 2, 0, True),  # BPF_ANY, BPF_EXIST
    (1, 1, neg(EEXIST), True),  # BPF_NOEXIST: every array element exists
    (9, 0, neg(E2BIG), True), (9, 1, neg(E2BIG), True),
    (1, 3, neg(EINVAL), False), (1, 4, 0, False),  # invalid flags, BPF_F_LOCK: Python decides
])
def test_array_update(key: int, flags: int, expected: int, native: bool, python_calls: PythonCalls) -> None:
    pair = Pair(update(key, 0x1122334455667788, flags), one_map(MapSpec(MapType.ARRAY, 4, 8, 4, name="a")))
    assert pair.run() == expected
    assert python_calls.count == (0 if native else 1)
    pair.contents("m")


@pytest.mark.parametrize("value_size", [1, 3, 12, 64, 100, 200])
def test_array_update_copies_the_whole_value(value_size: int, python_calls: PythonCalls) -> None:
    def build() -> Builder:
        b = Builder()
        b.st(4, R.R10, -260, 3)
        for off in range(0, value_size, 4):  # value bytes 1, 2, 3...
            word = int.from_bytes(bytes(range(off + 1, off + 5)), "little")
            b.st(4, R.R10, -256 + off, word - (1 << 32) if word >> 31 else word)
        b.ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -260).mov(R.R3, R.R10).add(R.R3, -256)
        b.mov(R.R4, 0).call(Helper.MAP_UPDATE_ELEM).exit()
        return b
    pair = Pair(build, one_map(MapSpec(MapType.ARRAY, 4, value_size, 4, name="a")))
    assert pair.run() == 0
    assert python_calls.count == 0
    assert pair.jit_map("m").lookup(u32(3)) == bytes(range(1, value_size + 1))
    assert pair.jit_map("m").lookup(u32(2)) == bytes(value_size)  # the neighbour is untouched
    pair.contents("m")


def test_percpu_array_update_writes_the_runs_cpu(python_calls: PythonCalls) -> None:
    pair = Pair(update(0, 7, 0), one_map(MapSpec(MapType.PERCPU_ARRAY, 4, 8, 2, name="a")), ncpus=3)
    assert pair.run(cpu=2) == 0
    assert python_calls.count == 0
    assert pair.jit_map("m").lookup(u32(0)) == [u64(0), u64(0), u64(7)]
    pair.contents("m")


def test_read_only_array_updates_go_to_python(python_calls: PythonCalls) -> None:
    spec = MapSpec(MapType.ARRAY, 4, 8, 4, 0x80, name="ro")  # BPF_F_RDONLY_PROG
    pair = Pair(update(1, 5, 0), one_map(spec))
    pair.run()
    assert python_calls.count == 1
    pair.contents("m")


def test_array_value_pointer_faults_like_the_interpreter() -> None:
    def build() -> Builder:
        b = Builder().st(4, R.R10, -4, 1).ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -4)
        b.call(Helper.MAP_LOOKUP_ELEM).jmp("jeq", R.R0, 0, "out").ldx(8, R.R0, R.R0, 8).exit()
        b.label("out").exit()
        return b
    pair = Pair(build, one_map(MapSpec(MapType.ARRAY, 4, 8, 4, name="a")), verify=False)
    for _ in range(2):  # first run maps the element in Python, the second looks it up natively
        assert "out of bounds" in pair.fault()


# -- hash maps --------------------------------------------------------------------------------------
@pytest.mark.parametrize("verify", [True, False], ids=["verified", "checked"])
@pytest.mark.parametrize("map_type", [MapType.HASH, MapType.PERCPU_HASH])
def test_hash_lookup_hit_and_miss(map_type: MapType, verify: bool, python_calls: PythonCalls) -> None:
    value: Any = u64(40) if map_type == MapType.HASH else [u64(40), u64(41)]
    pair = Pair(lookup_add(7, 2), one_map(MapSpec(map_type, 4, 8, 16, name="h"), {u32(7): value}), ncpus=2,
                verify=verify)
    assert pair.run(cpu=1) == (42 if map_type == MapType.HASH else 43)
    python_calls.count = 0
    pair.run(cpu=1)
    pair.run(cpu=1)
    assert python_calls.count == 0
    pair.contents("m")
    missing = Pair(lookup_add(8), one_map(MapSpec(map_type, 4, 8, 16, name="h"), {u32(7): value}))
    python_calls.count = 0
    assert missing.run() == 99
    assert python_calls.count == 0


@pytest.mark.parametrize("key_size", [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 64])
def test_hash_keys_of_every_size(key_size: int, python_calls: PythonCalls) -> None:
    keys = [bytes((i * 37 + j * 11) & 0xFF for j in range(key_size)) for i in range(1, 40)]
    fill = {k: u64(i) for i, k in enumerate(keys)}

    def build() -> Builder:
        b = Builder()
        raw = keys[17]
        for off in range(key_size):
            b.st(1, R.R10, -64 + off, raw[off])
        b.ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -64).call(Helper.MAP_LOOKUP_ELEM)
        b.jmp("jeq", R.R0, 0, "missing").ldx(8, R.R0, R.R0, 0).exit()
        b.label("missing").mov(R.R0, 99).exit()
        return b
    pair = Pair(build, one_map(MapSpec(MapType.HASH, key_size, 8, 64, name="h"), fill))
    assert pair.run() == 17
    python_calls.count = 0
    assert pair.run() == 17
    assert python_calls.count == 0


@pytest.mark.parametrize(("key", "flags", "expected", "calls"), [
    (7, 0, 0, 0), (7, 2, 0, 0),  # existing key, BPF_ANY / BPF_EXIST: copied natively
    (7, 1, neg(EEXIST), 0),
    (8, 2, neg(ENOENT), 0),
    (8, 0, 0, 1), (8, 1, 0, 1),  # a new key: inserted by Python
    (7, 3, neg(EINVAL), 1), (7, 4, 0, 1),
])
def test_hash_update(key: int, flags: int, expected: int, calls: int, python_calls: PythonCalls) -> None:
    pair = Pair(update(key, 0xABCDEF, flags), one_map(MapSpec(MapType.HASH, 4, 8, 16, name="h"),
                                                       {u32(7): u64(1)}))
    assert pair.run() == expected
    assert python_calls.count == calls
    pair.contents("m")


def test_hash_full_map_insert_fails_like_the_interpreter() -> None:
    pair = Pair(update(9, 1, 0), one_map(MapSpec(MapType.HASH, 4, 8, 2, name="h"),
                                         {u32(1): u64(1), u32(2): u64(2)}))
    assert pair.run() == neg(E2BIG)


def test_inserted_key_is_then_found_natively(python_calls: PythonCalls) -> None:
    def build() -> Builder:  # lookup; if missing insert 1; else increment
        b = Builder().st(4, R.R10, -4, 5).st(8, R.R10, -16, 1)
        b.ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -4).call(Helper.MAP_LOOKUP_ELEM)
        b.jmp("jeq", R.R0, 0, "insert").mov(R.R1, 1).atomic(8, AtomicOp.ADD, R.R0, 0, R.R1)
        b.ldx(8, R.R0, R.R0, 0).exit()
        b.label("insert").ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -4).mov(R.R3, R.R10)
        b.add(R.R3, -16).mov(R.R4, 0).call(Helper.MAP_UPDATE_ELEM).mov(R.R0, 1).exit()
        return b
    pair = Pair(build, one_map(MapSpec(MapType.HASH, 4, 8, 16, name="h")))
    assert [pair.run() for _ in range(3)] == [1, 2, 3]
    python_calls.count = 0
    assert [pair.run() for _ in range(3)] == [4, 5, 6]
    assert python_calls.count == 0
    pair.contents("m")


def test_delete_is_visible_to_native_lookups(python_calls: PythonCalls) -> None:
    def build() -> Builder:  # r6 = lookup != 0; delete; r0 = r6 * 10 + (lookup != 0)
        b = Builder().st(4, R.R10, -4, 7).mov(R.R6, 0).mov(R.R7, 0)
        b.ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -4).call(Helper.MAP_LOOKUP_ELEM)
        b.jmp("jeq", R.R0, 0, "gone1").mov(R.R6, 10).label("gone1")
        b.ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -4).call(Helper.MAP_DELETE_ELEM)
        b.ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -4).call(Helper.MAP_LOOKUP_ELEM)
        b.jmp("jeq", R.R0, 0, "gone2").mov(R.R7, 1).label("gone2")
        b.mov(R.R0, R.R6).add(R.R0, R.R7).exit()
        return b
    pair = Pair(build, one_map(MapSpec(MapType.HASH, 4, 8, 16, name="h"), {u32(7): u64(1)}))
    assert pair.run() == 10
    assert pair.run() == 0
    for engine in ("interp", "jit"):  # user space re-inserts it
        pair.maps[engine]["m"].update(u32(7), u64(3))
    python_calls.count = 0
    assert pair.run() == 10
    assert python_calls.count == 2  # the first lookup maps the new value's region; the delete
    pair.contents("m")


def test_user_side_delete_then_native_lookup(python_calls: PythonCalls) -> None:
    pair = Pair(lookup_add(7), one_map(MapSpec(MapType.HASH, 4, 8, 16, name="h"), {u32(7): u64(1)}))
    assert pair.run() == 2
    assert pair.run() == 3
    for engine in ("interp", "jit"):
        pair.maps[engine]["m"].delete(u32(7))
    python_calls.count = 0
    assert pair.run() == 99
    assert python_calls.count == 0


def test_pointer_kept_across_a_delete_faults_like_the_interpreter() -> None:
    def build() -> Builder:
        b = Builder().st(4, R.R10, -4, 7)
        b.ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -4).call(Helper.MAP_LOOKUP_ELEM)
        b.jmp("jeq", R.R0, 0, "out").mov(R.R6, R.R0)
        b.ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -4).call(Helper.MAP_DELETE_ELEM)
        b.st(8, R.R6, 0, 5).label("out").mov(R.R0, 0).exit()
        return b
    pair = Pair(build, one_map(MapSpec(MapType.HASH, 4, 8, 16, name="h"), {u32(7): u64(1)}), verify=False)
    for engine, prog in pair.progs.items():  # the JIT names the host address: its region is gone
        with pytest.raises(VmMemoryError, match=r"pc 13 .* no memory is mapped there"):
            prog.test_run(engine=engine)  # type: ignore[arg-type]


def test_many_keys_grow_and_shrink_the_index(python_calls: PythonCalls) -> None:
    """Hundreds of inserts and deletes (growth, collisions, backward shifts): every key the map has is
    found natively with its value, every key it lost is not."""
    def build() -> Builder:  # r0 = *lookup(m, ctx u32 key) or 99999
        b = Builder().ldx(4, R.R2, R.R1, 0).stx(4, R.R10, -4, R.R2)
        b.ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -4).call(Helper.MAP_LOOKUP_ELEM)
        b.jmp("jeq", R.R0, 0, "missing").ldx(8, R.R0, R.R0, 0).exit()
        b.label("missing").mov(R.R0, 99999).exit()
        return b
    vm = Vm()
    m = vm.create_map(MapSpec(MapType.HASH, 4, 8, 1024, name="h"))
    for i in range(600):
        m.update(u32(i * 7919), u64(i))
    for i in range(0, 600, 3):
        m.delete(u32(i * 7919))
    b = build()
    prog = vm.load(b.build(), relocations=b.relocations, maps={"m": m})
    for i in range(0, 600, 7):
        prog.test_run(u32(i * 7919), engine="jit")  # map the value regions (Python, once)
    python_calls.count = 0
    for i in range(0, 600, 7):
        expected = 99999 if i % 3 == 0 else i
        assert prog.test_run(u32(i * 7919), engine="jit").retval == expected
    assert python_calls.count == 0


# -- time, randomness, cpu --------------------------------------------------------------------------
def call_build(helper: Helper, times: int = 1) -> Callable[[], Builder]:
    """r0 = the values of `times` calls, folded as r0 = r0 * 31 + value."""
    def build() -> Builder:
        b = Builder().mov(R.R6, 0)
        for _ in range(times):
            b.call(helper).alu("mul", R.R6, 31).add(R.R6, R.R0)
        return b.mov(R.R0, R.R6).exit()
    return build


def test_prandom_matches_the_interpreter_natively(python_calls: PythonCalls) -> None:
    pair = Pair(call_build(Helper.GET_PRANDOM_U32, 5), lambda vm: {}, seed=42)
    values = [pair.run() for _ in range(3)]
    assert len(set(values)) == 3
    assert python_calls.count == 0


def test_prandom_is_one_stream_across_engines() -> None:
    b = Builder().call(Helper.GET_PRANDOM_U32).exit().build()
    mixed, alone = Vm(seed=9), Vm(seed=9)
    p, q = mixed.load(b), alone.load(b)
    got = [p.test_run(engine=engine).retval for engine in ("jit", "interp", "jit", "fast", "jit")]  # type: ignore[arg-type]
    assert got == [q.test_run(engine="interp").retval for _ in range(5)]


def test_cpu_id_is_native(python_calls: PythonCalls) -> None:
    pair = Pair(call_build(Helper.GET_SMP_PROCESSOR_ID), lambda vm: {}, ncpus=4)
    assert pair.run(cpu=3) == 3
    assert pair.run(cpu=0) == 0
    assert python_calls.count == 0


def test_ktime_reads_the_monotonic_clock_natively(python_calls: PythonCalls) -> None:
    vm = Vm()
    prog = vm.load(Builder().call(Helper.KTIME_GET_NS).exit().build())
    before = time.monotonic_ns()
    got = prog.test_run(engine="jit").retval
    after = time.monotonic_ns()
    assert before <= got <= after
    assert python_calls.count == 0


def test_ktime_with_a_fake_clock_stays_in_python(python_calls: PythonCalls) -> None:
    pair = Pair(call_build(Helper.KTIME_GET_NS), lambda vm: {}, clock=lambda: 123_456_789)
    assert pair.run() == 123_456_789
    assert python_calls.count == 1


# -- when the fast path must not be taken -------------------------------------------------------------
def test_a_replaced_helper_runs_in_python(python_calls: PythonCalls) -> None:
    vm = Vm()
    vm.register_helper(Helper.MAP_LOOKUP_ELEM, lambda rt, *args: 1234)
    vm.register_helper(Helper.GET_PRANDOM_U32, lambda rt, *args: 77)
    m = vm.create_map(MapSpec(MapType.ARRAY, 4, 8, 4, name="a"))
    b = Builder().st(4, R.R10, -4, 0).ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -4)
    b.call(Helper.MAP_LOOKUP_ELEM).mov(R.R6, R.R0).call(Helper.GET_PRANDOM_U32).add(R.R0, R.R6).exit()
    prog = vm.load(b.build(), relocations=b.relocations, maps={"m": m}, verify=False)
    assert prog.test_run(engine="jit").retval == 1234 + 77
    assert python_calls.count == 2


def test_native_helpers_can_be_switched_off(python_calls: PythonCalls) -> None:
    vm = Vm(seed=3)
    m = vm.create_map(MapSpec(MapType.ARRAY, 4, 8, 4, name="a"))
    b = lookup_add(1)()
    b2 = call_build(Helper.GET_PRANDOM_U32, 2)()
    prog = vm.load(b.build(), relocations=b.relocations, maps={"m": m})
    rand = vm.load(b2.build())
    for p in (prog, rand):
        set_options(p.loaded, JitOptions(native_helpers=False))
    assert [prog.test_run(engine="jit").retval for _ in range(3)] == [1, 2, 3]
    rand.test_run(engine="jit")
    assert python_calls.count == 3 + 2


def test_map_not_known_at_the_call_site_goes_to_python(python_calls: PythonCalls) -> None:
    def build() -> Builder:  # r1 comes from r6, set in another basic block
        b = Builder().st(4, R.R10, -4, 0).ld_map(R.R6, "m").jmp("jeq", R.R10, 0, "never")
        b.label("never").mov(R.R1, R.R6).mov(R.R2, R.R10).add(R.R2, -4).call(Helper.MAP_LOOKUP_ELEM)
        b.jmp("jeq", R.R0, 0, "out").mov(R.R0, 1).label("out").exit()
        return b
    pair = Pair(build, one_map(MapSpec(MapType.ARRAY, 4, 8, 4, name="a")), verify=False)
    assert pair.run() == 1
    assert pair.run() == 1
    assert python_calls.count == 2


def test_key_outside_the_frame_goes_to_python(python_calls: PythonCalls) -> None:
    def build() -> Builder:  # the key is the run's data (r1), not the stack
        b = Builder().mov(R.R2, R.R1).ld_map(R.R1, "m").call(Helper.MAP_LOOKUP_ELEM)
        b.jmp("jeq", R.R0, 0, "out").mov(R.R0, 1).label("out").exit()
        return b
    pair = Pair(build, one_map(MapSpec(MapType.ARRAY, 4, 8, 4, name="a")), verify=False)
    assert pair.run(data=u32(2)) == 1
    assert pair.run(data=u32(2)) == 1
    assert python_calls.count == 2


def test_key_partly_outside_the_frame_faults_like_the_interpreter() -> None:
    def build() -> Builder:
        b = Builder().ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -2).call(Helper.MAP_LOOKUP_ELEM).exit()
        return b
    pair = Pair(build, one_map(MapSpec(MapType.HASH, 4, 8, 4, name="h")), verify=False)
    assert "out of bounds" in pair.fault()


def test_percpu_hash_update_writes_the_runs_cpu(python_calls: PythonCalls) -> None:
    pair = Pair(update(7, 9, 2), one_map(MapSpec(MapType.PERCPU_HASH, 4, 8, 4, name="h"),
                                         {u32(7): [u64(1), u64(2), u64(3)]}), ncpus=3)
    assert pair.run(cpu=1) == 0
    assert python_calls.count == 0
    assert pair.jit_map("m").lookup(u32(7)) == [u64(1), u64(9), u64(3)]
    pair.contents("m")


def test_maps_given_by_index_are_native_too(python_calls: PythonCalls) -> None:
    """LD_IMM64 with BPF_PSEUDO_MAP_IDX (an fd_array of maps) names the map as well as an fd does."""
    vm = Vm()
    m = vm.create_map(MapSpec(MapType.ARRAY, 4, 8, 4, name="a"))
    m.update(u32(1), u64(41))
    b = Builder().st(4, R.R10, -4, 1).ld_imm64(R.R1, 0, PseudoSrc.MAP_IDX).mov(R.R2, R.R10).add(R.R2, -4)
    b.call(Helper.MAP_LOOKUP_ELEM).jmp("jeq", R.R0, 0, "out").ldx(8, R.R0, R.R0, 0).add(R.R0, 1)
    b.label("out").exit()
    prog = vm.load(b.build(), maps=[m])
    assert prog.test_run(engine="jit").retval == 42
    python_calls.count = 0
    assert prog.test_run(engine="jit").retval == 42
    assert python_calls.count == 0


def test_a_nested_run_on_another_cpu_leaves_the_outer_runs_cpu(python_calls: PythonCalls) -> None:
    """A helper that runs another program of the same VM (on CPU 0) in the middle of a run on CPU 1."""
    vm = Vm(ncpus=2)
    inner = vm.load(Builder().call(Helper.GET_SMP_PROCESSOR_ID).exit().build())

    def run_inner(rt: object, *args: int) -> int:
        return inner.test_run(engine="jit", cpu=0).retval + 100

    vm.register_helper(0x7000, run_inner, "run_inner")
    b = Builder().call(0x7000).mov(R.R6, R.R0).call(Helper.GET_SMP_PROCESSOR_ID).alu("mul", R.R0, 1000)
    outer = vm.load(b.add(R.R0, R.R6).exit().build(), verify=False)
    assert outer.test_run(engine="jit", cpu=1).retval == 1000 + 100
