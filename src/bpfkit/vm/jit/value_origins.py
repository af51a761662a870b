"""Checked accesses that may run out of the map value their base pointer came from, found ahead of
time so that the JIT faults where the interpreter does.

Native code sees map values at their real host addresses, and the elements of an array (one CPU's copy)
are contiguous in host memory: a run-time check that only asks whether an address is mapped lets
`*(u64 *)(r0 + 16)` on a 16-byte element read the next element whenever that one is mapped too (and two
hash values may also lie side by side). The interpreter faults there ("out of bounds"): in its address
space each value is a region of its own, far from any other. Telling the two apart at run time needs
to know which value the base pointer came from.

This module knows it for every pointer derived from one seed by copies and adds: a forward data-flow
over each subprogram's control-flow graph (merging at joins, iterating around loops) tracks, per
register, "the start of the value the seed at slot S gave last, plus d", where d is a constant or
unknown (a run-time scalar was added, or the paths that meet add different constants). Seeds are those
of `map_values`: a call of the VM's own bpf_map_lookup_elem on an ARRAY, PERCPU_ARRAY, HASH or
PERCPU_HASH map named in the same basic block (r0 = NULL or a value's start), and an LD_IMM64 of an
array map value (followed with constant offsets only). A register is forgotten at any other write, at a
call (r0-r5), and, for a hash map's value (which a helper may delete) or an unknown offset (which relies
on the seed's last value: program code that runs meanwhile may run the seed again), at every call but
of the few helpers that run no program code and touch no map.

Two kinds of sites come out (`ValueOrigins`):
  * `offsets`: an access at a constant offset from the value's start that lies (partly) outside the
    value. The compiler sends it straight to Python, which rebuilds the interpreter's fake address from
    the value's start and that offset, so the access does, or faults with, exactly what the
    interpreter does.
  * `dynamic`: an access at an unknown offset from the value of a lookup. Native code keeps the pointer
    each such lookup returns in a data word of the program (`Compiler.shadows`); the site compares the
    address with that value's bounds first, and one that leaves the value goes to Python the same way.
Every other access keeps its ordinary check.
"""

from __future__ import annotations

from bpfkit._records import field, record
from bpfkit.isa.opcodes import Kind
from bpfkit.uapi.insn import ATOMIC_FETCH, AluOp, AtomicOp, InsnClass, PseudoSrc, Source
from bpfkit.vm import helpers
from bpfkit.vm.jit.blockfacts import static_map_address
from bpfkit.vm.jit.compile import _Function, successors
from bpfkit.vm.jit.map_values import _owner
from bpfkit.vm.maps import ArrayMap, HashMap, PercpuArrayMap, PercpuHashMap, map_by_address
from bpfkit.vm.memory import AddressSpace
from bpfkit.vm.program import LoadedProgram, Step

_SIZE = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}
_PURE = frozenset({helpers.get_prandom_u32, helpers.ktime_get_ns, helpers.ktime_get_boot_ns,
                   helpers.ktime_get_coarse_ns, helpers.get_smp_processor_id, helpers.map_lookup_elem})
"""The VM's helpers that run no program code and never unmap a hash map's value (a lookup maps values,
never unmaps one)."""

State = dict[int, tuple[int, int | None, bool]]
"""Register -> (seed slot, offset from the start of a value that seed gave or None: unknown, whether that
value is the one the seed gave last). An unknown offset is only kept for the last value."""


@record
class _Seed:
    offset: int
    """Offset into the value of the pointer the seed gives (0 for a lookup)."""
    size: int
    """The value's size."""
    hash: bool
    """A hash map's value (a helper may delete it)."""
    lookup: bool
    """A lookup (native code can record what it returns: unknown offsets are followed)."""


@record
class ValueOrigins:
    """What `value_origins` found (module docstring)."""

    offsets: dict[int, int] = field(default_factory=dict)
    """Slot -> the access's constant offset from its value's start (outside the value)."""
    dynamic: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Slot -> (seed slot, value size) of an access at an unknown offset from that lookup's last value."""


def value_origins(loaded: LoadedProgram, mem: AddressSpace) -> ValueOrigins:
    """The accesses of `loaded` whose base points into a map value it can name (module docstring)."""
    lookup_ids = {hid for hid, fn in loaded.helpers.items() if fn is helpers.map_lookup_elem}
    pure_ids = {hid for hid, fn in loaded.helpers.items() if fn in _PURE}
    steps = loaded.steps
    out = ValueOrigins()
    if not any(_may_seed(step, lookup_ids) for step in steps):
        return out
    for entry in loaded.functions:
        fn = _Function(loaded, entry)
        seeds = _seeds(loaded, mem, fn, lookup_ids)
        if not seeds:
            continue
        states: dict[int, State] = {entry: {}}
        todo = [entry]
        queued = {entry}
        while todo:
            slot = todo.pop()
            queued.discard(slot)
            step = steps[slot]
            if step is None:
                continue
            regs = dict(states[slot])
            _transfer(step, regs, seeds, pure_ids)
            for succ in successors(step):
                if succ not in fn.reach:
                    continue
                old = states.get(succ)
                new = regs if old is None else _join(old, regs, seeds)
                if old is None or new != old:
                    states[succ] = dict(new)
                    if succ not in queued:
                        queued.add(succ)
                        todo.append(succ)
        for slot, regs in states.items():  # the fixed point: what holds on every path
            step = steps[slot]
            if step is not None:
                _check(step, regs, seeds, out)
    return out


