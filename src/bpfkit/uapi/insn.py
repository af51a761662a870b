"""Instruction-encoding constants of eBPF (RFC 9669 and the Linux extensions).

Facts from RFC 9669 and the kernel's UAPI headers `linux/bpf_common.h` and `linux/bpf.h`.
"""

from __future__ import annotations

from enum import IntEnum

INSN_SIZE = 8
"""Bytes per instruction slot; LD_IMM64 takes two slots."""

MAX_REG = 10
"""r10 is the read-only frame pointer; r0..r9 are general purpose."""


class InsnClass(IntEnum):
    """Low three bits of the opcode (`BPF_CLASS`)."""

    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06
    ALU64 = 0x07


class Size(IntEnum):
    """Access size bits of load/store opcodes (`BPF_SIZE`)."""

    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18

    @property
    def nbytes(self) -> int:
        return _SIZE_BYTES[self]


_SIZE_BYTES = {Size.W: 4, Size.H: 2, Size.B: 1, Size.DW: 8}
SIZE_OF_BYTES = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}


class Mode(IntEnum):
    """Mode bits of load/store opcodes (`BPF_MODE`)."""

    IMM = 0x00
    ABS = 0x20
    IND = 0x40
    MEM = 0x60
    MEMSX = 0x80
    ATOMIC = 0xC0


class Source(IntEnum):
    """Source bit of ALU and jump opcodes: immediate (`BPF_K`) or register (`BPF_X`)."""

    K = 0x00
    X = 0x08


class Endian(IntEnum):
    """Source bit of `BPF_END` in the ALU class: `BPF_TO_LE` / `BPF_TO_BE`."""

    TO_LE = 0x00
    TO_BE = 0x08


class AluOp(IntEnum):
    """Operation bits of ALU/ALU64 opcodes (`BPF_OP`)."""

    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90
    XOR = 0xA0
    MOV = 0xB0
    ARSH = 0xC0
    END = 0xD0


class JmpOp(IntEnum):
    """Operation bits of JMP/JMP32 opcodes (`BPF_OP`)."""

    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0
    JCOND = 0xE0


class AtomicOp(IntEnum):
    """The imm field of `BPF_STX | BPF_ATOMIC` instructions."""

    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    FETCH_ADD = 0x01
    FETCH_OR = 0x41
    FETCH_AND = 0x51
    FETCH_XOR = 0xA1
    XCHG = 0xE1
    CMPXCHG = 0xF1
    LOAD_ACQ = 0x100
    STORE_REL = 0x110


ATOMIC_FETCH = 0x01
"""`BPF_FETCH`: the atomic returns the old value in the source register (r0 for cmpxchg)."""


class PseudoSrc(IntEnum):
    """src_reg of LD_IMM64: what the 64-bit immediate means (`BPF_PSEUDO_*`)."""

    NONE = 0
    MAP_FD = 1
    MAP_VALUE = 2
    BTF_ID = 3
    FUNC = 4
    MAP_IDX = 5
    MAP_IDX_VALUE = 6


class PseudoCall(IntEnum):
    """src_reg of CALL: helper id, bpf-to-bpf relative call, or kernel function (kfunc) BTF id."""

    HELPER = 0
    CALL = 1
    KFUNC = 2


class JCond(IntEnum):
    """src_reg of `BPF_JMP | BPF_JCOND`."""

    MAY_GOTO = 0


class Reg(IntEnum):
    """eBPF registers."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10


FP = Reg.R10
"""The frame pointer."""

MAX_CALL_FRAMES = 8
"""`MAX_CALL_FRAMES` in include/linux/bpf_verifier.h: nesting limit of bpf-to-bpf calls."""

MAX_BPF_STACK = 512
"""Bytes of stack per frame (`MAX_BPF_STACK`)."""

MAX_TAIL_CALL_CNT = 33
"""`MAX_TAIL_CALL_CNT` in include/linux/bpf.h."""
