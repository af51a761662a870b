"""The opcode validity table: the single source of truth for which encodings are valid.

Every opcode byte the kernel accepts has an `OpSpec` saying what kind of instruction it is and which
values its dst, src, off and imm fields may hold. The decoder, the assembler, the VM and the verifier
all consult this table; nothing else decides whether an encoding is valid.
Facts: RFC 9669 sections 3-5 and the Linux extensions (kernel/bpf/verifier.c `check_*` field checks).
"""

from __future__ import annotations

from enum import Enum

from bpfkit._records import record
from bpfkit.uapi.insn import (
    MAX_REG,
    AluOp,
    AtomicOp,
    InsnClass,
    JmpOp,
    Mode,
    PseudoCall,
    PseudoSrc,
    Size,
    Source,
)


class Kind(Enum):
    """What an opcode does, at the granularity the assembler and VM dispatch on."""

    ALU = "alu"  # binary/unary arithmetic, MOV, MOVSX, SDIV/SMOD
    END = "end"  # byte swaps (BPF_END in ALU and ALU64)
    JA = "ja"  # unconditional jump: off (JMP) or imm (JMP32, "gotol")
    JCOND = "jcond"  # may_goto
    JUMP = "jump"  # conditional jumps
    CALL = "call"
    CALLX = "callx"
    EXIT = "exit"
    LD_IMM64 = "ld_imm64"
    LD_ABS = "ld_abs"
    LD_IND = "ld_ind"
    LDX = "ldx"  # load, zero- or sign-extending
    ST = "st"  # store immediate
    STX = "stx"  # store register
    ATOMIC = "atomic"


REG = frozenset(range(MAX_REG + 1))
ZERO = frozenset({0})
ANY = None  # the field may hold any value of its width


FieldRule = frozenset[int] | None


@record
class OpSpec:
    """The valid shape of one opcode."""

    opcode: int
    kind: Kind
    dst: FieldRule
    src: FieldRule
    off: FieldRule
    imm: FieldRule

    @property
    def cls(self) -> InsnClass:
        return InsnClass(self.opcode & 0x07)


def _alu_specs() -> list[OpSpec]:
    specs = []
    for cls in (InsnClass.ALU, InsnClass.ALU64):
        for op in AluOp:
            for source in Source:
                code = cls | op | source
                if op is AluOp.END:
                    if cls is InsnClass.ALU64 and source is Source.X:
                        continue  # only BPF_ALU64|BPF_END|BPF_TO_LE (bswap) exists
                    specs.append(OpSpec(code, Kind.END, REG, ZERO, ZERO, frozenset({16, 32, 64})))
                    continue
                if op is AluOp.NEG:
                    if source is Source.X:
                        continue
                    specs.append(OpSpec(code, Kind.ALU, REG, ZERO, ZERO, ZERO))
                    continue
                if op in (AluOp.DIV, AluOp.MOD):
                    off: FieldRule = frozenset({0, 1})  # off=1: signed (SDIV/SMOD)
                elif op is AluOp.MOV and source is Source.X:
                    # MOVSX: off is the source width to sign-extend from.
                    off = frozenset({0, 8, 16, 32}) if cls is InsnClass.ALU64 else frozenset({0, 8, 16})
                else:
                    off = ZERO
                if source is Source.K:
                    specs.append(OpSpec(code, Kind.ALU, REG, ZERO, off, ANY))
                else:
                    specs.append(OpSpec(code, Kind.ALU, REG, REG, off, ZERO))
    return specs


_CONDITIONAL = (
    JmpOp.JEQ, JmpOp.JGT, JmpOp.JGE, JmpOp.JSET, JmpOp.JNE, JmpOp.JSGT, JmpOp.JSGE,
    JmpOp.JLT, JmpOp.JLE, JmpOp.JSLT, JmpOp.JSLE,
)


