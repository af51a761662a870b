"""The reference engine: a plain interpreter that executes one instruction per `step()` and can trace.

It is written for clarity over speed: each step decodes the instruction's kind and calls the shared
arithmetic of `bpfkit.vm.alu`. The translated engine (`bpfkit.vm.translate`) must give identical
results; tests run both on the same programs.
"""

from __future__ import annotations

from collections.abc import Callable

from bpfkit._records import record
from bpfkit.errors import VmError, VmHelperError
from bpfkit.isa.instruction import Instruction
from bpfkit.isa.opcodes import Kind
from bpfkit.uapi.insn import AtomicOp, InsnClass, Mode, PseudoCall, Source
from bpfkit.vm import alu, runtime
from bpfkit.vm.program import LoadedProgram, Step
from bpfkit.vm.runtime import U64, HelperFn, RunState, TailCallDone

_SIZE_BYTES = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}


@record
class TraceStep:
    """One executed instruction: where, what, and the registers r0..r10 after it ran."""

    pc: int
    insn: Instruction
    regs: tuple[int, ...]
    depth: int
    program: str

    def __str__(self) -> str:
        regs = " ".join(f"r{i}={v:#x}" for i, v in enumerate(self.regs) if v)
        return f"{self.program}:{self.pc:<4} {self.insn!s:<32} {regs}"


TraceFn = Callable[[TraceStep], None]


@record(frozen=False)
class _Frame:
    return_pc: int
    saved: tuple[int, ...]  # r1..r10 of the caller
    may_goto: int


