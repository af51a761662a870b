"""`Instruction`: one eBPF instruction, with LD_IMM64 as a single instruction of width 2."""

from __future__ import annotations

from bpfkit._records import record
from bpfkit.errors import AsmError
from bpfkit.uapi.insn import AluOp, InsnClass, JmpOp, Mode, Size, Source

LD_IMM64 = InsnClass.LD | Mode.IMM | Size.DW


def _signed(value: int, bits: int, field: str) -> int:
    """Normalise `value` to a signed `bits`-wide integer; accept the unsigned spelling too."""
    lo, top = -(1 << (bits - 1)), 1 << bits
    if not lo <= value < top:
        raise AsmError(f"{field} {value} does not fit in {bits} bits")
    return value - top if value >= top >> 1 else value


@record
class Instruction:
    """One eBPF instruction.

    `off` is a signed 16-bit value. `imm` is signed 32-bit, except for LD_IMM64 (opcode 0x18), where it
    holds the whole signed 64-bit immediate and the instruction takes two 8-byte slots (`width` 2).
    Unsigned spellings (`imm=0xffffffff`) are accepted and stored signed. Construction checks only
    field widths; `bpfkit.isa.opcodes.field_error` says whether the encoding is valid.
    """

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.opcode <= 0xFF:
            raise AsmError(f"opcode {self.opcode} does not fit in 8 bits")
        if not 0 <= self.dst <= 0xF or not 0 <= self.src <= 0xF:
            raise AsmError(f"register field out of range (dst={self.dst}, src={self.src})")
        if not -0x8000 <= self.off <= 0x7FFF:
            object.__setattr__(self, "off", _signed(self.off, 16, "offset"))
        bits = 64 if self.opcode == LD_IMM64 else 32
        if not -(1 << (bits - 1)) <= self.imm < (1 << (bits - 1)):
            object.__setattr__(self, "imm", _signed(self.imm, bits, "immediate"))

    @property
    def width(self) -> int:
        """Number of 8-byte slots: 2 for LD_IMM64, else 1."""
        return 2 if self.opcode == LD_IMM64 else 1

    @property
    def cls(self) -> InsnClass:
        return InsnClass(self.opcode & 0x07)

    @property
    def is_alu(self) -> bool:
        return self.opcode & 0x07 in (InsnClass.ALU, InsnClass.ALU64)

    @property
    def is_jump(self) -> bool:
        return self.opcode & 0x07 in (InsnClass.JMP, InsnClass.JMP32)

    @property
    def source(self) -> Source:
        return Source(self.opcode & 0x08)

    @property
    def alu_op(self) -> AluOp:
        return AluOp(self.opcode & 0xF0)

    @property
    def jmp_op(self) -> JmpOp:
        return JmpOp(self.opcode & 0xF0)

    @property
    def mode(self) -> Mode:
        return Mode(self.opcode & 0xE0)

    @property
    def size(self) -> Size:
        return Size(self.opcode & 0x18)

    @property
    def imm_u32(self) -> int:
        """The immediate as an unsigned 32-bit value (for LD_IMM64: the low half)."""
        return self.imm & 0xFFFFFFFF

    @property
    def imm_lo(self) -> int:
        """The first slot's 32-bit immediate, signed: for LD_IMM64 with a pseudo source the kernel reads
        only this half (a map fd, or a PSEUDO_FUNC's relative offset, which may be negative)."""
        return ((self.imm & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000

    @property
    def imm_u64(self) -> int:
        """The immediate as an unsigned 64-bit value (sign-extended first for 32-bit immediates)."""
        return self.imm & 0xFFFFFFFFFFFFFFFF

    def __str__(self) -> str:
        from bpfkit.isa.disasm import format_insn

        try:
            return format_insn(self)
        except AsmError:
            return repr(self)