def _jmp_specs() -> list[OpSpec]:
    specs = []
    for cls in (InsnClass.JMP, InsnClass.JMP32):
        for op in _CONDITIONAL:
            specs.append(OpSpec(cls | op | Source.K, Kind.JUMP, REG, ZERO, ANY, ANY))
            specs.append(OpSpec(cls | op | Source.X, Kind.JUMP, REG, REG, ANY, ZERO))
    specs.append(OpSpec(InsnClass.JMP | JmpOp.JA, Kind.JA, ZERO, ZERO, ANY, ZERO))
    specs.append(OpSpec(InsnClass.JMP32 | JmpOp.JA, Kind.JA, ZERO, ZERO, ZERO, ANY))
    specs.append(OpSpec(InsnClass.JMP | JmpOp.JCOND, Kind.JCOND, ZERO, ZERO, ANY, ZERO))
    # CALL: src says helper / bpf-to-bpf / kfunc; off is the kfunc's BTF fd index, else zero. The
    # table allows off for every src; `field_error` narrows it for helpers and local calls.
    specs.append(OpSpec(InsnClass.JMP | JmpOp.CALL, Kind.CALL, ZERO,
                        frozenset(int(p) for p in PseudoCall), ANY, ANY))
    specs.append(OpSpec(InsnClass.JMP | JmpOp.CALL | Source.X, Kind.CALLX, REG, ZERO, ZERO, ZERO))
    specs.append(OpSpec(InsnClass.JMP | JmpOp.EXIT, Kind.EXIT, ZERO, ZERO, ZERO, ZERO))
    return specs


_ATOMIC_RMW = frozenset(int(a) for a in AtomicOp if a not in (AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL))
_ATOMIC_ORDERED = frozenset({int(AtomicOp.LOAD_ACQ), int(AtomicOp.STORE_REL)})


def _mem_specs() -> list[OpSpec]:
    specs = [OpSpec(InsnClass.LD | Mode.IMM | Size.DW, Kind.LD_IMM64, REG,
                    frozenset(int(p) for p in PseudoSrc), ZERO, ANY)]
    for size in (Size.W, Size.H, Size.B):
        specs.append(OpSpec(InsnClass.LD | Mode.ABS | size, Kind.LD_ABS, ZERO, ZERO, ZERO, ANY))
        specs.append(OpSpec(InsnClass.LD | Mode.IND | size, Kind.LD_IND, ZERO, REG, ZERO, ANY))
    for size in Size:
        specs.append(OpSpec(InsnClass.LDX | Mode.MEM | size, Kind.LDX, REG, REG, ANY, ZERO))
        if size is not Size.DW:
            specs.append(OpSpec(InsnClass.LDX | Mode.MEMSX | size, Kind.LDX, REG, REG, ANY, ZERO))
        specs.append(OpSpec(InsnClass.ST | Mode.MEM | size, Kind.ST, REG, ZERO, ANY, ANY))
        specs.append(OpSpec(InsnClass.STX | Mode.MEM | size, Kind.STX, REG, REG, ANY, ZERO))
        if size in (Size.W, Size.DW):
            imm = _ATOMIC_RMW | _ATOMIC_ORDERED
        else:
            imm = _ATOMIC_ORDERED  # 8/16-bit atomics exist only as load-acquire/store-release
        specs.append(OpSpec(InsnClass.STX | Mode.ATOMIC | size, Kind.ATOMIC, REG, REG, ANY, imm))
    return specs


OPCODES: dict[int, OpSpec] = {s.opcode: s for s in (*_alu_specs(), *_jmp_specs(), *_mem_specs())}
"""Every valid opcode byte -> its spec."""

_FIELD_BITS = {"dst": 4, "src": 4, "off": 16, "imm": 32}


def _describe(rule: frozenset[int]) -> str:
    if rule == REG:
        return "a register r0..r10"
    if rule == ZERO:
        return "0"
    return "one of " + ", ".join(hex(v) if v > 64 else str(v) for v in sorted(rule))


def field_error(opcode: int, dst: int, src: int, off: int, imm: int) -> str | None:
    """Why this encoding is invalid, or None if it is valid.

    For LD_IMM64, `imm` is the first slot's 32-bit immediate; the second slot is checked by the decoder.
    """
    spec = OPCODES.get(opcode)
    if spec is None:
        return f"unknown opcode {opcode:#04x}"
    for name, value, rule in (("dst", dst, spec.dst), ("src", src, spec.src),
                              ("off", off, spec.off), ("imm", imm, spec.imm)):
        if rule is not None and value not in rule:
            return f"opcode {opcode:#04x} ({spec.kind.value}): {name} must be {_describe(rule)}, not {value}"
    if spec.kind is Kind.CALL and src != PseudoCall.KFUNC and off != 0:
        return f"opcode {opcode:#04x} (call): off must be 0 unless the call is a kfunc call, not {off}"
    if spec.kind is Kind.ATOMIC:
        if imm == AtomicOp.LOAD_ACQ and src > MAX_REG:
            return f"opcode {opcode:#04x} (load-acquire): src must be a register"
    return None
