"""Map value accesses the JIT proves in bounds itself (`bpfkit.vm.jit.map_values`), in programs
loaded without bpfkit's verifier: the proven ones compile unchecked, everything else keeps its check,
and every run gives what the interpreter gives (r0, map contents, or the same VmMemoryError).

Accesses that leave the value into a neighbouring one that is mapped too (array elements are
contiguous in host memory; hash values may be) fault under the JIT exactly as in the interpreter
(`bpfkit.vm.jit.value_origins`), however the pointer got there: constant offsets, scalar adds, paths
that meet, spills to the stack and reloads (what may overwrite a spill makes the JIT forget it).

Random programs (neighbouring values looked up or not, then a lookup, copies, constant and scalar
adds, NULL tests, branches, calls, clobbers, spills, reloads, stack stores and accesses at offsets
around the value) run in a child
process (`python test_map_values.py random`), so that an unsound proof that crashes native code fails
the test instead of killing pytest.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.errors import BpfkitError
from bpfkit.isa import Builder
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import Helper, MapType
from bpfkit.uapi.insn import AtomicOp, PseudoSrc, Reg
from bpfkit.vm import Vm
from bpfkit.vm.jit import jit_supported, program_for, runtime_for
from bpfkit.vm.jit.map_values import proven_value_accesses
from bpfkit.vm.jit.value_origins import ValueOrigins, value_origins
from bpfkit.vm.machine import VmProgram
from bpfkit.vm.maps import HashMap, VmMap

R = Reg
ARRAY = MapSpec(MapType.ARRAY, 4, 16, 8, name="arr")

pytestmark = pytest.mark.skipif(jit_supported() is not None, reason=f"no JIT here: {jit_supported()}")


def lookup(b: Builder, index: int | Reg, name: str = "m") -> Builder:
    """r0 = bpf_map_lookup_elem(&name, &index) (the key at r10 - 4)."""
    if isinstance(index, Reg):
        b.stx(4, R.R10, -4, index)
    else:
        b.st(4, R.R10, -4, index)
    return b.ld_map(R.R1, name).mov(R.R2, R.R10).add(R.R2, -4).call(Helper.MAP_LOOKUP_ELEM)


def value_of(key: int, size: int) -> bytes:
    """The value `fill_map` gives `key` (key 1: bytes 1, 2, 3...; every key different)."""
    return bytes(((key - 1) * size + j + 1) & 0xFF for j in range(size))


def fill_map(m: VmMap, fill: bool) -> None:
    """Key 1, or (`fill`) every key 0 .. max_entries - 1, set to `value_of` the key."""
    for key in range(m.max_entries) if fill else (1,):
        m.update(key.to_bytes(4, "little"), value_of(key, m.value_size))


def outcome(vm: Vm, m: VmMap, b: Builder, engine: str) -> tuple[VmProgram, tuple[Any, ...]]:
    """The program loaded unverified, and ("ok", r0) or ("error", type, message) and the map's
    contents after one run of it."""
    prog = vm.load(b.build(), relocations=b.relocations, maps={"m": m}, verify=False)
    try:
        result: tuple[Any, ...] = ("ok", prog.test_run(engine=engine).retval)  # type: ignore[arg-type]
    except BpfkitError as err:
        result = ("error", type(err).__name__, str(err))
    return prog, (*result, sorted(m.items()))


class Run:
    """One program on two fresh VMs, interpreter and JIT, loaded without verification. `fill` sets
    every key of the map (else only key 1)."""

    def __init__(self, b: Builder, spec: MapSpec = ARRAY, setup: Callable[[Vm], None] | None = None, *,
                 same_message: bool = True, fill: bool = False) -> None:
        self.outcomes: dict[str, tuple[Any, ...]] = {}
        for engine in ("interp", "jit"):
            vm = Vm(seed=1)
            if setup is not None:
                setup(vm)
            m = vm.create_map(spec)
            fill_map(m, fill)
            prog, self.outcomes[engine] = outcome(vm, m, b, engine)
            if engine == "jit":
                self.proven = proven_value_accesses(prog.loaded, vm.mem)
                found = value_origins(prog.loaded, vm.mem)
                self.origins, self.dynamic = found.offsets, found.dynamic
                self.compiled = program_for(prog.loaded, runtime_for(vm.mem)).compiled
        jit, interp = self.outcomes["jit"], self.outcomes["interp"]
        if same_message:
            assert jit == interp
        else:  # the same error type and map contents; the messages may name different addresses
            assert (jit[:2], jit[-1]) == (interp[:2], interp[-1])

    @property
    def retval(self) -> int:
        result = self.outcomes["jit"]
        assert result[0] == "ok", result
        value = result[1]
        assert isinstance(value, int)
        return value

    @property
    def error(self) -> str:
        result = self.outcomes["jit"]
        assert result[:2] == ("error", "VmMemoryError"), result
        return str(result[2])


def test_lookup_null_check_and_accesses_are_proven() -> None:
    """The benchmark's loop: slots[i & 7] += i over every element, r0 = the sum of the old values."""
    b = Builder().mov(R.R6, 0).mov(R.R7, 0).label("loop").mov(R.R1, R.R6).alu("and", R.R1, 7)
    lookup(b, R.R1).jmp("jeq", R.R0, 0, "next")
    load, atomic = b.slot, b.slot + 2
    b.ldx(8, R.R1, R.R0, 8).add(R.R7, R.R1).atomic(8, AtomicOp.ADD, R.R0, 8, R.R6)
    b.label("next").add(R.R6, 1).jmp("jlt", R.R6, 40, "loop").mov(R.R0, R.R7).exit()
    run = Run(b)
    assert run.proven == {load, atomic}
    assert run.compiled.checked == 0
    values = [0] * 8
    values[1] = int.from_bytes(bytes(range(9, 17)), "little")
    total = 0
    for i in range(40):
        total += values[i & 7]
        values[i & 7] = (values[i & 7] + i) % 2**64
    assert run.retval == total % 2**64


