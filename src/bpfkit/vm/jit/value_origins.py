"""Checked accesses that may run out of the map value their base pointer came from, found ahead of
time so that the JIT faults where the interpreter does.

Native code sees map values at their real host addresses, and the elements of an array (one CPU's copy)
are contiguous in host memory: a run-time check that only asks whether an address is mapped lets
`*(u64 *)(r0 + 16)` on a 16-byte element read the next element whenever that one is mapped too (and two
hash values may also lie side by side). The interpreter faults there ("out of bounds"): in its address
space each value is a region of its own, far from any other. Telling the two apart at run time needs
to know which value the base pointer came from.

This module knows it for every pointer derived from one seed by copies, adds and stack spills: a
forward data-flow over each subprogram's control-flow graph (merging at joins, iterating around loops)
tracks, per register and per 8-byte stack slot (r10 + a constant), "the start of the value the seed at
slot S gave last, plus d", where d is a constant or unknown (a run-time scalar was added, or the paths
that meet add different constants). Seeds are those of `map_values.seeds`: a call of the VM's own
bpf_map_lookup_elem on an ARRAY, PERCPU_ARRAY, HASH or PERCPU_HASH map named in the same basic block
(r0 = NULL or a value's start), and an LD_IMM64 of an array map value (followed with constant offsets
only). A register is forgotten at any other write, at a call (r0-r5), and, for a hash map's value
(which a helper may delete) or an unknown offset (which relies on the seed's last value: program code
that runs meanwhile may run the seed again), at every call but of the few helpers that run no program
code and touch no map. A stack slot holds what an 8-byte store of a known register through r10 left
there, read back by an 8-byte load through r10 at the same offset; it is forgotten at any other store
that overlaps it, at every store or atomic through another base register (which may point into the
frame), and at every call but of those few helpers (a helper or subprogram may write the frame through
a pointer argument).

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
from bpfkit.uapi.insn import MAX_BPF_STACK, AluOp, InsnClass, Source
from bpfkit.vm import helpers
from bpfkit.vm.jit.cfg import function_graphs, successors
from bpfkit.vm.jit.map_values import (
    ACCESS_SIZE,
    Seed,
    access_base,
    atomic_result,
    lookup_ids,
    may_seed,
    seeds,
)
from bpfkit.vm.memory import AddressSpace
from bpfkit.vm.program import LoadedProgram, Step

_PURE = frozenset({helpers.get_prandom_u32, helpers.ktime_get_ns, helpers.ktime_get_boot_ns,
                   helpers.ktime_get_coarse_ns, helpers.get_smp_processor_id, helpers.map_lookup_elem})
"""The VM's helpers that run no program code, never unmap a hash map's value (a lookup maps values,
never unmaps one) and never write the stack (a lookup only reads its key)."""

State = dict[int, tuple[int, int | None, bool]]
"""Register (0-10), or stack slot (its offset from r10, negative) -> (seed slot, offset from the start of
a value that seed gave or None: unknown, whether that value is the one the seed gave last). An unknown
offset is only kept for the last value."""


@record
class ValueOrigins:
    """What `value_origins` found (module docstring)."""

    offsets: dict[int, int] = field(default_factory=dict)
    """Slot -> the access's constant offset from its value's start (outside the value)."""
    dynamic: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Slot -> (seed slot, value size) of an access at an unknown offset from that lookup's last value."""


def value_origins(loaded: LoadedProgram, mem: AddressSpace) -> ValueOrigins:
    """The accesses of `loaded` whose base points into a map value it can name (module docstring)."""
    lookups = lookup_ids(loaded)
    pure_ids = {hid for hid, fn in loaded.helpers.items() if fn in _PURE}
    steps = loaded.steps
    out = ValueOrigins()
    if not may_seed(loaded, lookups):
        return out
    for entry, fn in function_graphs(loaded).items():
        found = seeds(loaded, mem, fn, lookups, lru=True)
        if not found:
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
            _transfer(step, regs, found, pure_ids)
            for succ in successors(step):
                if succ not in fn.reach:
                    continue
                old = states.get(succ)
                new = regs if old is None else _join(old, regs, found)
                if old is None or new != old:
                    states[succ] = dict(new)
                    if succ not in queued:
                        queued.add(succ)
                        todo.append(succ)
        for slot, regs in states.items():  # the fixed point: what holds on every path
            step = steps[slot]
            if step is not None:
                _check(step, regs, found, out)
    return out