class Interpreter:
    """Runs one function of `program` (and the functions it calls) instruction by instruction.

    `regs` and `pc` can be inspected between steps; `step()` returns False once the function has
    exited, and `retval` then holds r0.
    """

    def __init__(self, rt: RunState, program: LoadedProgram, entry: int = 0,
                 args: tuple[int, ...] = (0, 0, 0, 0, 0), trace: TraceFn | None = None) -> None:
        self.rt = rt
        self.program = program
        self.trace = trace
        self.regs = [0] * 11
        for i, value in enumerate(args[:5]):
            self.regs[1 + i] = value & U64
        self.regs[10] = rt.push_frame()
        self.pc = entry
        self.frames: list[_Frame] = []
        self.may_goto = runtime.BPF_MAX_LOOPS
        self.finished = False
        self.retval: int | None = None

    # -- running ----------------------------------------------------------------------------------
    def run(self) -> int:
        """Step until the entry function exits; return r0."""
        while self.step():
            pass
        assert self.retval is not None
        return self.retval

    def step(self) -> bool:
        """Execute one instruction. Returns False when the entry function has returned."""
        if self.finished:
            return False
        rt = self.rt
        step = self.program.step_at(self.pc)
        rt.n += 1
        if rt.n > rt.budget:
            raise self._at(rt.over_budget(), step)
        try:
            self._execute(step)
        except VmError as err:
            raise self._at(err, step) from None
        if self.trace is not None:
            self.trace(TraceStep(step.slot, step.insn, tuple(self.regs), rt.depth,
                                 self.program.name))
        return not self.finished

    def _at(self, err: VmError, step: Step | None = None) -> VmError:
        """Attach the pc and instruction to an error raised without them."""
        if err.pc is None:
            err = type(err)(err.message, self.pc, step.insn if step else None)
        return err

    # -- one instruction --------------------------------------------------------------------------
    def _execute(self, step: Step) -> None:
        insn, kind, regs = step.insn, step.kind, self.regs
        op = insn.opcode
        nxt = step.slot + insn.width
        if kind is Kind.ALU:
            is64 = (op & 0x07) == InsnClass.ALU64
            src = regs[insn.src] if op & Source.X else insn.imm & U64
            regs[insn.dst] = alu.alu(op & 0xF0, insn.off, regs[insn.dst], src, is64)
        elif kind is Kind.END:
            regs[insn.dst] = alu.end(op, insn.imm, regs[insn.dst])
        elif kind is Kind.JUMP:
            src = regs[insn.src] if op & Source.X else insn.imm & U64
            if alu.condition(op & 0xF0, regs[insn.dst], src, (op & 0x07) == InsnClass.JMP):
                assert step.target is not None
                nxt = step.target
        elif kind is Kind.JA:
            assert step.target is not None
            nxt = step.target
        elif kind is Kind.JCOND:  # may_goto: jump once the budget is used up
            if self.may_goto == 0:
                assert step.target is not None
                nxt = step.target
            else:
                self.may_goto -= 1
        elif kind is Kind.LD_IMM64:
            assert step.value is not None
            regs[insn.dst] = step.value
        elif kind is Kind.LDX:
            size = _SIZE_BYTES[op & 0x18]
            addr = (regs[insn.src] + insn.off) & U64
            regs[insn.dst] = self.rt.mem.load(addr, size, signed=(op & 0xE0) == Mode.MEMSX)
        elif kind is Kind.ST:
            size = _SIZE_BYTES[op & 0x18]
            self.rt.mem.store((regs[insn.dst] + insn.off) & U64, size, insn.imm)
        elif kind is Kind.STX:
            size = _SIZE_BYTES[op & 0x18]
            self.rt.mem.store((regs[insn.dst] + insn.off) & U64, size, regs[insn.src])
        elif kind is Kind.ATOMIC:
            self._atomic(insn)
        elif kind in (Kind.LD_ABS, Kind.LD_IND):
            size = _SIZE_BYTES[op & 0x18]
            offset = insn.imm if kind is Kind.LD_ABS else regs[insn.src] + insn.imm
            value = self.rt.load_packet(offset, size)
            if value is None:  # out of range: the kernel's rewrite returns 0 from the function
                regs[0] = 0
                nxt = self._exit()
            else:
                regs[0] = value
        elif kind is Kind.CALL:
            nxt = self._call(step, nxt)
        elif kind is Kind.CALLX:
            nxt = self._callx(step, nxt)
        elif kind is Kind.EXIT:
            nxt = self._exit()
        else:  # pragma: no cover - every Kind is handled above
            raise VmError(f"unhandled instruction kind {kind}")
        self.pc = nxt

    def _atomic(self, insn: Instruction) -> None:
        regs, mem = self.regs, self.rt.mem
        size = _SIZE_BYTES[insn.opcode & 0x18]
        if insn.imm == AtomicOp.LOAD_ACQ:
            regs[insn.dst] = mem.load((regs[insn.src] + insn.off) & U64, size)
            return
        addr = (regs[insn.dst] + insn.off) & U64
        if insn.imm == AtomicOp.STORE_REL:
            mem.store(addr, size, regs[insn.src])
            return
        old = mem.load(addr, size)
        new, src_out, r0_out = alu.atomic_rmw(insn.imm, old, regs[insn.src], regs[0], size)
        mem.store(addr, size, new)
        if src_out is not None:
            regs[insn.src] = src_out
        if r0_out is not None:
            regs[0] = r0_out

    # -- calls and exits --------------------------------------------------------------------------
    def _enter(self, target: int, return_pc: int) -> int:
        regs = self.regs
        self.frames.append(_Frame(return_pc, tuple(regs[1:11]), self.may_goto))
        regs[10] = self.rt.push_frame()
        self.may_goto = runtime.BPF_MAX_LOOPS
        return target

    def _exit(self) -> int:
        self.rt.pop_frame()
        if not self.frames:
            self.finished = True
            self.retval = self.regs[0]
            return self.pc
        frame = self.frames.pop()
        # r6-r10 are callee-saved. r1-r5 are undefined after a call in the kernel (the verifier
        # forbids reading them); the VM gives back the caller's values, like the translated engine.
        self.regs[1:11] = frame.saved
        self.may_goto = frame.may_goto
        return frame.return_pc

    def _helper(self, helper_id: int, nxt: int) -> int:
        fn = self.rt.helpers.get(helper_id)
        if fn is None:
            raise VmHelperError(f"unknown helper function {helper_id}")
        return self._run_helper(fn, nxt)

    def _run_helper(self, fn: HelperFn, nxt: int) -> int:
        regs = self.regs
        result = fn(self.rt, regs[1], regs[2], regs[3], regs[4], regs[5])
        if isinstance(result, TailCallDone):
            regs[0] = result.value
            return self._exit()
        regs[0] = result & U64
        return nxt

    def _call(self, step: Step, nxt: int) -> int:
        insn = step.insn
        if insn.src == PseudoCall.CALL:
            assert step.target is not None
            return self._enter(step.target, nxt)
        return self._helper(insn.imm, nxt)

    def _callx(self, step: Step, nxt: int) -> int:
        target = self.rt.callx_target(self.regs[step.insn.dst])
        if isinstance(target, int):
            return self._enter(target, nxt)
        return self._run_helper(target, nxt)


class InterpreterEngine:
    """The interpreter as an `Engine`: each function call runs a nested `Interpreter`."""

    def __init__(self, trace: TraceFn | None = None) -> None:
        self.trace = trace

    def call(self, rt: RunState, program: LoadedProgram, entry: int, args: tuple[int, ...]) -> int:
        return Interpreter(rt, program, entry, args, self.trace).run()

