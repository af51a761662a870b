"""Facts about a register at one instruction that hold on every path, read off the instructions before it
in the same basic block (no jump lands between them, so nothing else runs in between): which map an
LD_IMM64 left in r1 for a helper call, and which stack slot a key pointer (r10 + constant) names.
The native helpers (`fastcalls`) use them to leave out run-time checks.
"""

from __future__ import annotations

from bpfkit.isa.opcodes import Kind
from bpfkit.uapi.insn import AluOp, InsnClass, PseudoSrc, Source
from bpfkit.vm.program import Step

_WRITERS = (Kind.ALU, Kind.END, Kind.LDX, Kind.LD_IMM64)
"""Kinds that write their dst register (atomics and calls end every walk here)."""
_ENDS = (Kind.CALL, Kind.CALLX, Kind.ATOMIC, Kind.LD_ABS, Kind.LD_IND)


def _previous(steps: list[Step | None], leaders: set[int], slot: int) -> Step | None:
    """The instruction that runs just before `slot` on every path, or None at a block's start."""
    if slot in leaders:
        return None
    prev = slot - 1 if slot >= 1 and steps[slot - 1] is not None else slot - 2
    step = steps[prev] if prev >= 0 else None
    return step if step is not None and step.next == slot else None


def static_map_address(steps: list[Step | None], leaders: set[int], pc: int) -> int | None:
    """The address an LD_IMM64 of a map (BPF_PSEUDO_MAP_FD / MAP_IDX) leaves in r1 for the instruction
    at `pc`, when it does so in the same basic block with nothing writing r1 in between; else None."""
    step = _previous(steps, leaders, pc)
    while step is not None:
        insn = step.insn
        if step.kind is Kind.LD_IMM64 and insn.dst == 1:
            if insn.src not in (PseudoSrc.MAP_FD, PseudoSrc.MAP_IDX) or step.value is None:
                return None
            return step.value
        if step.kind in _ENDS or (step.kind in _WRITERS and insn.dst == 1):
            return None
        step = _previous(steps, leaders, step.slot)
    return None


def frame_offset(steps: list[Step | None], leaders: set[int], pc: int, reg: int) -> int | None:
    """The constant c with `reg` = r10 + c at the instruction at `pc`, when `reg = r10` and constant
    adds and subtracts set it in the same basic block; else None."""
    total = 0
    step = _previous(steps, leaders, pc)
    while step is not None:
        insn, kind = step.insn, step.kind
        if kind in _ENDS:
            return None
        if kind in _WRITERS and insn.dst == reg:
            op, cls, src_x = insn.opcode & 0xF0, insn.opcode & 0x07, bool(insn.opcode & Source.X)
            if kind is not Kind.ALU or cls != InsnClass.ALU64:
                return None
            if op == AluOp.MOV and src_x and insn.src == 10 and insn.off == 0:
                return total
            if op not in (AluOp.ADD, AluOp.SUB) or src_x:
                return None
            total += insn.imm if op == AluOp.ADD else -insn.imm
        step = _previous(steps, leaders, step.slot)
    return None
