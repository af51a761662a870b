"""A builder for emitting eBPF code from Python, with symbolic labels resolved at build time.

Registers are passed as `Reg` members (`Reg.R1`); a plain `int` operand is an immediate. Jumps and
local calls take a label name (resolved when `build()` runs) or an int relative offset.

    b = Builder()
    b.mov(Reg.R0, 0)
    b.jmp("jgt", Reg.R1, 5, "big")
    b.exit()
    b.label("big")
    b.mov(Reg.R0, 1)
    b.exit()
    insns = b.build()
"""

from __future__ import annotations

from typing import Literal

from bpfkit._records import record, replace
from bpfkit.errors import AsmError
from bpfkit.isa.codec import encode
from bpfkit.isa.instruction import LD_IMM64, Instruction
from bpfkit.uapi.insn import (
    AluOp,
    AtomicOp,
    Endian,
    InsnClass,
    JCond,
    JmpOp,
    Mode,
    PseudoCall,
    PseudoSrc,
    Reg,
    Size,
    Source,
)

Operand = Reg | int
Target = str | int

_ALU_NAMES: dict[str, tuple[AluOp, int]] = {
    "add": (AluOp.ADD, 0), "sub": (AluOp.SUB, 0), "mul": (AluOp.MUL, 0), "div": (AluOp.DIV, 0),
    "sdiv": (AluOp.DIV, 1), "mod": (AluOp.MOD, 0), "smod": (AluOp.MOD, 1), "or": (AluOp.OR, 0),
    "and": (AluOp.AND, 0), "lsh": (AluOp.LSH, 0), "rsh": (AluOp.RSH, 0), "xor": (AluOp.XOR, 0),
    "mov": (AluOp.MOV, 0), "arsh": (AluOp.ARSH, 0),
}

JUMP_OPS: dict[str, JmpOp] = {
    "jeq": JmpOp.JEQ, "jgt": JmpOp.JGT, "jge": JmpOp.JGE, "jset": JmpOp.JSET, "jne": JmpOp.JNE,
    "jsgt": JmpOp.JSGT, "jsge": JmpOp.JSGE, "jlt": JmpOp.JLT, "jle": JmpOp.JLE, "jslt": JmpOp.JSLT,
    "jsle": JmpOp.JSLE,
}

SIZES: dict[int, Size] = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}


@record
class Relocation:
    """A reference from instruction slot `slot` to an external `symbol` (a map, a global, a kfunc)."""

    slot: int
    symbol: str
    kind: str = "map"


@record(frozen=False)
class _Fixup:
    index: int  # index into the instruction list
    label: str
    field: Literal["off", "imm"]
    line: int | None


def _size(nbytes: int) -> Size:
    try:
        return SIZES[nbytes]
    except KeyError:
        raise AsmError(f"access size must be 1, 2, 4 or 8 bytes, not {nbytes}") from None


def _with_offset(insn: Instruction, field: Literal["off", "imm"], delta: int) -> Instruction:
    if field == "imm" and insn.opcode == LD_IMM64:
        # Only the first slot's 32-bit imm holds a function pointer's offset; a negative offset must
        # not spill into the second slot's half.
        return replace(insn, imm=(insn.imm & ~0xFFFFFFFF) | (delta & 0xFFFFFFFF))
    return replace(insn, **{field: delta})


