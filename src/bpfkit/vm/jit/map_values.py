"""Accesses to map values that the JIT proves in bounds by itself, for programs not verified.

The common shape of a map access is a lookup, a NULL check and reads and writes at constant offsets of
the value:

    r1 = map[slots]; r2 = r10 - 4; call bpf_map_lookup_elem
    if r0 == 0 goto out
    r1 = *(u64 *)(r0 + 0); lock *(u64 *)(r0 + 0) += r6

In a program bpfkit's verifier did not check, each such access would go through the inline cache of its
site, and a loop over several elements misses it every time (each value is a region of its own). This
module proves, without the verifier, the accesses that cannot fault, so the compiler emits them
unchecked (`Compiler(proven_safe=...)`). An access is proven when, on the only path that reaches it
from a seed, its base register holds a pointer to the start of a value (plus a known constant) and the
access lies inside the value. Seeds:

  * a call of the VM's own bpf_map_lookup_elem on an ARRAY, PERCPU_ARRAY, HASH or PERCPU_HASH map named
    by an LD_IMM64 into r1 in the same basic block: r0 is NULL or the start of a value (the
    interpreter's region of exactly value_size bytes, which native code sees as the value's real
    address); accesses count only after a `r0 != 0` test (an `if rX == 0` / `if rX != 0` on a register
    holding offset 0);
  * an LD_IMM64 of an array map value (global data): never NULL, at the immediate's offset.

The walk follows the pointer through copies (`rX = rY`) and constant adds, and forgets a register at
any other write. It stops at calls (of any kind), exits, packet loads, may_goto, and at every
instruction that can be reached another way (more than one predecessor). Only a helper call can delete
a hash map's element (native code holds the GIL, so no other Python runs meanwhile), and array elements
are never unmapped at all, so the value stays mapped wherever a proof reaches. Stores and atomics are
proven only for maps that can never become read-only to programs.

The pieces `value_origins` shares with this module are public here: the seeds (`seeds`, `Seed`,
`may_seed`, `lookup_ids`), an access's base register (`access_base`), the register an atomic writes
(`atomic_result`) and the access sizes (`ACCESS_SIZE`).
"""

from __future__ import annotations

from bpfkit._records import record
from bpfkit.isa.instruction import Instruction
from bpfkit.isa.opcodes import Kind
from bpfkit.uapi.insn import ATOMIC_FETCH, AluOp, AtomicOp, InsnClass, JmpOp, PseudoSrc, Source
from bpfkit.vm import helpers
from bpfkit.vm.jit.blockfacts import static_map_address
from bpfkit.vm.jit.cfg import Function, function_graphs, successors
from bpfkit.vm.maps import (
    ArrayMap,
    HashMap,
    LruHashMap,
    LruPercpuHashMap,
    PercpuArrayMap,
    PercpuHashMap,
    VmMap,
    map_by_address,
    maps_in,
)
from bpfkit.vm.memory import AddressSpace
from bpfkit.vm.program import LoadedProgram, Step

BPF_F_RDONLY_PROG = 0x80
ACCESS_SIZE = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}
"""Bytes a load, store or atomic moves, by its size bits (`opcode & 0x18`)."""
_STOPS = frozenset({Kind.CALL, Kind.CALLX, Kind.EXIT, Kind.LD_ABS, Kind.LD_IND, Kind.JCOND})
_ARRAYS = (ArrayMap, PercpuArrayMap)
_HASHES = (HashMap, PercpuHashMap)
# Never proven (their native helpers go through Python), but their values are laid out as hash values:
# `value_origins` must see them to keep a crossing access from reaching a neighbour.
_LRU_HASHES = (LruHashMap, LruPercpuHashMap)


@record
class Seed:
    """An instruction that leaves in `reg` a pointer `offset` bytes into a value of `vm_map` (module
    docstring): a lookup (r0, offset 0, possibly NULL) or an LD_IMM64 of an array map value."""

    slot: int
    vm_map: VmMap
    reg: int
    offset: int
    lookup: bool

    @property
    def size(self) -> int:
        """The value's size."""
        return self.vm_map.value_size

    @property
    def hash(self) -> bool:
        """A hash map's value (a helper may delete it)."""
        return type(self.vm_map) in (*_HASHES, *_LRU_HASHES)


