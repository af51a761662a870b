"""A program prepared for the VM: instructions laid out by slot, checked against the opcode table,
jump and call targets resolved, subprograms found, LD_IMM64 pseudo values resolved.

Checks done here are the structural ones the kernel's verifier does before it looks at values: every
encoding valid (`bpfkit.isa.opcodes.field_error`), every jump and call target inside the program and
not in the middle of an LD_IMM64, every helper known, every map reference resolvable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from bpfkit._records import record
from bpfkit.errors import AsmError, VmError, VmHelperError
from bpfkit.isa.codec import decode
from bpfkit.isa.instruction import Instruction
from bpfkit.isa.opcodes import OPCODES, Kind, field_error
from bpfkit.uapi.insn import ATOMIC_FETCH, AtomicOp, InsnClass, PseudoCall, PseudoSrc
from bpfkit.vm.memory import CODE_BASE
from bpfkit.vm.runtime import HelperFn

U64 = 0xFFFFFFFFFFFFFFFF

PseudoResolver = Callable[[int, Instruction], int]
"""(slot, LD_IMM64 instruction with a map pseudo src) -> the 64-bit value to load."""


@record
class Step:
    """One instruction at its slot, with its opcode-table kind and resolved targets."""

    slot: int
    insn: Instruction
    kind: Kind
    target: int | None = None  # jump / may_goto / local call / FUNC target slot
    value: int | None = None  # LD_IMM64: the 64-bit value loaded

    @property
    def next(self) -> int:
        return self.slot + self.insn.width


_WRITES_DST = frozenset({Kind.ALU, Kind.END, Kind.LD_IMM64, Kind.LDX})


def _writes_r10(insn: Instruction, kind: Kind) -> bool:
    if kind in _WRITES_DST:
        return insn.dst == 10
    if kind is Kind.ATOMIC:
        if insn.imm == AtomicOp.LOAD_ACQ:
            return insn.dst == 10
        return insn.src == 10 and bool(insn.imm & ATOMIC_FETCH) and insn.imm != AtomicOp.CMPXCHG
    return False


TERMINATORS = frozenset({Kind.JUMP, Kind.JA, Kind.JCOND, Kind.EXIT})
"""Kinds that end a basic block."""
SEGMENT_ENDS = frozenset({Kind.CALL, Kind.CALLX, Kind.LD_ABS, Kind.LD_IND})
"""Kinds after which the instruction budget is charged again (they may leave the program early)."""


def code_address(slot: int) -> int:
    """The fake address of instruction slot `slot` (a function pointer)."""
    return CODE_BASE + 8 * slot


class LoadedProgram:
    """Instructions ready to execute. `steps[slot]` is the Step at a slot (None inside an LD_IMM64)."""

    def __init__(self, insns: Iterable[Instruction] | bytes | bytearray | memoryview, *,
                 helpers: Mapping[int, HelperFn] | None = None,
                 resolve_pseudo: PseudoResolver | None = None,
                 name: str = "prog") -> None:
        if isinstance(insns, (bytes, bytearray, memoryview)):
            insns = decode(insns)
        self.name = name
        self.helpers: Mapping[int, HelperFn] = helpers if helpers is not None else {}
        self.cache: dict[str, object] = {}
        """Per-engine translations of this program (the fast engine keeps its compiled code here)."""
        self.proven_safe: frozenset[int] = frozenset()
        """Slots whose memory access the fast engine runs without a bounds check: the verifier's
        `VerifierResult.proven_safe` for the run about to start, set by `VmProgram` (empty for a
        program loaded unverified, so every access stays checked)."""
        self.insns: list[Instruction] = list(insns)
        if not self.insns:
            raise VmError("the program has no instructions")
        steps: list[Step | None] = []
        slot = 0
        for insn in self.insns:
            if not isinstance(insn, Instruction):
                raise AsmError(f"expected an Instruction, got {type(insn).__name__}", index=slot)
            imm = insn.imm
            if insn.width == 2:
                lo = imm & 0xFFFFFFFF
                imm = lo - (1 << 32) if lo >> 31 else lo
            err = field_error(insn.opcode, insn.dst, insn.src, insn.off, imm)
            if err:
                raise AsmError(err, index=slot)
            kind = OPCODES[insn.opcode].kind
            if _writes_r10(insn, kind):
                raise VmError("r10 (the frame pointer) is read-only", slot, insn)
            steps.append(Step(slot, insn, kind))
            if insn.width == 2:
                steps.append(None)
            slot += insn.width
        self.nslots = slot
        self.entries: set[int] = {0}
        for i, step in enumerate(steps):
            if step is not None:
                steps[i] = self._resolve(step, steps, helpers, resolve_pseudo)
        self.steps: list[Step | None] = steps
        self.functions: list[int] = sorted(self.entries)

    def _check_target(self, step: Step, target: int, steps: list[Step | None], what: str) -> int:
        if not 0 <= target < self.nslots:
            raise VmError(f"{what} target {target} is outside the program (0..{self.nslots - 1})",
                          step.slot, step.insn)
        if steps[target] is None:
            raise VmError(f"{what} target {target} is the second half of an LD_IMM64", step.slot, step.insn)
        return target

    def _resolve(self, step: Step, steps: list[Step | None], helpers: Mapping[int, HelperFn] | None,
                 resolve_pseudo: PseudoResolver | None) -> Step:
        insn, kind, slot = step.insn, step.kind, step.slot
        if kind in (Kind.JUMP, Kind.JCOND) or (kind is Kind.JA and insn.cls is InsnClass.JMP):
            target = self._check_target(step, slot + 1 + insn.off, steps, "jump")
            return Step(slot, insn, kind, target)
        if kind is Kind.JA:  # JMP32 JA: gotol with a 32-bit offset in imm
            target = self._check_target(step, slot + 1 + insn.imm, steps, "jump")
            return Step(slot, insn, kind, target)
        if kind is Kind.CALL:
            if insn.src == PseudoCall.CALL:
                target = self._check_target(step, slot + 1 + insn.imm, steps, "call")
                self.entries.add(target)
                return Step(slot, insn, kind, target)
            if insn.src == PseudoCall.KFUNC:
                raise VmHelperError(f"kfunc calls (BTF id {insn.imm}) are not supported by the VM",
                                    slot, insn)
            if helpers is not None and insn.imm not in helpers:
                raise VmHelperError(f"unknown helper function {insn.imm}", slot, insn)
            return step
        if kind is Kind.LD_IMM64:
            src = insn.src
            if src == PseudoSrc.NONE:
                return Step(slot, insn, kind, None, insn.imm & U64)
            if src == PseudoSrc.FUNC:
                target = self._check_target(step, slot + 1 + insn.imm_lo, steps, "callback")
                self.entries.add(target)
                return Step(slot, insn, kind, target, code_address(target))
            if src == PseudoSrc.BTF_ID:
                raise VmError("LD_IMM64 of a kernel variable (BTF id) is not supported by the VM",
                              slot, insn)
            if resolve_pseudo is None:
                raise VmError(f"LD_IMM64 refers to a map ({PseudoSrc(src).name}) but the program "
                              f"was loaded without maps", slot, insn)
            return Step(slot, insn, kind, None, resolve_pseudo(slot, insn) & U64)
        return step

    def step_at(self, slot: int) -> Step:
        """The step at `slot`; a VmError if the slot is past the end or inside an LD_IMM64."""
        if 0 <= slot < self.nslots:
            step = self.steps[slot]
            if step is not None:
                return step
        if slot == self.nslots:
            raise VmError("execution fell off the end of the program", slot)
        raise VmError(f"no instruction starts at slot {slot}", slot)

    def function_of(self, addr: int) -> int | None:
        """The entry slot if `addr` is the code address of a subprogram, else None."""
        offset = addr - CODE_BASE
        if offset < 0 or offset % 8:
            return None
        slot = offset // 8
        return slot if slot in self.entries else None

    def segment_length(self, slot: int, leaders: set[int] | frozenset[int]) -> int:
        """Instructions from `slot` to the end of its straight-line segment: the next terminator or
        segment end (included) or block leader (excluded). The engines charge the instruction budget
        per segment, so they must all count segments alike."""
        count = 0
        while slot < self.nslots:
            step = self.steps[slot]
            assert step is not None
            count += 1
            if step.kind in TERMINATORS or step.kind in SEGMENT_ENDS:
                break
            slot = step.next
            if slot in leaders:
                break
        return count

    def __len__(self) -> int:
        return len(self.insns)