def test_copies_constant_offsets_and_jne_tests_are_followed() -> None:
    b = lookup(Builder(), 1).mov(R.R6, R.R0).add(R.R6, 12).jmp("jne", R.R0, 0, "found").mov(R.R0, 0).exit()
    b.label("found")
    first = b.slot
    b.ldx(4, R.R0, R.R6, -12).ldx(4, R.R1, R.R6, 0).sub(R.R6, 4).st(4, R.R6, 0, 7).add(R.R0, R.R1).exit()
    run = Run(b)
    assert run.proven == {first, first + 1, first + 3}
    low, high = (int.from_bytes(bytes(w), "little") for w in ([1, 2, 3, 4], [13, 14, 15, 16]))
    assert run.retval == low + high


@pytest.mark.parametrize("offset,size", [(16, 1), (12, 8), (-1, 1), (-8, 8)])
def test_accesses_outside_the_value_stay_checked_and_fault(offset: int, size: int) -> None:
    b = lookup(Builder(), 1).jmp("jeq", R.R0, 0, "out")
    slot = b.slot
    b.ldx(size, R.R0, R.R0, offset).label("out").exit()
    run = Run(b)
    assert slot not in run.proven
    assert run.error


def test_a_neighbouring_element_is_not_reachable() -> None:
    """Element 2 is mapped (looked up first); reading past element 1 faults in the interpreter."""
    b = lookup(Builder(), 2).mov(R.R6, R.R0)
    lookup(b, 1).jmp("jeq", R.R0, 0, "out").jmp("jeq", R.R6, 0, "out").ldx(8, R.R0, R.R0, 16)
    b.label("out").exit()
    assert "out of bounds" in Run(b).error


# -- accesses that leave the element into a mapped neighbour -----------------------------------------
ELEMENTS = [ARRAY, MapSpec(MapType.PERCPU_ARRAY, 4, 16, 8, name="pa")]
"""Array maps: their elements (one CPU's copies) are contiguous in host memory."""


def after_neighbours(b: Builder, keys: tuple[int, ...] = (0, 2, 3)) -> Builder:
    """Look up `keys` first: their elements become mapped regions, as element 1's neighbours."""
    for key in keys:
        lookup(b, key)
    return b