def lookup_ids(loaded: LoadedProgram) -> set[int]:
    """The helper ids at which `loaded` calls the VM's own bpf_map_lookup_elem."""
    return {hid for hid, fn in loaded.helpers.items() if fn is helpers.map_lookup_elem}


def may_seed(loaded: LoadedProgram, lookups: set[int]) -> bool:
    """Whether any instruction of `loaded` may be a seed (else the control-flow work can be spared)."""
    for step in loaded.steps:
        if step is None:
            continue
        if step.kind is Kind.CALL:
            if step.insn.src == 0 and step.insn.imm in lookups:
                return True
        elif step.kind is Kind.LD_IMM64 and step.insn.src in (PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX_VALUE):
            return True
    return False


def seeds(loaded: LoadedProgram, mem: AddressSpace, fn: Function, lookups: set[int], *,
          lru: bool = False) -> dict[int, Seed]:
    """The seeds of the subprogram `fn`, by slot, in slot order (module docstring); `lru` adds the
    lookups of LRU hash maps (whose values are never proven, but must be followed)."""
    kinds = (*_ARRAYS, *_HASHES, *(_LRU_HASHES if lru else ()))
    out: dict[int, Seed] = {}
    steps = loaded.steps
    for slot in fn.order:
        step = steps[slot]
        assert step is not None
        insn = step.insn
        if step.kind is Kind.CALL and insn.src == 0 and insn.imm in lookups:
            address = static_map_address(steps, fn.leaders, slot)
            vm_map = map_by_address(mem, address) if address is not None else None
            if vm_map is not None and type(vm_map) in kinds:
                out[slot] = Seed(slot, vm_map, 0, 0, True)
        elif step.kind is Kind.LD_IMM64 and insn.src in (PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX_VALUE) \
                and step.value is not None and insn.dst != 10:
            region = mem.region_of(step.value)
            owner = _owner(mem, region)
            if owner is not None and region is not None and type(owner) in _ARRAYS:
                out[slot] = Seed(slot, owner, insn.dst, step.value - region.base, False)
    return out


def access_base(step: Step) -> tuple[int, bool] | None:
    """The base register of a load, store or atomic and whether it writes memory; None for others."""
    insn, kind = step.insn, step.kind
    if kind is Kind.LDX:
        return insn.src, False
    if kind in (Kind.ST, Kind.STX):
        return insn.dst, True
    if kind is Kind.ATOMIC:
        return (insn.src, False) if insn.imm == AtomicOp.LOAD_ACQ else (insn.dst, True)
    return None


def atomic_result(insn: Instruction) -> int | None:
    """The register an atomic writes (its loaded or fetched value), or None."""
    if insn.imm == AtomicOp.LOAD_ACQ:
        return insn.dst
    if insn.imm == AtomicOp.CMPXCHG:
        return 0
    if insn.imm & ATOMIC_FETCH:
        return insn.src
    return None


@record
class _Value:
    """The value a walk's pointer points into: its size and whether programs may write it."""

    size: int
    writable: bool


def _map_value(vm_map: VmMap) -> _Value:
    writable = not (vm_map.spec.flags & BPF_F_RDONLY_PROG) and not vm_map.name.endswith(".rodata")
    return _Value(vm_map.value_size, writable)


def proven_value_accesses(loaded: LoadedProgram, mem: AddressSpace) -> frozenset[int]:
    """Slots of `loaded` whose memory access is proven inside a map value (module docstring)."""
    lookups = lookup_ids(loaded)
    out: set[int] = set()
    steps = loaded.steps
    if not may_seed(loaded, lookups):
        return frozenset()  # no seed: spare the control-flow work
    for entry, fn in function_graphs(loaded).items():
        found = seeds(loaded, mem, fn, lookups)
        if not found:
            continue
        preds: dict[int, int] = {entry: 1}  # the caller reaches the entry
        for slot in fn.reach:
            step = steps[slot]
            assert step is not None
            for succ in successors(step):
                preds[succ] = preds.get(succ, 0) + 1
        for slot, seed in found.items():
            _walk(loaded, preds, slot, {seed.reg: seed.offset}, not seed.lookup, _map_value(seed.vm_map), out)
    return frozenset(out)