def _join(old: State, new: State, seeds: dict[int, _Seed]) -> State:
    """What holds after a join: the same pointer on both sides, its offset unknown where they differ
    (only for a lookup's value, whose last value native code records)."""
    out: State = {}
    for r, (seed, d, last) in old.items():
        other = new.get(r)
        if other is None or other[0] != seed:
            continue
        if other[1] == d:
            out[r] = (seed, d, last and other[2])
        elif seeds[seed].lookup and last and other[2]:
            out[r] = (seed, None, True)
    return out


def _may_seed(step: Step | None, lookup_ids: set[int]) -> bool:
    if step is None:
        return False
    if step.kind is Kind.CALL:
        return step.insn.src == 0 and step.insn.imm in lookup_ids
    return step.kind is Kind.LD_IMM64 and step.insn.src in (PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX_VALUE)


def _seeds(loaded: LoadedProgram, mem: AddressSpace, fn: _Function, lookup_ids: set[int]) -> dict[int, _Seed]:
    """The seeds of one subprogram, by slot."""
    seeds: dict[int, _Seed] = {}
    steps = loaded.steps
    for slot in fn.order:
        step = steps[slot]
        if step is None:
            continue
        insn = step.insn
        if step.kind is Kind.CALL and insn.src == 0 and insn.imm in lookup_ids:
            address = static_map_address(steps, fn.leaders, slot)
            vm_map = map_by_address(mem, address) if address is not None else None
            if type(vm_map) in (ArrayMap, PercpuArrayMap, HashMap, PercpuHashMap):
                assert vm_map is not None
                seeds[slot] = _Seed(0, vm_map.value_size, type(vm_map) in (HashMap, PercpuHashMap), True)
        elif step.kind is Kind.LD_IMM64 and insn.src in (PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX_VALUE) \
                and step.value is not None and insn.dst != 10:
            region = mem.region_of(step.value)
            owner = _owner(mem, region)
            if type(owner) in (ArrayMap, PercpuArrayMap) and region is not None:
                assert owner is not None
                seeds[slot] = _Seed(step.value - region.base, owner.value_size, False, False)
    return seeds


def _check(step: Step, regs: State, seeds: dict[int, _Seed], out: ValueOrigins) -> None:
    """Record `step` as a site if its base is known and it may leave the value it points into."""
    insn, kind = step.insn, step.kind
    if kind is Kind.LDX:
        base = insn.src
    elif kind in (Kind.ST, Kind.STX):
        base = insn.dst
    elif kind is Kind.ATOMIC:
        base = insn.src if insn.imm == AtomicOp.LOAD_ACQ else insn.dst
    else:
        return
    known = regs.get(base)
    if known is None or base == 10:
        return
    seed, d, _ = known
    value = seeds[seed]
    if d is None:
        out.dynamic[step.slot] = (seed, value.size)
        return
    offset = d + insn.off
    if not (0 <= offset and offset + _SIZE[insn.opcode & 0x18] <= value.size):
        out.offsets[step.slot] = offset


def _transfer(step: Step, regs: State, seeds: dict[int, _Seed], pure_ids: set[int]) -> None:
    """Update which registers hold a value pointer (seed, offset) after `step`."""
    insn, kind = step.insn, step.kind
    seed = seeds.get(step.slot)
    if kind is Kind.ALU:
        op, cls = insn.opcode & 0xF0, insn.opcode & 0x07
        src_x = bool(insn.opcode & Source.X)
        known = regs.get(insn.dst)
        if cls == InsnClass.ALU64 and op == AluOp.MOV and src_x and insn.off == 0 and insn.src in regs:
            regs[insn.dst] = regs[insn.src]
        elif known is None or cls != InsnClass.ALU64 or op not in (AluOp.ADD, AluOp.SUB):
            regs.pop(insn.dst, None)
        elif not src_x:
            s, d, last = known
            delta = insn.imm if op == AluOp.ADD else -insn.imm
            regs[insn.dst] = (s, None if d is None else d + delta, last)
        elif insn.src not in regs and insn.src != 10 and seeds[known[0]].lookup and known[2]:  # + a scalar
            regs[insn.dst] = (known[0], None, True)
        else:
            regs.pop(insn.dst, None)
    elif kind in (Kind.END, Kind.LDX):
        regs.pop(insn.dst, None)
    elif kind is Kind.LD_IMM64:
        regs.pop(insn.dst, None)
        if seed is not None:
            regs[insn.dst] = (step.slot, seed.offset, False)
    elif kind is Kind.ATOMIC:
        if insn.imm == AtomicOp.LOAD_ACQ:
            regs.pop(insn.dst, None)
        elif insn.imm == AtomicOp.CMPXCHG:
            regs.pop(0, None)
        elif insn.imm & ATOMIC_FETCH:
            regs.pop(insn.src, None)
    elif kind in (Kind.CALL, Kind.CALLX, Kind.LD_ABS, Kind.LD_IND):
        for r in range(6):
            regs.pop(r, None)
        if not (kind is Kind.CALL and insn.src == 0 and insn.imm in pure_ids):
            for r, (s, d, _) in list(regs.items()):  # a hash value may be gone, a seed may run again
                if seeds[s].hash or d is None:
                    del regs[r]
                else:
                    regs[r] = (s, d, False)
        if seed is not None:  # a lookup: its earlier values are no longer "the last"
            for r, (s, d, _) in list(regs.items()):
                if s == step.slot:
                    if d is None:
                        del regs[r]
                    else:
                        regs[r] = (s, d, False)
            regs[0] = (step.slot, 0, True)