SHAPES = {
    # How the base pointer comes from element 1's lookup: (how it is moved, the access's offset).
    "offset": lambda b, off: (b, off),
    "add": lambda b, off: (b.add(R.R0, off), 0),
    "copy, add and sub": lambda b, off: (b.mov(R.R6, R.R0).add(R.R6, off + 24).sub(R.R6, 16).mov(R.R0, R.R6),
                                         -8),
    "join": lambda b, off: (b.mov(R.R1, 3).jmp("jgt", R.R1, 2, "join").add(R.R1, 1).label("join"), off),
    "helper call": lambda b, off: (b.mov(R.R6, R.R0).call(Helper.GET_PRANDOM_U32).mov(R.R0, R.R6), off),
    # The offset is unknown to the JIT: checked against the lookup's last value at run time.
    "scalar add": lambda b, off: (b.ldx(4, R.R1, R.R10, -4).mov(R.R2, off + 8).add(R.R2, R.R1)
                                  .add(R.R0, R.R2).sub(R.R0, 1), -8),
    "paths that differ": lambda b, off: (b.mov(R.R1, 3).jmp("jgt", R.R1, 2, "big").add(R.R0, off - 4)
                                         .ja("join").label("big").add(R.R0, off + 4).label("join"), -4),
    # Through an 8-byte stack slot: r0 is spilled, clobbered and reloaded.
    "spill and reload": lambda b, off: (b.stx(8, R.R10, -16, R.R0).mov(R.R0, 0).ldx(8, R.R0, R.R10, -16),
                                        off),
    "spill, reload, copy and add": lambda b, off: (b.add(R.R0, 8).stx(8, R.R10, -24, R.R0).mov(R.R0, 0)
                                                   .ldx(8, R.R1, R.R10, -24).mov(R.R0, R.R1), off - 8),
    "spill, call and reload": lambda b, off: (b.stx(8, R.R10, -16, R.R0).call(Helper.GET_PRANDOM_U32)
                                              .ldx(8, R.R0, R.R10, -16), off),
    "spill, lookup and reload": lambda b, off: (lookup(b.stx(8, R.R10, -16, R.R0), 2)
                                                .ldx(8, R.R0, R.R10, -16), off),
    # An atomic add of 0 into the value itself (inside it: the frame is left alone) keeps the spill.
    "spill, write the value and reload": lambda b, off: (b.stx(8, R.R10, -16, R.R0).mov(R.R1, 0)
                                                         .atomic(8, AtomicOp.ADD, R.R0, 8, R.R1)
                                                         .ldx(8, R.R0, R.R10, -16), off),
    "spill, reload and scalar add": lambda b, off: (b.stx(8, R.R10, -16, R.R0).ldx(4, R.R1, R.R10, -4)
                                                    .mov(R.R2, off + 8).add(R.R2, R.R1)
                                                    .ldx(8, R.R0, R.R10, -16).add(R.R0, R.R2).sub(R.R0, 1),
                                                    -8),
}
KNOWN = ("offset", "add", "copy, add and sub", "join", "helper call", "spill and reload",
         "spill, reload, copy and add", "spill, call and reload", "spill, lookup and reload",
         "spill, write the value and reload")


def neighbour_program(shape: str, offset: int, size: int) -> Builder:
    """r0 = the `size` bytes at `offset` of element 1 (the pointer moved as `shape` says)."""
    b = lookup(after_neighbours(Builder()), 1).jmp("jeq", R.R0, 0, "out")
    b, off = SHAPES[shape](b, offset)
    return b.ldx(size, R.R0, R.R0, off).label("out").exit()