def _owner(mem: AddressSpace, region: object) -> VmMap | None:
    """The array map whose element 0 is `region` (what BPF_PSEUDO_MAP_VALUE points into)."""
    if region is None:
        return None
    for vm_map in maps_in(mem):
        if vm_map._regions.get((0, 0)) is region:
            return vm_map
    return None


def _walk(loaded: LoadedProgram, preds: dict[int, int], seed: int, regs: dict[int, int], nonnull: bool,
          value: _Value, out: set[int]) -> None:
    """Follow the pointer from the instruction at `seed` (registers -> offset into the value) along
    every path on which each instruction has no other way in; add proven accesses to `out`."""
    steps = loaded.steps
    first = steps[seed]
    assert first is not None
    todo = [(first.next, dict(regs), nonnull)]
    seen: set[int] = set()
    while todo:
        slot, regs, nonnull = todo.pop()
        while regs and slot < loaded.nslots and preds.get(slot, 0) == 1 and slot not in seen:
            seen.add(slot)
            step = steps[slot]
            if step is None or step.kind in _STOPS:
                break
            if step.kind is Kind.JA:
                assert step.target is not None
                slot = step.target
                continue
            if step.kind is Kind.JUMP:
                assert step.target is not None
                tested = _null_test(step, regs)
                if tested is None:  # another test: both sides keep what is known
                    todo.append((step.target, dict(regs), nonnull))
                    slot = step.next
                    continue
                # Only the side where the pointer is not NULL is followed (the other one faults on
                # any access through it, checked).
                todo.append((step.target if tested else step.next, dict(regs), True))
                break
            _access(step, regs, nonnull, value, out)
            _transfer(step, regs)
            slot = step.next


def _null_test(step: Step, regs: dict[int, int]) -> bool | None:
    """For `if rX == 0` / `if rX != 0` on a register at offset 0 of the value: whether the pointer is
    non-NULL where the jump goes (True: `!=`) or where it falls through (False: `==`); else None."""
    insn = step.insn
    op = insn.opcode & 0xF0
    if insn.opcode & Source.X or insn.imm != 0 or regs.get(insn.dst) != 0:
        return None
    if op == JmpOp.JEQ:
        return False
    if op == JmpOp.JNE:
        return True
    return None


def _access(step: Step, regs: dict[int, int], nonnull: bool, value: _Value, out: set[int]) -> None:
    access = access_base(step)
    if access is None:
        return
    base, write = access
    start = regs.get(base)
    if start is None or not nonnull or base == 10 or (write and not value.writable):
        return
    offset = start + step.insn.off
    if 0 <= offset and offset + ACCESS_SIZE[step.insn.opcode & 0x18] <= value.size:
        out.add(step.slot)


def _transfer(step: Step, regs: dict[int, int]) -> None:
    """Update which registers hold the pointer (and at which offset) after `step`."""
    insn, kind = step.insn, step.kind
    if kind is Kind.ALU:
        op, cls = insn.opcode & 0xF0, insn.opcode & 0x07
        src_x = bool(insn.opcode & Source.X)
        if cls == InsnClass.ALU64 and op == AluOp.MOV and src_x and insn.off == 0 and insn.src in regs:
            regs[insn.dst] = regs[insn.src]
        elif cls == InsnClass.ALU64 and op in (AluOp.ADD, AluOp.SUB) and not src_x and insn.dst in regs:
            regs[insn.dst] += insn.imm if op == AluOp.ADD else -insn.imm
        else:
            regs.pop(insn.dst, None)
    elif kind in (Kind.END, Kind.LDX, Kind.LD_IMM64):
        regs.pop(insn.dst, None)
    elif kind is Kind.ATOMIC:
        written = atomic_result(insn)
        if written is not None:
            regs.pop(written, None)