class Builder:
    """Collects instructions, labels and references; `build()` resolves labels to offsets."""

    def __init__(self) -> None:
        self._insns: list[Instruction] = []
        self._slot = 0
        self._labels: dict[str, int] = {}
        self._fixups: list[_Fixup] = []
        self.relocations: list[Relocation] = []
        self.line: int | None = None
        """Source line recorded with fixups, so unresolved labels can be reported where they were used."""

    # -- basics -----------------------------------------------------------------------------------
    @property
    def slot(self) -> int:
        """The slot index the next instruction will occupy."""
        return self._slot

    def __len__(self) -> int:
        return len(self._insns)

    def emit(self, insn: Instruction) -> Builder:
        self._insns.append(insn)
        self._slot += insn.width
        return self

    def label(self, name: str) -> Builder:
        """Name the position of the next instruction."""
        if name in self._labels:
            raise AsmError(f"label {name!r} defined twice", line=self.line)
        self._labels[name] = self._slot
        return self

    def has_label(self, name: str) -> bool:
        return name in self._labels

    def emit_ref(self, insn: Instruction, target: Target, field: Literal["off", "imm"] = "off") -> Builder:
        """Emit `insn` with `field` set to the offset of `target` (a label, or an int relative offset).

        The offset is relative to the next slot, as for jumps; for LD_IMM64 only the low 32 bits of
        the immediate are set (a function pointer's `imm`), the high half is kept.
        """
        return self._target(insn, target, field)

    def _target(self, insn: Instruction, target: Target, field: Literal["off", "imm"]) -> Builder:
        if isinstance(target, str):
            self._fixups.append(_Fixup(len(self._insns), target, field, self.line))
            return self.emit(insn)
        return self.emit(_with_offset(insn, field, target))

    # -- ALU --------------------------------------------------------------------------------------
    def alu(self, op: str, dst: Operand, x: Operand = 0, *, is64: bool = True) -> Builder:
        """Emit an ALU op by name: add, sub, mul, div, sdiv, mod, smod, or, and, lsh, rsh, xor, mov, arsh."""
        try:
            code, off = _ALU_NAMES[op]
        except KeyError:
            raise AsmError(f"unknown ALU operation {op!r}", line=self.line) from None
        cls = InsnClass.ALU64 if is64 else InsnClass.ALU
        if isinstance(x, Reg):
            return self.emit(Instruction(cls | code | Source.X, int(dst), int(x), off, 0))
        return self.emit(Instruction(cls | code | Source.K, int(dst), 0, off, x))

    def mov(self, dst: Operand, x: Operand) -> Builder:
        return self.alu("mov", dst, x)

    def mov32(self, dst: Operand, x: Operand) -> Builder:
        return self.alu("mov", dst, x, is64=False)

    def add(self, dst: Operand, x: Operand) -> Builder:
        return self.alu("add", dst, x)

    def sub(self, dst: Operand, x: Operand) -> Builder:
        return self.alu("sub", dst, x)

    def neg(self, dst: Operand, *, is64: bool = True) -> Builder:
        cls = InsnClass.ALU64 if is64 else InsnClass.ALU
        return self.emit(Instruction(cls | AluOp.NEG, int(dst)))

    def movsx(self, dst: Operand, src: Reg, bits: int, *, is64: bool = True) -> Builder:
        """Sign-extending move from the low `bits` (8, 16, or 32 for 64-bit) of `src`."""
        cls = InsnClass.ALU64 if is64 else InsnClass.ALU
        return self.emit(Instruction(cls | AluOp.MOV | Source.X, int(dst), int(src), bits, 0))

    def endian(self, dst: Operand, bits: int, order: Literal["le", "be", "swap"]) -> Builder:
        """Byte swap: `le`/`be` convert host to that order (ALU class); `swap` always swaps (ALU64)."""
        if order == "swap":
            return self.emit(Instruction(InsnClass.ALU64 | AluOp.END, int(dst), imm=bits))
        source = Endian.TO_BE if order == "be" else Endian.TO_LE
        return self.emit(Instruction(InsnClass.ALU | AluOp.END | source, int(dst), imm=bits))

    # -- memory -----------------------------------------------------------------------------------
    def ld_imm64(self, dst: Operand, value: int, pseudo: PseudoSrc = PseudoSrc.NONE) -> Builder:
        return self.emit(Instruction(LD_IMM64, int(dst), int(pseudo), 0, value))

    def ld_map(self, dst: Operand, symbol: str, *, value_offset: int | None = None) -> Builder:
        """Load a map (or, with `value_offset`, a pointer into its value); the map is resolved later."""
        self.relocations.append(Relocation(self._slot, symbol, "map"))
        if value_offset is None:
            return self.ld_imm64(dst, 0, PseudoSrc.MAP_FD)
        return self.ld_imm64(dst, value_offset << 32, PseudoSrc.MAP_VALUE)

    def ld_func(self, dst: Operand, target: Target) -> Builder:
        """Load the address of a subprogram (a callback for bpf_loop and friends)."""
        return self._target(Instruction(LD_IMM64, int(dst), PseudoSrc.FUNC), target, "imm")

    def ldx(self, size: int, dst: Operand, src: Operand, off: int = 0, *, signed: bool = False) -> Builder:
        mode = Mode.MEMSX if signed else Mode.MEM
        return self.emit(Instruction(InsnClass.LDX | mode | _size(size), int(dst), int(src), off))

    def stx(self, size: int, dst: Operand, off: int, src: Operand) -> Builder:
        return self.emit(Instruction(InsnClass.STX | Mode.MEM | _size(size), int(dst), int(src), off))

    def st(self, size: int, dst: Operand, off: int, imm: int) -> Builder:
        return self.emit(Instruction(InsnClass.ST | Mode.MEM | _size(size), int(dst), 0, off, imm))

    def atomic(self, size: int, op: AtomicOp, dst: Operand, off: int, src: Operand) -> Builder:
        """`dst` is the address register, `src` the operand (and, with FETCH, receives the old value)."""
        opcode = InsnClass.STX | Mode.ATOMIC | _size(size)
        return self.emit(Instruction(opcode, int(dst), int(src), off, int(op)))

    def ld_abs(self, size: int, imm: int) -> Builder:
        return self.emit(Instruction(InsnClass.LD | Mode.ABS | _size(size), imm=imm))

    def ld_ind(self, size: int, src: Operand, imm: int) -> Builder:
        return self.emit(Instruction(InsnClass.LD | Mode.IND | _size(size), 0, int(src), imm=imm))

    # -- control flow -----------------------------------------------------------------------------
    def jmp(self, op: str, dst: Operand, x: Operand, target: Target, *, is64: bool = True) -> Builder:
        """Conditional jump by name (jeq, jgt, jge, jset, jne, jsgt, jsge, jlt, jle, jslt, jsle)."""
        try:
            code = JUMP_OPS[op]
        except KeyError:
            raise AsmError(f"unknown jump {op!r}", line=self.line) from None
        cls = InsnClass.JMP if is64 else InsnClass.JMP32
        if isinstance(x, Reg):
            insn = Instruction(cls | code | Source.X, int(dst), int(x))
        else:
            insn = Instruction(cls | code | Source.K, int(dst), 0, 0, x)
        return self._target(insn, target, "off")

    def ja(self, target: Target, *, long: bool = False) -> Builder:
        """Unconditional jump; `long` uses the JMP32 form with a 32-bit offset (gotol)."""
        if long:
            return self._target(Instruction(InsnClass.JMP32 | JmpOp.JA), target, "imm")
        return self._target(Instruction(InsnClass.JMP | JmpOp.JA), target, "off")

    def may_goto(self, target: Target) -> Builder:
        return self._target(Instruction(InsnClass.JMP | JmpOp.JCOND, src=JCond.MAY_GOTO), target, "off")

    def call(self, helper: int) -> Builder:
        return self.emit(Instruction(InsnClass.JMP | JmpOp.CALL, imm=int(helper)))

    def call_local(self, target: Target) -> Builder:
        return self._target(Instruction(InsnClass.JMP | JmpOp.CALL, src=PseudoCall.CALL), target, "imm")

    def call_kfunc(self, btf_id: int, btf_fd_index: int = 0) -> Builder:
        return self.emit(Instruction(InsnClass.JMP | JmpOp.CALL, 0, PseudoCall.KFUNC, btf_fd_index, btf_id))

    def callx(self, reg: Reg) -> Builder:
        return self.emit(Instruction(InsnClass.JMP | JmpOp.CALL | Source.X, int(reg)))

    def exit(self) -> Builder:
        return self.emit(Instruction(InsnClass.JMP | JmpOp.EXIT))

    # -- output -----------------------------------------------------------------------------------
    def labels(self) -> dict[str, int]:
        """Label name -> slot index."""
        return dict(self._labels)

    def build(self) -> list[Instruction]:
        """Resolve labels; raise `AsmError` for an undefined label or an offset out of range."""
        insns = list(self._insns)
        slots = []
        pos = 0
        for insn in insns:
            slots.append(pos)
            pos += insn.width
        for fix in self._fixups:
            if fix.label not in self._labels:
                raise AsmError(f"undefined label {fix.label!r}", index=slots[fix.index], line=fix.line)
            delta = self._labels[fix.label] - (slots[fix.index] + 1)
            insn = insns[fix.index]
            bits = 16 if fix.field == "off" else 32
            if not -(1 << (bits - 1)) <= delta < (1 << (bits - 1)):
                raise AsmError(f"jump to {fix.label!r} is {delta} slots away: out of range for a "
                               f"{bits}-bit offset", index=slots[fix.index], line=fix.line)
            insns[fix.index] = _with_offset(insn, fix.field, delta)
        return insns

    def encode(self) -> bytes:
        return encode(self.build())