@pytest.mark.parametrize("spec", ELEMENTS, ids=["array", "percpu_array"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("offset,size", [(16, 8), (16, 1), (12, 8), (20, 4), (31, 1), (-1, 1), (-8, 8),
                                         (-16, 8), (48, 8)])
def test_crossing_into_a_mapped_neighbour_faults_as_in_the_interpreter(spec: MapSpec, shape: str,
                                                                       offset: int, size: int) -> None:
    run = Run(neighbour_program(shape, offset, size), spec, fill=True)
    assert "out of bounds of the map value region" in run.error
    assert run.origins if shape in KNOWN else run.dynamic  # the JIT knew where the pointer came from


@pytest.mark.parametrize("spec", ELEMENTS, ids=["array", "percpu_array"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("offset,size", [(0, 8), (8, 8), (15, 1), (12, 4)])
def test_accesses_inside_the_element_read_its_bytes(spec: MapSpec, shape: str, offset: int,
                                                    size: int) -> None:
    run = Run(neighbour_program(shape, offset, size), spec, fill=True)
    assert run.retval == int.from_bytes(value_of(1, 16)[offset:offset + size], "little")
    assert not run.origins
    assert bool(run.dynamic) == (shape not in KNOWN)


@pytest.mark.parametrize("spec", ELEMENTS, ids=["array", "percpu_array"])
def test_stores_and_atomics_into_a_neighbour_fault_and_leave_it_alone(spec: MapSpec) -> None:
    for emit in (lambda b: b.st(8, R.R0, 16, 7), lambda b: b.stx(4, R.R0, -4, R.R0),
                 lambda b: b.atomic(8, AtomicOp.ADD, R.R0, 16, R.R0)):
        b = lookup(after_neighbours(Builder()), 1).jmp("jeq", R.R0, 0, "out")
        emit(b)
        run = Run(b.label("out").exit(), spec, fill=True)  # the same map contents afterwards, too
        assert "out of bounds" in run.error


def test_without_the_origins_the_jit_would_read_the_neighbour(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the origin sites prevent: element 1 + 16 is element 2's first byte in host memory."""
    from bpfkit.vm.jit import runner
    monkeypatch.setattr(runner, "value_origins", lambda loaded, mem: ValueOrigins())
    vm = Vm(seed=1)
    m = vm.create_map(ARRAY)
    fill_map(m, True)
    _, result = outcome(vm, m, neighbour_program("offset", 16, 8), "jit")
    assert result[:2] == ("ok", int.from_bytes(value_of(2, 16)[:8], "little"))


def test_loops_over_elements_fault_at_the_first_crossing() -> None:
    """Every element mapped, then for i in 0..7: r7 += *(u32 *)(lookup(i) + 8 + 8): the pointer's
    offset is the same on every path around the loop, so the JIT knows the first iteration leaves
    element 0 (for element 1, which is mapped)."""
    b = after_neighbours(Builder(), tuple(range(8))).mov(R.R6, 0).mov(R.R7, 0).label("loop")
    lookup(b, R.R6).jmp("jeq", R.R0, 0, "next").mov(R.R8, R.R0).add(R.R8, 8).ldx(4, R.R1, R.R8, 8)
    b.add(R.R7, R.R1).label("next").add(R.R6, 1).jmp("jlt", R.R6, 8, "loop").mov(R.R0, R.R7).exit()
    assert "out of bounds" in Run(b, fill=True).error


OVERWRITES = {
    # Ways to put r6 (element 1 + 8) into the stack slot at r10 - 16 that held element 1's spill.
    "store through another register": lambda b: b.mov(R.R2, R.R10).add(R.R2, -16).stx(8, R.R2, 0, R.R6),
    "two 4-byte stores": lambda b: b.stx(4, R.R10, -16, R.R6).mov(R.R7, R.R6).alu("rsh", R.R7, 32)
    .stx(4, R.R10, -12, R.R7),
    "store of an unknown register": lambda b: b.mov(R.R7, R.R6).alu("or", R.R7, 0).stx(8, R.R10, -16, R.R7),
    "atomic exchange": lambda b: b.atomic(8, AtomicOp.XCHG, R.R10, -16, R.R6),
    "helper": lambda b: b.stx(8, R.R10, -24, R.R6).mov(R.R1, R.R10).add(R.R1, -16).mov(R.R2, 8)
    .mov(R.R3, R.R10).add(R.R3, -24).call(Helper.PROBE_READ),
    "subprogram": lambda b: b.mov(R.R1, R.R10).add(R.R1, -16).mov(R.R2, R.R6).call_local("sub"),
}


@pytest.mark.parametrize("how", OVERWRITES)
def test_a_spill_is_forgotten_where_its_slot_may_be_overwritten(how: str) -> None:
    """Element 1 is spilled, then its slot gets element 1 + 8 (`how`): the reload is at offset 8, so
    the read at -8 is element 1's first word. Were the spill still believed (offset 0), that read
    would go to Python as 8 bytes before the value and fault."""
    b = lookup(Builder(), 1).jmp("jeq", R.R0, 0, "out").stx(8, R.R10, -16, R.R0).mov(R.R6, R.R0).add(R.R6, 8)
    OVERWRITES[how](b).ldx(8, R.R1, R.R10, -16)
    read = b.slot
    b.ldx(8, R.R0, R.R1, -8).label("out").exit()
    b.label("sub").stx(8, R.R1, 0, R.R2).exit()
    run = Run(b)
    assert run.retval == int.from_bytes(value_of(1, 16)[:8], "little")
    assert read not in run.origins and read not in run.dynamic


def adjacent_hash_values(m: VmMap) -> tuple[int, int, int] | None:
    """Keys k1, k2 of a hash map whose values lie close in host memory, k2's at k1's + delta
    (8 <= delta < 4096), with the smallest such delta; None if no two values are that close."""
    assert isinstance(m, HashMap)
    where = sorted((ctypes.addressof((ctypes.c_char * len(values[0])).from_buffer(values[0])), key)
                   for key, values in m.table.items())
    pairs = [(b - a, ka, kb) for (a, ka), (b, kb) in itertools.pairwise(where) if 8 <= b - a < 4096]
    if not pairs:
        return None
    delta, k1, k2 = min(pairs)
    return int.from_bytes(k1, "little"), int.from_bytes(k2, "little"), delta


HASH_POINTERS = {
    # How the base pointer comes from k1's lookup (r0 after it).
    "direct": lambda b: b,
    "spill and reload": lambda b: b.stx(8, R.R10, -16, R.R0).mov(R.R0, 0).ldx(8, R.R1, R.R10, -16)
    .mov(R.R0, R.R1),
    "spill, call and reload": lambda b: b.stx(8, R.R10, -16, R.R0).call(Helper.KTIME_GET_NS)
    .ldx(8, R.R0, R.R10, -16),
}


@pytest.mark.parametrize("map_type", [MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH,
                                      MapType.LRU_PERCPU_HASH], ids=lambda t: t.name.lower())
@pytest.mark.parametrize("how", HASH_POINTERS)
def test_a_hash_value_next_to_another_in_host_memory_is_not_reachable(map_type: MapType, how: str) -> None:
    """Hash values are separate buffers, but the allocator may put two side by side: reading past
    one (by the distance to the next) faults with the interpreter's message, on a VM set up alike."""
    spec = MapSpec(map_type, 4, 8, 64, name="h")
    jit_vm = Vm(seed=1)
    m = jit_vm.create_map(spec)
    fill_map(m, True)
    found = adjacent_hash_values(m)
    if found is None:
        pytest.skip("no two hash values were allocated within 4 KiB of each other")
    k1, k2, delta = found
    b = HASH_POINTERS[how](lookup(lookup(Builder(), k2), k1).jmp("jeq", R.R0, 0, "out"))
    b.ldx(8, R.R0, R.R0, delta).label("out").exit()
    interp_vm = Vm(seed=1)
    other = interp_vm.create_map(spec)
    fill_map(other, True)
    jit = outcome(jit_vm, m, b, "jit")[1]
    assert jit == outcome(interp_vm, other, b, "interp")[1]
    assert jit[:2] == ("error", "VmMemoryError") and "out of bounds" in jit[2]


def test_no_proof_before_the_null_test_or_on_its_null_side() -> None:
    b = lookup(Builder(), 9)  # out of range: r0 = NULL
    before = b.slot
    b.ldx(8, R.R1, R.R0, 0).exit()
    run = Run(b)
    assert before not in run.proven
    assert "NULL pointer" in run.error
    b = lookup(Builder(), 9).jmp("jne", R.R0, 0, "out")
    null_side = b.slot
    b.ldx(8, R.R0, R.R0, 0).label("out").exit()
    run = Run(b)
    assert null_side not in run.proven
    assert "NULL pointer" in run.error


def test_the_null_side_of_a_jeq_is_not_proven() -> None:
    """Checked statically only (running it unchecked would dereference NULL in native code)."""
    b = lookup(Builder(), 9).jmp("jeq", R.R0, 0, "null").mov(R.R0, 0).exit().label("null")
    null_side = b.slot
    b.ldx(8, R.R0, R.R0, 0).exit()
    vm = Vm()
    m = vm.create_map(ARRAY)
    prog = vm.load(b.build(), relocations=b.relocations, maps={"m": m}, verify=False)
    assert null_side not in proven_value_accesses(prog.loaded, vm.mem)


def test_the_proof_ends_at_calls_writes_and_joins() -> None:
    b = lookup(Builder(), 1).jmp("jeq", R.R0, 0, "out").mov(R.R6, R.R0).mov(R.R7, R.R0)
    b.call(Helper.GET_PRANDOM_U32)
    after_call = b.slot
    b.ldx(1, R.R8, R.R6, 0)
    lookup(b, 1).jmp("jeq", R.R0, 0, "out").mov(R.R6, R.R0).add(R.R6, R.R8)
    after_add = b.slot
    b.ldx(1, R.R1, R.R6, 0)
    lookup(b, 1).jmp("jeq", R.R0, 0, "out").jmp("jgt", R.R1, 100, "join").mov(R.R1, 0)
    b.label("join")
    joined = b.slot
    b.ldx(1, R.R0, R.R0, 0).exit().label("out").mov(R.R0, 0).exit()
    run = Run(b)
    assert {after_call, after_add, joined}.isdisjoint(run.proven)
    assert run.retval == 1


def test_a_two_way_branch_after_the_test_keeps_the_proof_on_both_sides() -> None:
    b = lookup(Builder(), 1).jmp("jeq", R.R0, 0, "out").ldx(1, R.R1, R.R0, 3).jmp("jgt", R.R1, 2, "big")
    small = b.slot
    b.ldx(1, R.R0, R.R0, 4).exit().label("big")
    big = b.slot
    b.ldx(1, R.R0, R.R0, 5).exit().label("out").exit()
    run = Run(b)
    assert {small, big} <= run.proven
    assert run.retval == 6


def test_stores_into_a_read_only_map_stay_checked() -> None:
    spec = MapSpec(MapType.ARRAY, 4, 8, 2, flags=0x80, name="ro")  # BPF_F_RDONLY_PROG
    b = lookup(Builder(), 1).jmp("jeq", R.R0, 0, "out")
    load = b.slot
    b.ldx(8, R.R1, R.R0, 0)
    store = b.slot
    b.st(8, R.R0, 0, 5).label("out").exit()
    run = Run(b, spec)
    assert load in run.proven and store not in run.proven
    assert "read-only" in run.error


def test_hash_map_values_are_proven_until_a_call() -> None:
    """After bpf_map_delete_elem the saved pointer's value is gone: that access stays checked and
    faults as in the interpreter."""
    spec = MapSpec(MapType.HASH, 4, 8, 4, name="h")
    b = lookup(Builder(), 1).jmp("jeq", R.R0, 0, "out").mov(R.R6, R.R0)
    before = b.slot
    b.ldx(8, R.R7, R.R6, 0).ld_map(R.R1, "m").mov(R.R2, R.R10).add(R.R2, -4).call(Helper.MAP_DELETE_ELEM)
    after = b.slot
    b.ldx(8, R.R0, R.R6, 0).label("out").exit()
    # (The JIT names the freed buffer's host address, the interpreter the value's old fake address.)
    run = Run(b, spec, same_message=False)
    assert run.proven == {before}
    assert "no memory is mapped" in run.error
    b = lookup(Builder(), 1).jmp("jeq", R.R0, 0, "out").ldx(8, R.R0, R.R0, 0).label("out").exit()
    run = Run(b, spec)
    assert run.compiled.checked == 0
    assert run.retval == int.from_bytes(bytes(range(1, 9)), "little")
    assert after not in run.proven


def test_other_map_types_are_not_proven() -> None:
    spec = MapSpec(MapType.LRU_HASH, 4, 8, 4, name="l")
    b = lookup(Builder(), 1).jmp("jeq", R.R0, 0, "out").ldx(8, R.R0, R.R0, 0).label("out").exit()
    run = Run(b, spec)
    assert run.proven == set()
    assert run.retval == int.from_bytes(bytes(range(1, 9)), "little")


def test_global_data_is_proven_at_its_offset() -> None:
    b = Builder().ld_imm64(R.R6, 0, PseudoSrc.MAP_VALUE)  # patched below: element 0 of m, offset 8
    inside = b.slot
    b.ldx(8, R.R0, R.R6, 0).st(8, R.R6, 0, 3)
    outside = b.slot
    b.ldx(8, R.R1, R.R6, 8).exit()
    for engine in ("interp", "jit"):
        vm = Vm()
        m = vm.create_map(ARRAY)
        insns = b.build()
        insns[0] = insns[0].__class__(insns[0].opcode, insns[0].dst, insns[0].src, insns[0].off,
                                      m.fd | (8 << 32))
        prog = vm.load(insns, verify=False)
        with pytest.raises(BpfkitError, match="out of bounds"):
            prog.test_run(engine=engine)  # type: ignore[arg-type]
        assert m.lookup(bytes(4))[8:] == (3).to_bytes(8, "little")
        if engine == "jit":
            proven = proven_value_accesses(prog.loaded, vm.mem)
            assert {inside, inside + 1} <= proven and outside not in proven


def test_a_replaced_lookup_helper_proves_nothing() -> None:
    b = lookup(Builder(), 1).jmp("jeq", R.R0, 0, "out").ldx(8, R.R0, R.R0, 0).label("out").exit()
    vm = Vm()
    m = vm.create_map(ARRAY)
    vm.register_helper(Helper.MAP_LOOKUP_ELEM, lambda rt, *args: 0)
    prog = vm.load(b.build(), relocations=b.relocations, maps={"m": m}, verify=False)
    assert proven_value_accesses(prog.loaded, vm.mem) == frozenset()


# -- random programs ----------------------------------------------------------------------------------
POINTERS = (R.R0, R.R6, R.R7, R.R8)
BASES = st.sampled_from((R.R0, R.R0, R.R0, R.R6, R.R7, R.R8))
Op = tuple[Any, ...]
OFFSETS = st.one_of(st.integers(0, 15), st.integers(-20, 24), st.integers(-40, 56))
accesses = st.tuples(st.sampled_from(["load", "store"]), BASES, OFFSETS,
                     st.sampled_from([1, 2, 4, 8]))
SLOTS = st.sampled_from([-16, -24])
stack = st.one_of(  # spills and reloads, and stores that may overwrite (part of) a spill
    st.tuples(st.just("spill"), st.sampled_from(POINTERS), SLOTS),
    st.tuples(st.just("reload"), st.sampled_from(POINTERS), SLOTS),
    st.tuples(st.just("through the stack"), st.sampled_from(POINTERS), st.sampled_from(POINTERS), SLOTS),
    st.tuples(st.just("stack store"), st.sampled_from([-20, -16, -12, -24]), st.sampled_from([4, 8])),
)
ops = st.one_of(
    accesses, accesses, accesses,
    st.tuples(st.just("atomic"), BASES, OFFSETS, st.sampled_from([4, 8])),
    st.tuples(st.just("copy"), st.sampled_from(POINTERS[1:]), st.sampled_from(POINTERS)),
    st.tuples(st.just("add"), st.sampled_from(POINTERS), st.integers(-20, 20)),
    st.tuples(st.just("add scalar"), st.sampled_from(POINTERS), st.integers(-20, 20)),
    st.tuples(st.just("diverge"), st.sampled_from(POINTERS), st.integers(-12, 12), st.integers(-12, 12)),
    st.tuples(st.just("test"), st.sampled_from(POINTERS), st.sampled_from(["jeq", "jne"])),
    st.tuples(st.just("branch"), st.integers(0, 3)),
    st.tuples(st.just("call"),),
    st.tuples(st.just("clobber"), st.sampled_from(POINTERS)),
    stack,
)


def random_program(key: int, tested: bool, steps: list[Op], neighbours: bool = False) -> Builder:
    """r4 sums what the loads read (r1-r5 survive helper calls in the VM); r0 = r4 at every exit.
    `tested`: the lookup is followed by its NULL test (else only a random "test" step makes one).
    `neighbours`: every other key 0..7 is looked up first, so that the values next to `key`'s are
    mapped regions too (accesses that leave the value may land in them in host memory)."""
    b = Builder()
    if neighbours:
        after_neighbours(b, tuple(k for k in range(8) if k != key))
    b.mov(R.R3, 1).mov(R.R4, 0).mov(R.R6, 0).mov(R.R7, 0).mov(R.R8, 0)
    lookup(b, key)
    if tested:
        b.jmp("jeq", R.R0, 0, "out")
    for i, op in enumerate(steps):
        kind = op[0]
        if kind == "copy":
            b.mov(op[1], op[2])
        elif kind == "add":
            b.add(op[1], op[2])
        elif kind == "add scalar":  # an offset the JIT does not know
            b.mov(R.R5, op[2]).add(op[1], R.R5)
        elif kind == "diverge":  # paths that add different offsets meet again
            b.jmp("jgt", R.R4, 1, f"d{i}").add(op[1], op[2]).ja(f"j{i}").label(f"d{i}").add(op[1], op[3])
            b.label(f"j{i}")
        elif kind == "load":
            b.ldx(op[3], R.R1, op[1], op[2]).add(R.R4, R.R1)
        elif kind == "store":
            b.st(op[3], op[1], op[2], 0x5A)
        elif kind == "atomic":
            b.atomic(op[3], AtomicOp.ADD, op[1], op[2], R.R3)
        elif kind == "test" and op[2] == "jeq":
            b.jmp("jeq", op[1], 0, "out")
        elif kind == "test":
            b.jmp("jne", op[1], 0, f"ok{i}").ja("out").label(f"ok{i}")
        elif kind == "branch":  # a diamond on r4: both sides meet again (a join)
            b.jmp("jgt", R.R4, op[1], f"b{i}").add(R.R4, 1).label(f"b{i}")
        elif kind == "call":
            b.call(Helper.GET_PRANDOM_U32)
        elif kind == "spill":
            b.stx(8, R.R10, op[2], op[1])
        elif kind == "reload":  # NULL from a slot never written (the frame starts zeroed)
            b.ldx(8, op[1], R.R10, op[2])
        elif kind == "through the stack":  # a copy by a spill and a reload
            b.stx(8, R.R10, op[3], op[2]).ldx(8, op[1], R.R10, op[3])
        elif kind == "stack store":  # may overwrite (part of) a spill
            b.st(op[2], R.R10, op[1], 0x5A)
        else:
            b.mov(op[1], 5)
    return b.label("out").mov(R.R0, R.R4).exit()


SPECS = [ARRAY, MapSpec(MapType.HASH, 4, 16, 8, name="h"), MapSpec(MapType.PERCPU_ARRAY, 4, 16, 8, name="pa"),
         MapSpec(MapType.PERCPU_HASH, 4, 8, 8, name="ph")]


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.sampled_from(SPECS), st.integers(0, 9), st.booleans(), st.booleans(),
       st.lists(ops, min_size=1, max_size=12))
def _random(spec: MapSpec, key: int, tested: bool, neighbours: bool, steps: list[Op]) -> None:
    """With `neighbours`, every key is set and looked up: the interpreter's verdict on an access that
    leaves the value (fault, with its message) must be the JIT's, whatever lies next to it in host memory."""
    Run(random_program(key, tested, steps, neighbours), spec, fill=neighbours)


def test_random_programs_agree_with_the_interpreter_in_a_subprocess() -> None:
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    proc = subprocess.run([sys.executable, str(Path(__file__)), "random"], capture_output=True, text=True,
                          env=env, timeout=900, check=False)
    assert proc.returncode == 0, (f"child exited with {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
                                  f"\n--- stderr\n{proc.stderr[-8000:]}")
    assert "random: ok" in proc.stdout


if __name__ == "__main__" and sys.argv[1:] == ["random"]:
    _random()
    print("random: ok")
