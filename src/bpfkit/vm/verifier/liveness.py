"""Which registers each instruction may still read: a backward data-flow pass over the CFG.

The exploration compares states at prune points; a register no later instruction reads cannot make
two states behave differently, so it is left out of the comparison (the kernel learns the same from
its read marks). Over-approximating liveness is safe: a register wrongly thought live only makes
pruning rarer.
"""

from __future__ import annotations

from bpfkit.isa.opcodes import Kind
from bpfkit.uapi.insn import ATOMIC_FETCH, AluOp, AtomicOp
from bpfkit.vm.verifier.cfg import Op, Program, alu_op, is_x

ARGS = 0b111110  # r1..r5
CALLER_SAVED = 0b111111  # r0..r5


def _bit(reg: int) -> int:
    return 1 << reg


def uses_defs(op: Op) -> tuple[int, int]:
    """(registers read, registers written) by one instruction, as bit masks."""
    insn, kind = op.insn, op.kind
    dst, src = _bit(insn.dst), _bit(insn.src)
    if kind is Kind.ALU:
        read = 0 if alu_op(insn) is AluOp.MOV else dst
        if is_x(insn) and alu_op(insn) is not AluOp.NEG:
            read |= src
        return read, dst
    if kind is Kind.END:
        return dst, dst
    if kind is Kind.LD_IMM64:
        return 0, dst
    if kind in (Kind.LD_ABS, Kind.LD_IND):
        read = _bit(6) | (src if kind is Kind.LD_IND else 0)
        return read, CALLER_SAVED
    if kind is Kind.LDX:
        return src, dst
    if kind is Kind.ST:
        return dst, 0
    if kind is Kind.STX:
        return dst | src, 0
    if kind is Kind.ATOMIC:
        if insn.imm == AtomicOp.LOAD_ACQ:
            return src, dst
        if insn.imm == AtomicOp.CMPXCHG:
            return dst | src | 1, 1
        return dst | src, src if insn.imm & ATOMIC_FETCH else 0
    if kind is Kind.JUMP:
        return dst | (src if is_x(insn) else 0), 0
    if kind in (Kind.CALL, Kind.CALLX):
        return ARGS | (dst if kind is Kind.CALLX else 0), CALLER_SAVED
    if kind is Kind.EXIT:
        return 1, 0
    return 0, 0


def live_in(prog: Program) -> list[int]:
    """Registers live on entry to each slot (bit i: ri). Calls read r1..r5; callees are separate."""
    n = prog.nslots
    info: list[tuple[int, int, list[int]]] = []
    for op in prog.ops:
        if op is None:
            info.append((0, 0, []))
            continue
        read, write = uses_defs(op)
        succs: list[int] = []
        if op.kind is Kind.JA:
            assert op.target is not None
            succs = [op.target]
        elif op.kind is not Kind.EXIT:
            succs = [op.next] if op.next < n else []
            if op.is_cond and op.target is not None:
                succs.append(op.target)
        info.append((read, write, succs))
    live = [0] * n
    changed = True
    while changed:
        changed = False
        for slot in range(n - 1, -1, -1):
            read, write, succs = info[slot]
            out = 0
            for s in succs:
                out |= live[s]
            new = read | (out & ~write)
            if new != live[slot]:
                live[slot] = new
                changed = True
    return live