def _join(old: State, new: State, found: dict[int, Seed]) -> State:
    """What holds after a join: the same pointer on both sides, its offset unknown where they differ
    (only for a lookup's value, whose last value native code records)."""
    out: State = {}
    for r, (seed, d, last) in old.items():
        other = new.get(r)
        if other is None or other[0] != seed:
            continue
        if other[1] == d:
            out[r] = (seed, d, last and other[2])
        elif found[seed].lookup and last and other[2]:
            out[r] = (seed, None, True)
    return out


def _check(step: Step, regs: State, found: dict[int, Seed], out: ValueOrigins) -> None:
    """Record `step` as a site if its base is known and it may leave the value it points into."""
    access = access_base(step)
    if access is None:
        return
    base = access[0]
    known = regs.get(base)
    if known is None or base == 10:
        return
    seed, d, _ = known
    value = found[seed]
    if d is None:
        out.dynamic[step.slot] = (seed, value.size)
    elif not _inside(step, d, value):
        out.offsets[step.slot] = d + step.insn.off


def _inside(step: Step, d: int, value: Seed) -> bool:
    """Whether the access of `step` through a pointer `d` bytes into `value` stays inside it."""
    offset = d + step.insn.off
    return 0 <= offset and offset + ACCESS_SIZE[step.insn.opcode & 0x18] <= value.size


def _spill_slot(step: Step) -> int | None:
    """The stack slot (offset from r10) an 8-byte load or store through r10 moves, if inside the frame."""
    insn = step.insn
    base = insn.src if step.kind is Kind.LDX else insn.dst
    if base == 10 and insn.opcode & 0x18 == 0x18 and -MAX_BPF_STACK <= insn.off <= -8:
        return int(insn.off)
    return None


def _store(step: Step, regs: State, found: dict[int, Seed]) -> None:
    """Forget the stack slots a store or atomic may write, then record a spill."""
    base = step.insn.dst
    if base == 10:
        _forget_stack(regs, step.insn.off, ACCESS_SIZE[step.insn.opcode & 0x18])
        slot = _spill_slot(step)
        known = regs.get(step.insn.src) if step.kind is Kind.STX else None
        if slot is not None and known is not None:
            regs[slot] = known
        return
    known = regs.get(base)
    if known is None or known[1] is None or not _inside(step, known[1], found[known[0]]):
        _forget_stack(regs)  # the base may point into the frame


def _forget_stack(regs: State, start: int | None = None, size: int = 0) -> None:
    """Forget the stack slots a write of `size` bytes at r10 + `start` overlaps (every slot if `start`
    is None: a write that may land anywhere in the frame)."""
    for key in [k for k in regs if k < 0]:
        if start is None or (key < start + size and start < key + 8):
            del regs[key]


def _transfer(step: Step, regs: State, found: dict[int, Seed], pure_ids: set[int]) -> None:
    """Update which registers and stack slots hold a value pointer (seed, offset) after `step`."""
    insn, kind = step.insn, step.kind
    seed = found.get(step.slot)
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
        elif insn.src not in regs and insn.src != 10 and found[known[0]].lookup and known[2]:  # + a scalar
            regs[insn.dst] = (known[0], None, True)
        else:
            regs.pop(insn.dst, None)
    elif kind is Kind.LDX:
        slot = _spill_slot(step)
        spilled = regs.get(slot) if slot is not None else None
        if spilled is None:
            regs.pop(insn.dst, None)
        else:  # a reload of a spilled pointer
            regs[insn.dst] = spilled
    elif kind in (Kind.ST, Kind.STX):
        _store(step, regs, found)
    elif kind is Kind.END:
        regs.pop(insn.dst, None)
    elif kind is Kind.LD_IMM64:
        regs.pop(insn.dst, None)
        if seed is not None:
            regs[insn.dst] = (step.slot, seed.offset, False)
    elif kind is Kind.ATOMIC:
        access = access_base(step)
        if access is not None and access[1]:  # an atomic never spills: it only forgets what it writes
            _store(step, regs, found)
        written = atomic_result(insn)
        if written is not None:
            regs.pop(written, None)
    elif kind in (Kind.CALL, Kind.CALLX, Kind.LD_ABS, Kind.LD_IND):
        for r in range(6):
            regs.pop(r, None)
        if not (kind is Kind.CALL and insn.src == 0 and insn.imm in pure_ids):
            _forget_stack(regs)  # a helper or subprogram may write the frame through a pointer
            for r, (s, d, _) in list(regs.items()):  # a hash value may be gone, a seed may run again
                if found[s].hash or d is None:
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
