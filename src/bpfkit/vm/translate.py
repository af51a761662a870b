"""The fast engine: translate a program once into Python source, `compile()` it, and run that.

Each subprogram becomes one Python function whose registers are local variables. Its basic blocks are
laid out in a `while True` loop that dispatches on the block's slot with a binary tree of `if`s; a
block reached from exactly one place is emitted inline at that place, so only join points and loop
heads go through the dispatch. Values stay unsigned 64-bit (every result is masked). Memory accesses
index the address space's slot -> buffer dicts directly and fall back to `RunState.slow_load` /
`slow_store` (context hooks, or the fault) when the dict or `struct` refuses. The instruction budget
is counted per straight-line segment. Semantics must match `bpfkit.vm.interp` exactly.

Accesses at the slots of `LoadedProgram.proven_safe` (what bpfkit's verifier proved in bounds of a plain
region for this run, see `VerifierResult.proven_safe`) are emitted without that fallback: the same
direct indexing, no `try`. Python keeps them memory-safe regardless (a wrong proof surfaces as an
internal `VmError`, never as a read outside a buffer). A program loaded unverified has no such slots.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from bpfkit.errors import VmError
from bpfkit.isa.opcodes import Kind
from bpfkit.uapi.insn import AluOp, AtomicOp, InsnClass, JmpOp, Mode, PseudoCall, Source
from bpfkit.vm import alu, runtime
from bpfkit.vm.memory import LOADERS, OFFSET_MASK, SIGNED_LOADERS, SLOT_SHIFT, STORERS
from bpfkit.vm.program import SEGMENT_ENDS, TERMINATORS, LoadedProgram, Step
from bpfkit.vm.runtime import U64, RunState, TailCallDone

M = U64
W = 0xFFFFFFFF
SB64 = 1 << 63
SB32 = 1 << 31
_SIZE = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}
_MAX_INLINE_DEPTH = 40
"""Inline nesting (in indentation levels) beyond which a block goes through the dispatch instead."""


_COND64 = {JmpOp.JEQ: "==", JmpOp.JNE: "!=", JmpOp.JGT: ">", JmpOp.JGE: ">=", JmpOp.JLT: "<",
           JmpOp.JLE: "<="}
_SCOND = {JmpOp.JSGT: ">", JmpOp.JSGE: ">=", JmpOp.JSLT: "<", JmpOp.JSLE: "<="}


class _Function:
    """Blocks of one subprogram and the code generator for it."""

    def __init__(self, program: LoadedProgram, entry: int) -> None:
        self.program = program
        self.entry = entry
        self.leaders: set[int] = {entry}
        self.preds: dict[int, int] = {}
        self.uses_may_goto = False
        self._discover()
        self.dispatch: set[int] = {entry} | {b for b, n in self.preds.items() if n != 1}
        self.lines: list[str] = []
        self.checked = 0
        """Loads and stores emitted with their fallback (`slow_load`/`slow_store`: the bounds check)."""
        self.unchecked = 0
        """Loads and stores emitted without it (their slot is in `proven_safe`)."""

    def _successors(self, step: Step) -> list[int]:
        kind = step.kind
        if kind is Kind.EXIT:
            return []
        assert step.target is not None or kind not in (Kind.JA, Kind.JUMP, Kind.JCOND)
        if kind is Kind.JA:
            return [step.target]  # type: ignore[list-item]
        if kind in (Kind.JUMP, Kind.JCOND):
            return [step.target, step.next]  # type: ignore[list-item]
        return [step.next]

    def _discover(self) -> None:
        program = self.program
        seen: set[int] = set()
        todo = [self.entry]
        reach: list[int] = []
        while todo:
            slot = todo.pop()
            if slot in seen or slot >= program.nslots:
                continue
            seen.add(slot)
            reach.append(slot)
            step = program.steps[slot]
            assert step is not None
            if step.kind is Kind.JCOND:
                self.uses_may_goto = True
            if step.kind in (Kind.JUMP, Kind.JCOND, Kind.JA):
                self.leaders.update(self._successors(step))
            todo.extend(self._successors(step))
        self.reach = seen
        # Count control-flow edges into every leader (from the reachable code only).
        for slot in reach:
            step = program.steps[slot]
            assert step is not None
            succ = self._successors(step)
            if step.kind in TERMINATORS:
                for t in succ:
                    self.preds[t] = self.preds.get(t, 0) + 1
            elif succ and succ[0] in self.leaders:
                self.preds[succ[0]] = self.preds.get(succ[0], 0) + 1

    # -- emission ---------------------------------------------------------------------------------
    def emit(self, line: str, depth: int) -> None:
        self.lines.append("    " * depth + line)

    def goto(self, target: int, depth: int, pc: int) -> None:
        if target >= self.program.nslots:
            self.emit(f"raise S.fell_off({target})", depth)
        elif target not in self.dispatch and depth < _MAX_INLINE_DEPTH:
            self.block(target, depth)
        else:
            self.dispatch.add(target)
            self.emit(f"b = {target}", depth)
            self.emit("continue", depth)

    def block(self, start: int, d: int) -> None:
        """Emit the block starting at `start` at indentation `d`, ending in a transfer of control."""
        program = self.program
        slot = start
        segment_open = False
        while True:
            step = program.steps[slot]
            assert step is not None
            if not segment_open:
                count = self.program.segment_length(slot, self.leaders)
                self.emit(f"n += {count}", d)
                self.emit(f"if n > B: raise S.over(n - {count}, {slot})", d)
                segment_open = True
            kind = step.kind
            if kind in TERMINATORS:
                self.terminator(step, d)
                return
            self.instruction(step, d)
            if kind in SEGMENT_ENDS:
                segment_open = False
            nxt = step.next
            if nxt >= program.nslots or nxt in self.leaders:
                self.goto(nxt, d, slot)
                return
            slot = nxt


    def function(self) -> list[str]:
        name = f"F_{self.entry}"
        self.lines = []
        self.emit(f"def {name}(S, r0, r1, r2, r3, r4, r5, r6, r7, r8, r9):", 0)
        self.emit("RB = S.rb", 1)
        self.emit("WB = S.wb", 1)
        self.emit("B = S.budget", 1)
        self.emit("r10 = S.push_frame()", 1)
        self.emit("n = S.n", 1)
        if self.uses_may_goto:
            self.emit(f"mg = {runtime.BPF_MAX_LOOPS}", 1)
        self.emit(f"b = {self.entry}", 1)
        self.emit("while True:", 1)
        body_start = len(self.lines)
        emitted: set[int] = set()
        bodies: dict[int, list[str]] = {}
        # Emitting a block can add dispatch targets (deep inline chains), so iterate to a fixpoint.
        while True:
            pending = sorted(self.dispatch - emitted)
            if not pending:
                break
            for target in pending:
                emitted.add(target)
                saved = self.lines
                self.lines = []
                self.block(target, 0)
                bodies[target] = self.lines
                self.lines = saved
        del self.lines[body_start:]
        self._tree(sorted(bodies), bodies, 2)
        return self.lines

    def _tree(self, ids: list[int], bodies: dict[int, list[str]], d: int) -> None:
        if len(ids) == 1:
            pad = "    " * d
            self.lines.extend(pad + line for line in bodies[ids[0]])
            return
        mid = len(ids) // 2
        self.emit(f"if b < {ids[mid]}:", d)
        self._tree(ids[:mid], bodies, d + 1)
        self.emit("else:", d)
        self._tree(ids[mid:], bodies, d + 1)

    # -- instructions -----------------------------------------------------------------------------
    def terminator(self, step: Step, d: int) -> None:
        kind, insn = step.kind, step.insn
        if kind is Kind.EXIT:
            self.emit("S.pop_frame()", d)
            self.emit("S.n = n", d)
            self.emit("return r0", d)
            return
        assert step.target is not None
        if kind is Kind.JA:
            self.goto(step.target, d, step.slot)
            return
        if kind is Kind.JCOND:
            self.emit("if mg == 0:", d)
            self.goto(step.target, d + 1, step.slot)
            self.emit("else:", d)
            self.emit("mg -= 1", d + 1)
            self.goto(step.next, d + 1, step.slot)
            return
        self.emit(f"if {_condition(insn.opcode, insn.dst, insn.src, insn.imm)}:", d)
        self.goto(step.target, d + 1, step.slot)
        self.emit("else:", d)
        self.goto(step.next, d + 1, step.slot)

    def instruction(self, step: Step, d: int) -> None:
        insn, kind, pc = step.insn, step.kind, step.slot
        op = insn.opcode
        if kind is Kind.ALU:
            self.emit(_alu(op, insn.dst, insn.src, insn.off, insn.imm), d)
        elif kind is Kind.END:
            self.emit(_end(op, insn.dst, insn.imm), d)
        elif kind is Kind.LD_IMM64:
            self.emit(f"r{insn.dst} = {step.value}", d)
        elif kind is Kind.LDX:
            self.load(f"r{insn.dst}", insn.src, insn.off, _SIZE[op & 0x18], (op & 0xE0) == Mode.MEMSX,
                      pc, d)
        elif kind is Kind.ST:
            size = _SIZE[op & 0x18]
            self.store(insn.dst, insn.off, size, str(insn.imm & _mask(size)), pc, d)
        elif kind is Kind.STX:
            size = _SIZE[op & 0x18]
            value = f"r{insn.src}" if size == 8 else f"r{insn.src} & {_mask(size)}"
            self.store(insn.dst, insn.off, size, value, pc, d)
        elif kind is Kind.ATOMIC:
            size = _SIZE[op & 0x18]
            if insn.imm == AtomicOp.LOAD_ACQ:
                self.load(f"r{insn.dst}", insn.src, insn.off, size, False, pc, d)
            elif insn.imm == AtomicOp.STORE_REL:
                value = f"r{insn.src}" if size == 8 else f"r{insn.src} & {_mask(size)}"
                self.store(insn.dst, insn.off, size, value, pc, d)
            else:
                # With src r0, a fetch op's result is the old value, not r0's: name it once.
                src = "_" if insn.src == 0 and insn.imm == AtomicOp.CMPXCHG else f"r{insn.src}"
                r0 = "_" if insn.src == 0 and insn.imm != AtomicOp.CMPXCHG else "r0"
                self.emit(f"{src}, {r0} = S.atomic({pc}, {insn.imm}, {size}, "
                          f"r{insn.dst} + {insn.off}, r{insn.src}, r0)", d)
        elif kind in (Kind.LD_ABS, Kind.LD_IND):
            size = _SIZE[op & 0x18]
            offset = str(insn.imm) if kind is Kind.LD_ABS else f"r{insn.src} + {insn.imm}"
            self.emit(f"v = S.load_packet({offset}, {size})", d)
            self.emit("if v is None:", d)
            self.emit("S.pop_frame()", d + 1)
            self.emit("S.n = n", d + 1)
            self.emit("return 0", d + 1)
            self.emit("r0 = v", d)
        elif kind is Kind.CALL:
            self.emit("S.n = n", d)
            self.emit("try:", d)
            if insn.src == PseudoCall.CALL:
                self.emit(f"r0 = F_{step.target}(S, r0, r1, r2, r3, r4, r5, r6, r7, r8, r9)", d + 1)
            else:
                self.emit(f"r0 = H_{insn.imm}(S, r1, r2, r3, r4, r5)", d + 1)
            self.emit("except VmError as e:", d)
            self.emit(f"raise S.at(e, {pc}) from None", d + 1)
            if insn.src != PseudoCall.CALL:
                self._after_helper(d)
            self.emit("n = S.n", d)
        elif kind is Kind.CALLX:
            self.emit("S.n = n", d)
            self.emit(f"r0 = CALLX(S, {pc}, r{insn.dst}, (r0, r1, r2, r3, r4, r5, r6, r7, r8, r9))", d)
            self._after_helper(d)
            self.emit("n = S.n", d)
        else:  # pragma: no cover - terminators are handled by `terminator`
            raise VmError(f"cannot translate {kind}", pc, insn)

    def _after_helper(self, d: int) -> None:
        self.emit("if r0.__class__ is not int:", d)
        self.emit("if r0.__class__ is TCD:", d + 1)
        self.emit("S.pop_frame()", d + 2)
        self.emit("return r0 & M", d + 2)
        self.emit("r0 = int(r0)", d + 1)
        self.emit("r0 &= M", d)

    def load(self, dst: str, base: int, off: int, size: int, signed: bool, pc: int, d: int) -> None:
        fn = f"LS{size}" if signed else f"L{size}"
        addr = f"r{base} + {off}" if off else f"r{base}"
        self.emit(f"a = {addr}", d)
        value = f"{fn}(RB[a >> {SLOT_SHIFT}], a & {OFFSET_MASK})[0]"
        line = f"{dst} = {value} & M" if signed else f"{dst} = {value}"
        if pc in self.program.proven_safe:  # the verifier proved it in bounds: no fallback
            self.unchecked += 1
            self.emit(line, d)
            return
        self.checked += 1
        self.emit("try:", d)
        self.emit(line, d + 1)
        self.emit("except (KeyError, StructError):", d)
        self.emit(f"{dst} = S.slow_load(a, {size}, {signed}, {pc})", d + 1)

    def store(self, base: int, off: int, size: int, value: str, pc: int, d: int) -> None:
        addr = f"r{base} + {off}" if off else f"r{base}"
        self.emit(f"a = {addr}", d)
        line = f"S{size}(WB[a >> {SLOT_SHIFT}], a & {OFFSET_MASK}, {value})"
        if pc in self.program.proven_safe:
            self.unchecked += 1
            self.emit(line, d)
            return
        self.checked += 1
        self.emit("try:", d)
        self.emit(line, d + 1)
        self.emit("except (KeyError, StructError):", d)
        self.emit(f"S.slow_store(a, {size}, {value}, {pc})", d + 1)


def _mask(size: int) -> int:
    return (1 << (8 * size)) - 1


def _alu(op: int, dst: int, src: int, off: int, imm: int) -> str:
    is64 = (op & 0x07) == InsnClass.ALU64
    code = op & 0xF0
    x = bool(op & Source.X)
    d = f"r{dst}"
    mask = "M" if is64 else "W"
    bits = 64 if is64 else 32
    if x:
        s = f"r{src}" if is64 else f"(r{src} & W)"
    else:
        s = str(imm & (U64 if is64 else W))
    dv = d if is64 else f"({d} & W)"
    if code == AluOp.ADD:
        return f"{d} = ({d} + {s}) & {mask}"
    if code == AluOp.SUB:
        return f"{d} = ({d} - {s}) & {mask}"
    if code == AluOp.MUL:
        return f"{d} = ({d} * {s}) & {mask}"
    if code == AluOp.DIV:
        if off == 1:
            return f"{d} = SDIV({d}, {s}, {bits})"
        if not x:
            return f"{d} = {dv} // {s}" if imm & (U64 if is64 else W) else f"{d} = 0"
        return f"{d} = {dv} // {s} if {s} else 0"
    if code == AluOp.MOD:
        if off == 1:
            return f"{d} = SMOD({d}, {s}, {bits})"
        if not x:
            return f"{d} = {dv} % {s}" if imm & (U64 if is64 else W) else f"{d} = {dv}"
        return f"{d} = {dv} % {s} if {s} else {dv}"
    if code == AluOp.OR:
        return f"{d} = ({d} | {s}) & {mask}" if not is64 else f"{d} = {d} | {s}"
    if code == AluOp.AND:
        return f"{d} = {dv} & {s}"
    if code == AluOp.XOR:
        return f"{d} = ({d} ^ {s}) & {mask}" if not is64 else f"{d} = {d} ^ {s}"
    if code == AluOp.LSH:
        amount = str(imm & (bits - 1)) if not x else f"({s} & {bits - 1})"
        return f"{d} = ({d} << {amount}) & {mask}"
    if code == AluOp.RSH:
        amount = str(imm & (bits - 1)) if not x else f"({s} & {bits - 1})"
        return f"{d} = {dv} >> {amount}"
    if code == AluOp.ARSH:
        amount = str(imm & (bits - 1)) if not x else f"({s} & {bits - 1})"
        sign = SB64 if is64 else SB32
        return f"{d} = ((({dv} ^ {sign}) - {sign}) >> {amount}) & {mask}"
    if code == AluOp.NEG:
        return f"{d} = -{d} & {mask}"
    if code == AluOp.MOV:
        if off:
            sign = 1 << (off - 1)
            return f"{d} = (((r{src} & {(1 << off) - 1}) ^ {sign}) - {sign}) & {mask}"
        return f"{d} = {s}"
    raise VmError(f"cannot translate ALU operation {code:#x}")


def _end(op: int, dst: int, bits: int) -> str:
    d = f"r{dst}"
    swap = (op & 0x07) == InsnClass.ALU64 or bool(op & 0x08)
    if not swap:
        return f"{d} = {d} & {(1 << bits) - 1}" if bits < 64 else "pass"
    if bits == 16:
        return f"{d} = (({d} & 0xFF) << 8) | (({d} >> 8) & 0xFF)"
    return f"{d} = FROM_BYTES(({d} & {(1 << bits) - 1}).to_bytes({bits // 8}, 'little'), 'big')"


def _condition(op: int, dst: int, src: int, imm: int) -> str:
    is64 = (op & 0x07) == InsnClass.JMP
    code = op & 0xF0
    x = bool(op & Source.X)
    a = f"r{dst}" if is64 else f"(r{dst} & W)"
    if x:
        b = f"r{src}" if is64 else f"(r{src} & W)"
    else:
        b = str(imm & (U64 if is64 else W))
    if code in _COND64:
        return f"{a} {_COND64[JmpOp(code)]} {b}"
    if code == JmpOp.JSET:
        return f"{a} & {b}"
    sign = SB64 if is64 else SB32
    if x:
        return f"({a} ^ {sign}) {_SCOND[JmpOp(code)]} ({b} ^ {sign})"
    return f"({a} ^ {sign}) {_SCOND[JmpOp(code)]} {(imm & (U64 if is64 else W)) ^ sign}"


def _callx(rt: RunState, pc: int, value: int, regs: tuple[int, ...]) -> int:
    """callx: call a subprogram by code address, or a helper by id (see `RunState.callx_target`)."""
    try:
        target = rt.callx_target(value)
        if isinstance(target, int):
            return translated(rt.program).functions[target](rt, *regs)
        return target(rt, *regs[1:6])
    except VmError as err:
        raise rt.at(err, pc) from None


def translate_source(program: LoadedProgram) -> str:
    """The Python source of `program`: one function `F_<entry slot>` per subprogram (accesses at
    `program.proven_safe` slots unchecked)."""
    return _translate(program)[0]


def _translate(program: LoadedProgram) -> tuple[str, int, int]:
    """(source, loads and stores emitted with a bounds check, and without one)."""
    parts = [f"# translated from {program.name}: {program.nslots} slots, "
             f"{len(program.functions)} function(s), {len(program.proven_safe)} accesses proven safe"]
    checked = unchecked = 0
    for entry in program.functions:
        fn = _Function(program, entry)
        parts.append("\n".join(fn.function()))
        checked += fn.checked
        unchecked += fn.unchecked
    return "\n\n".join(parts) + "\n", checked, unchecked


class Translated:
    """The compiled functions of one program: `source` is the Python, `proven_safe` the slots whose
    accesses it runs without a bounds check, `checked` / `unchecked` how many loads and stores it emits
    with the check and without it (atomics and LD_ABS/LD_IND always go through the run state, checked,
    and are not counted)."""

    def __init__(self, program: LoadedProgram) -> None:
        self.proven_safe = program.proven_safe
        self.source, self.checked, self.unchecked = _translate(program)
        namespace: dict[str, Any] = {
            "M": U64, "W": W, "StructError": struct.error, "VmError": VmError, "TCD": TailCallDone,
            "CALLX": _callx, "SDIV": alu.sdiv, "SMOD": alu.smod, "FROM_BYTES": int.from_bytes,
        }
        for size in (1, 2, 4, 8):
            namespace[f"L{size}"] = LOADERS[size]
            namespace[f"LS{size}"] = SIGNED_LOADERS[size]
            namespace[f"S{size}"] = STORERS[size]
        for helper_id, fn in program.helpers.items():
            namespace[f"H_{helper_id}"] = fn
        code = compile(self.source, f"<bpfkit-vm {program.name}>", "exec")
        exec(code, namespace)
        self.functions: dict[int, Callable[..., int]] = {
            entry: namespace[f"F_{entry}"] for entry in program.functions}


def translated(program: LoadedProgram) -> Translated:
    """The translation of `program` for its current `proven_safe` slots, made once per set of slots
    and cached on it (a raw-memory program verified for several data sizes may have several)."""
    versions = program.cache.setdefault("translated", {})
    assert isinstance(versions, dict)
    cached = versions.get(program.proven_safe)
    if cached is None:
        cached = versions[program.proven_safe] = Translated(program)
    assert isinstance(cached, Translated)
    return cached


class TranslatedEngine:
    """The fast engine as an `Engine`."""

    def call(self, rt: RunState, program: LoadedProgram, entry: int, args: tuple[int, ...]) -> int:
        fn = translated(program).functions[entry]
        return fn(rt, 0, *args[:5], 0, 0, 0, 0)
