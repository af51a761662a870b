"""Structure checks done before any value is tracked (the kernel's check_subprogs and check_cfg).

`Program.layout` puts instructions at their slots and refuses invalid encodings; `check_structure`
finds the subprograms (targets of bpf-to-bpf calls and of function-pointer loads), checks that every
jump stays inside its subprogram, lands on an instruction and never in the middle of an LD_IMM64,
that each subprogram ends in `exit` or `goto` (no path falls off its end), that every instruction is
reachable, and that the static call graph is neither recursive nor deeper than MAX_CALL_FRAMES.
`check_stack_depth` then checks the stack the analysis measured against the 512-byte limit of a
whole call chain (the kernel's check_max_stack_depth).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping

from bpfkit._records import record
from bpfkit.isa.instruction import Instruction
from bpfkit.isa.opcodes import OPCODES, Kind, field_error
from bpfkit.uapi.insn import MAX_BPF_STACK, MAX_CALL_FRAMES, AluOp, InsnClass, JmpOp, PseudoCall, PseudoSrc
from bpfkit.vm.verifier.errors import Refusal

ALU_OPS: dict[int, AluOp] = {int(op): op for op in AluOp}
"""opcode & 0xF0 -> ALU operation (a dict lookup: the hot paths avoid constructing enums)."""
JMP_OPS: dict[int, JmpOp] = {int(op): op for op in JmpOp}
"""opcode & 0xF0 -> jump operation."""


def alu_op(insn: Instruction) -> AluOp:
    return ALU_OPS[insn.opcode & 0xF0]


def jmp_op(insn: Instruction) -> JmpOp:
    return JMP_OPS[insn.opcode & 0xF0]


def is_x(insn: Instruction) -> bool:
    """The source operand is a register (BPF_X), not the immediate."""
    return bool(insn.opcode & 0x08)


@record
class Op:
    """An instruction at its slot with its opcode-table kind and resolved target."""

    slot: int
    insn: Instruction
    kind: Kind
    target: int | None = None
    """Jump, may_goto and local-call target; for a function-pointer LD_IMM64, the function."""

    @property
    def next(self) -> int:
        return self.slot + self.insn.width

    @property
    def is_local_call(self) -> bool:
        return self.kind is Kind.CALL and self.insn.src == PseudoCall.CALL

    @property
    def is_func_load(self) -> bool:
        return self.kind is Kind.LD_IMM64 and self.insn.src == PseudoSrc.FUNC

    @property
    def is_cond(self) -> bool:
        return self.kind in (Kind.JUMP, Kind.JCOND)


class Program:
    """The instructions by slot, with subprogram boundaries once `check_structure` has run."""

    def __init__(self, ops: list[Op | None]) -> None:
        self.ops = ops
        self.nslots = len(ops)
        self.subprogs: list[int] = [0]
        """Entry slots of the subprograms, sorted; subprogram i spans [subprogs[i], subprogs[i+1])."""
        self.calls: dict[int, set[int]] = {}
        """Subprogram entry -> entries it calls (or loads as a callback)."""
        self.prune_points: set[int] = set()

    @staticmethod
    def layout(insns: Iterable[Instruction]) -> Program:
        ops: list[Op | None] = []
        for insn in insns:
            slot = len(ops)
            if not isinstance(insn, Instruction):
                raise Refusal(slot, f"expected an Instruction, got {type(insn).__name__}")
            imm = insn.imm
            if insn.width == 2:
                lo = imm & 0xFFFFFFFF
                imm = lo - (1 << 32) if lo >> 31 else lo
            err = field_error(insn.opcode, insn.dst, insn.src, insn.off, imm)
            if err:
                raise Refusal(slot, f"invalid instruction: {err}",
                              "use an encoding from the instruction set (see bpfkit.isa.OPCODES)")
            ops.append(Op(slot, insn, OPCODES[insn.opcode].kind))
            if insn.width == 2:
                ops.append(None)
        if not ops:
            raise Refusal(-1, "the program has no instructions", "give the program at least an exit")
        return Program(ops)

    def op(self, slot: int) -> Op:
        op = self.ops[slot]
        assert op is not None
        return op

    def subprog_of(self, slot: int) -> int:
        """The entry slot of the subprogram holding `slot`."""
        return self.subprogs[bisect.bisect_right(self.subprogs, slot) - 1]

    def subprog_end(self, entry: int) -> int:
        i = self.subprogs.index(entry)
        return self.subprogs[i + 1] if i + 1 < len(self.subprogs) else self.nslots


def _target(op: Op) -> int | None:
    insn, kind = op.insn, op.kind
    if kind in (Kind.JUMP, Kind.JCOND) or (kind is Kind.JA and insn.cls is InsnClass.JMP):
        return op.slot + 1 + insn.off
    if kind is Kind.JA:
        return op.slot + 1 + insn.imm
    if op.is_local_call:
        return op.slot + 1 + insn.imm
    if op.is_func_load:
        lo = insn.imm & 0xFFFFFFFF
        return op.slot + 1 + (lo - (1 << 32) if lo >> 31 else lo)
    return None


def check_structure(prog: Program) -> None:
    """Resolve targets and run the structure checks; raise `Refusal` on the first failure."""
    ops = prog.ops
    entries = {0}
    for i, op in enumerate(ops):
        if op is None:
            continue
        target = _target(op)
        if target is None:
            continue
        what = "call" if op.is_local_call else "function pointer" if op.is_func_load else "jump"
        if not 0 <= target < prog.nslots:
            raise Refusal(i, f"{what} out of range from insn {i} to {target}",
                          "make the offset land on an instruction of the program")
        if ops[target] is None:
            raise Refusal(i, f"jump into the middle of ldimm64 insn {target - 1}",
                          "a jump must land on the first slot of a 64-bit immediate load")
        ops[i] = Op(op.slot, op.insn, op.kind, target)
        if op.is_local_call or op.is_func_load:
            entries.add(target)
    prog.subprogs = sorted(entries)
    for entry in prog.subprogs:
        _check_subprog(prog, entry)
    _check_reachable(prog)
    _check_call_graph(prog)


def _check_subprog(prog: Program, entry: int) -> None:
    end = prog.subprog_end(entry)
    calls: set[int] = set()
    last = None
    for slot in range(entry, end):
        op = prog.ops[slot]
        if op is None:
            continue
        last = op
        if op.is_local_call or op.is_func_load:
            assert op.target is not None
            calls.add(op.target)
        elif op.target is not None and not entry <= op.target < end:
            raise Refusal(slot, f"jump out of range from insn {slot} to {op.target}",
                          "jumps cannot leave their function: call it (call pc+N) instead")
    assert last is not None
    if last.kind not in (Kind.EXIT, Kind.JA):
        raise Refusal(last.slot, "last insn is not an exit or jmp",
                      "end every function with `exit` (or a `goto` back into it) so that no path "
                      "runs off its end")
    prog.calls[entry] = calls


def _successors(op: Op) -> list[int]:
    if op.kind is Kind.EXIT:
        return []
    if op.kind is Kind.JA:
        assert op.target is not None
        return [op.target]
    out = [op.next]
    if op.is_cond:
        assert op.target is not None
        out.append(op.target)
    if op.is_local_call or op.is_func_load:
        assert op.target is not None
        out.append(op.target)
    return out


def _check_reachable(prog: Program) -> None:
    seen = [False] * prog.nslots
    todo = [0]
    seen[0] = True
    prune = prog.prune_points
    while todo:
        slot = todo.pop()
        op = prog.op(slot)
        succs = _successors(op)
        if op.kind in (Kind.JA, Kind.JUMP, Kind.JCOND) and op.target is not None:
            prune.add(op.target)
            if op.is_cond:
                prune.add(op.next)
        if op.kind is Kind.CALL:
            prune.add(slot)
        for nxt in succs:
            if not seen[nxt]:
                seen[nxt] = True
                todo.append(nxt)
    for slot, maybe in enumerate(prog.ops):
        if maybe is not None and not seen[slot]:
            raise Refusal(slot, f"unreachable insn {slot}",
                          "remove the instructions no path reaches (or the jump that skips them)")


def _check_call_graph(prog: Program) -> None:
    """Refuse recursion and static call chains deeper than MAX_CALL_FRAMES."""

    def walk(chain: list[int]) -> None:
        if len(chain) > MAX_CALL_FRAMES:
            raise Refusal(chain[-1], f"the call stack of {len(chain)} frames is too deep",
                          f"bpf-to-bpf calls may nest at most {MAX_CALL_FRAMES} frames deep")
        for callee in sorted(prog.calls[chain[-1]]):
            if callee in chain:
                raise Refusal(_call_slot(prog, chain[-1], callee),
                              f"recursive call to the function at insn {callee}",
                              "eBPF functions cannot call themselves, directly or indirectly")
            walk([*chain, callee])

    walk([0])


def _call_slot(prog: Program, entry: int, callee: int) -> int:
    """The first instruction of function `entry` that calls (or loads) `callee`."""
    for slot in range(entry, prog.subprog_end(entry)):
        op = prog.ops[slot]
        if op is not None and op.target == callee and (op.is_local_call or op.is_func_load):
            return slot
    return entry


def stack_round(depth: int, jit: bool = True) -> int:
    """The stack a frame really takes (round_up_stack_depth: 16 with the JIT, else 32, min 1)."""
    if jit:
        return -(-depth // 16) * 16
    return -(-max(depth, 1) // 32) * 32


def check_stack_depth(prog: Program, depths: Mapping[int, int], jit: bool = True) -> int:
    """The deepest combined stack of any static call chain; refuse it above MAX_BPF_STACK."""
    worst = 0

    def walk(entry: int, total: int, chain: list[int]) -> None:
        nonlocal worst
        total += stack_round(depths.get(entry, 0), jit)
        if total > MAX_BPF_STACK:
            raise Refusal(entry, f"combined stack size of {len(chain)} calls is {total}. Too large",
                          f"the functions of one call chain share {MAX_BPF_STACK} bytes of stack: "
                          f"use less stack, or a per-CPU array map as scratch space")
        worst = max(worst, total)
        for callee in sorted(prog.calls[entry]):
            walk(callee, total, [*chain, callee])

    walk(0, 0, [0])
    return worst
