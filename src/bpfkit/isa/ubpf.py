"""The ubpf mnemonic dialect: the assembly syntax of the eBPF conformance vectors.

One instruction per line, `#` starts a comment, `name:` defines a label (alone or before an
instruction), and the first `exit` instruction is also the label `exit` unless the listing defines
`exit:` itself. Registers are `%r0`..`%r10`. Numbers are decimal or `0x` hex, optionally negative.
A 32-bit immediate is -2147483648..2147483647 in decimal; a hex immediate may also spell the bit
pattern up to 0xffffffff (so `0xffffffff` is -1). `lddw` takes 64 bits under the same rule. Offsets
are signed 16-bit in any base. A jump target is a label or a relative slot count `+N` / `-N`.

Mnemonics (`32` suffix = the 32-bit class: ALU instead of ALU64, JMP32 instead of JMP):

    add sub mul div sdiv mod smod or and lsh rsh xor mov arsh[32] %rD, %rS|imm
    neg[32] %rD
    movsx832 movsx864 movsx1632 movsx1664 movsx3264 %rD, %rS    sign-extending move (from, to bits)
    le16 le32 le64 be16 be32 be64 %rD                         ALU class BPF_END to little/big endian
    bswap16 bswap32 bswap64 %rD                               ALU64 BPF_END, unconditional swap
                                                              (`swap16`.. are accepted aliases)
    lddw %rD, imm64                                           LD_IMM64
    lddw %rD, map_fd N | map_idx N | btf_id N                 LD_IMM64 with a pseudo source
    lddw %rD, map_value FD, OFF | map_idx_value IDX, OFF      ... value pointer (imm = OFF << 32 | FD)
    lddw %rD, func LABEL|+N[, HI]                             ... subprogram address (relative, in
                                                              the low half; HI: the high half)
    ldxb ldxh ldxw ldxdw %rD, [%rS+off]                       load
    ldxsb ldxsh ldxsw %rD, [%rS+off]                          sign-extending load
    stb sth stw stdw [%rD+off], imm                           store immediate
    stxb stxh stxw stxdw [%rD+off], %rS                       store register
    ldabsb ldabsh ldabsw imm                                  legacy packet load (LD_ABS)
    ldindb ldindh ldindw %rS, imm                             legacy packet load (LD_IND)
    lock [fetch] add|or|and|xor[32] [%rD+off], %rS            atomic read-modify-write
    lock xchg[32] | lock cmpxchg[32] [%rD+off], %rS           (both always fetch; `lock fetch xchg`
                                                              is accepted too)
    ldacqb ldacqh ldacqw ldacqdw %rD, [%rS+off]               load-acquire (atomic imm 0x100)
    strelb strelh strelw streldw [%rD+off], %rS               store-release (atomic imm 0x110)
    ja TARGET                                                 JMP|JA, off
    ja32 TARGET                                               JMP32|JA ("gotol"), imm
    jeq jgt jge jset jne jsgt jsge jlt jle jslt jsle[32] %rD, %rS|imm, TARGET
    may_goto TARGET                                           JMP|JCOND
    call N | call helper N                                    helper call
    call local TARGET                                         bpf-to-bpf call (src 1, imm relative)
    call kfunc BTF_ID[, BTF_FD_INDEX]                         kernel function (src 2; `runtime` alias)
    call %rD                                                  callx (opcode 0x8d, register in dst)
    exit

`disassemble_ubpf` writes the first spelling of each line above; `assemble_ubpf` reads it back to the
same instructions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

from bpfkit.errors import AsmError
from bpfkit.isa.builder import Builder, Target
from bpfkit.isa.instruction import LD_IMM64, Instruction
from bpfkit.isa.opcodes import OPCODES, Kind, field_error
from bpfkit.uapi.insn import (
    ATOMIC_FETCH,
    MAX_REG,
    AluOp,
    AtomicOp,
    Endian,
    InsnClass,
    JmpOp,
    Mode,
    PseudoCall,
    PseudoSrc,
    Reg,
    Size,
    Source,
)

__all__ = ["assemble_ubpf", "disassemble_ubpf", "format_ubpf"]

_REG_RE = re.compile(r"%r(\d+)\Z", re.IGNORECASE)
_INT_RE = re.compile(r"([+-]?)\s*(0[xX][0-9a-fA-F]+|[0-9]+)\Z")
_LABEL_RE = re.compile(r"[A-Za-z_.$][\w.$]*\Z")
_MEM_RE = re.compile(r"\[\s*([^\]+\-\s]+)\s*(?:([+-])\s*([^\]\s]+)\s*)?\]\Z")
_LINE_RE = re.compile(r"(\S+)\s*(.*)\Z")
_LOCK_RE = re.compile(r"(?:(fetch)\s+)?([A-Za-z_]\w*)\s*(.*)\Z")

_SIZE_SUFFIX: dict[Size, str] = {Size.B: "b", Size.H: "h", Size.W: "w", Size.DW: "dw"}
_SUFFIX_SIZE: dict[str, Size] = {v: k for k, v in _SIZE_SUFFIX.items()}

# ALU operation name -> (op, off). off=1 selects the signed variants of DIV and MOD.
_ALU: dict[str, tuple[AluOp, int]] = {
    "add": (AluOp.ADD, 0), "sub": (AluOp.SUB, 0), "mul": (AluOp.MUL, 0), "div": (AluOp.DIV, 0),
    "sdiv": (AluOp.DIV, 1), "or": (AluOp.OR, 0), "and": (AluOp.AND, 0), "lsh": (AluOp.LSH, 0),
    "rsh": (AluOp.RSH, 0), "mod": (AluOp.MOD, 0), "smod": (AluOp.MOD, 1), "xor": (AluOp.XOR, 0),
    "mov": (AluOp.MOV, 0), "arsh": (AluOp.ARSH, 0),
}
_ALU_NAME: dict[tuple[AluOp, int], str] = {v: k for k, v in _ALU.items()}

_JUMP: dict[str, JmpOp] = {
    "jeq": JmpOp.JEQ, "jgt": JmpOp.JGT, "jge": JmpOp.JGE, "jset": JmpOp.JSET, "jne": JmpOp.JNE,
    "jsgt": JmpOp.JSGT, "jsge": JmpOp.JSGE, "jlt": JmpOp.JLT, "jle": JmpOp.JLE, "jslt": JmpOp.JSLT,
    "jsle": JmpOp.JSLE,
}
_JUMP_NAME: dict[JmpOp, str] = {v: k for k, v in _JUMP.items()}

# movsx<from><to>: the source width and whether the destination is 64-bit.
_MOVSX: dict[str, tuple[int, bool]] = {
    "movsx832": (8, False), "movsx864": (8, True), "movsx1632": (16, False),
    "movsx1664": (16, True), "movsx3264": (32, True),
}

_ATOMIC_RMW: dict[str, AtomicOp] = {
    "add": AtomicOp.ADD, "or": AtomicOp.OR, "and": AtomicOp.AND, "xor": AtomicOp.XOR,
    "xchg": AtomicOp.XCHG, "cmpxchg": AtomicOp.CMPXCHG,
}
_ATOMIC_NAME: dict[int, str] = {int(op): name for name, op in _ATOMIC_RMW.items()}
_ALWAYS_FETCH = (AtomicOp.XCHG, AtomicOp.CMPXCHG)

_ENDIAN_ORDER: dict[str, Literal["le", "be", "swap"]] = {
    "le": "le", "be": "be", "bswap": "swap", "swap": "swap",
}

_PSEUDO_NAMES: dict[str, PseudoSrc] = {
    "map_fd": PseudoSrc.MAP_FD, "map_value": PseudoSrc.MAP_VALUE, "btf_id": PseudoSrc.BTF_ID,
    "func": PseudoSrc.FUNC, "map_idx": PseudoSrc.MAP_IDX, "map_idx_value": PseudoSrc.MAP_IDX_VALUE,
}
_PSEUDO_NAME: dict[PseudoSrc, str] = {v: k for k, v in _PSEUDO_NAMES.items()}
_PAIRED_PSEUDO = (PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX_VALUE)

_CALL_MODES = frozenset({"helper", "local", "kfunc", "runtime"})

_Handler = Callable[[str, list[str]], None]


def _mnemonic_table() -> dict[str, tuple[tuple[int, ...], str, str]]:
    """Mnemonic -> (accepted operand counts, usage, name of the `_Assembler` handler method)."""
    h: dict[str, tuple[tuple[int, ...], str, str]] = {}
    for name in _ALU:
        for suffix in ("", "32"):
            h[name + suffix] = ((2,), f"{name}{suffix} %rD, %rS|imm", "_alu")
    h["neg"] = h["neg32"] = ((1,), "neg[32] %rD", "_neg")
    for name in _MOVSX:
        h[name] = ((2,), f"{name} %rD, %rS", "_movsx")
    for bits in (16, 32, 64):
        for prefix in ("le", "be", "bswap", "swap"):
            h[f"{prefix}{bits}"] = ((1,), f"{prefix}{bits} %rD", "_endian")
    h["lddw"] = ((2, 3), "lddw %rD, imm64 | lddw %rD, <pseudo> N[, OFF]", "_lddw")
    for size, sfx in _SIZE_SUFFIX.items():
        h[f"ldx{sfx}"] = ((2,), f"ldx{sfx} %rD, [%rS+off]", "_ldx")
        h[f"st{sfx}"] = ((2,), f"st{sfx} [%rD+off], imm", "_st")
        h[f"stx{sfx}"] = ((2,), f"stx{sfx} [%rD+off], %rS", "_stx")
        h[f"ldacq{sfx}"] = ((2,), f"ldacq{sfx} %rD, [%rS+off]", "_ldacq")
        h[f"strel{sfx}"] = ((2,), f"strel{sfx} [%rD+off], %rS", "_strel")
        if size is not Size.DW:
            h[f"ldxs{sfx}"] = ((2,), f"ldxs{sfx} %rD, [%rS+off]", "_ldx")
            h[f"ldabs{sfx}"] = ((1,), f"ldabs{sfx} imm", "_ldabs")
            h[f"ldind{sfx}"] = ((2,), f"ldind{sfx} %rS, imm", "_ldind")
    for name in _JUMP:
        for suffix in ("", "32"):
            h[name + suffix] = ((3,), f"{name}{suffix} %rD, %rS|imm, label|+N", "_jump")
    h["ja"] = ((1,), "ja label|+N", "_ja")
    h["ja32"] = ((1,), "ja32 label|+N", "_ja")
    h["may_goto"] = ((1,), "may_goto label|+N", "_may_goto")
    h["call"] = ((1, 2), "call N | call local label | call kfunc ID[, IDX] | call %rD", "_call")
    h["exit"] = ((0,), "exit", "_exit")
    return h


_MNEMONICS = _mnemonic_table()


class _Assembler:
    """One pass over the listing, emitting into a `Builder`; labels are resolved by `Builder.build`."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.b = Builder()
        self.lineno = 0
        self.source = ""
        self.insn_lines: list[int] = []  # source line of each emitted instruction
        self.exit_label = not any(self._explicit_exit_label(ln) for ln in self.lines)

    @staticmethod
    def _explicit_exit_label(line: str) -> bool:
        return re.match(r"\s*exit\s*:", line.split("#", 1)[0]) is not None

    # -- errors and operands --------------------------------------------------------------------
    def error(self, message: str) -> AsmError:
        return AsmError(message, line=self.lineno, source=self.source)

    def reg(self, text: str) -> Reg:
        m = _REG_RE.match(text)
        if m is None:
            raise self.error(f"expected a register %r0..%r{MAX_REG}, got {text!r}")
        n = int(m.group(1))
        if n > MAX_REG:
            raise self.error(f"invalid register {text!r}: registers are %r0..%r{MAX_REG}")
        return Reg(n)

    def number(self, text: str, bits: int, what: str, *, pattern: bool = True) -> int:
        """Parse a decimal or hex integer of a `bits`-wide field.

        Decimal (and negative) values must fit the signed range; with `pattern`, a non-negative hex
        value may also spell the field's unsigned bit pattern.
        """
        m = _INT_RE.match(text.strip())
        if m is None:
            raise self.error(f"expected {what} (a decimal or 0x hex number), got {text!r}")
        sign, digits = m.groups()
        is_hex = digits[:2].lower() == "0x"
        value = int(digits, 16 if is_hex else 10)
        if sign == "-":
            value = -value
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if pattern and is_hex and sign != "-":
            hi = (1 << bits) - 1
        if not lo <= value <= hi:
            shown = text.strip()
            if not pattern:
                raise self.error(f"{what} {shown} is out of range {lo}..{hi}")
            if is_hex and sign != "-":
                raise self.error(f"{what} {shown} is out of range: a {bits}-bit {what} is at most "
                                 f"{hi:#x} in hex")
            raise self.error(f"{what} {shown} is out of range: a {bits}-bit {what} is {lo}..{hi} in "
                             f"decimal (hex up to {(1 << bits) - 1:#x} spells the bit pattern)")
        return value

    def imm(self, text: str) -> int:
        return self.number(text, 32, "immediate")

    def mem(self, text: str) -> tuple[Reg, int]:
        m = _MEM_RE.match(text.strip())
        if m is None:
            raise self.error(f"expected a memory operand [%rN+offset], got {text!r}")
        reg = self.reg(m.group(1))
        if m.group(2) is None:
            return reg, 0
        return reg, self.number(m.group(2) + m.group(3), 16, "offset", pattern=False)

    def target(self, text: str, bits: int) -> Target:
        text = text.strip()
        if text[:1] in ("+", "-"):
            return self.number(text, bits, "jump offset", pattern=False)
        if _LABEL_RE.match(text):
            return text
        raise self.error(f"expected a label or a relative offset +N/-N, got {text!r}")

    def operand(self, text: str) -> Reg | int:
        """A register or a 32-bit immediate (the source operand of ALU and jump instructions)."""
        return self.reg(text) if text.startswith("%") else self.imm(text)

    # -- handlers -------------------------------------------------------------------------------
    def _alu(self, mn: str, ops: list[str]) -> None:
        is64 = not mn.endswith("32")
        op, off = _ALU[mn if is64 else mn[:-2]]
        cls = InsnClass.ALU64 if is64 else InsnClass.ALU
        dst, x = self.reg(ops[0]), self.operand(ops[1])
        if isinstance(x, Reg):
            self.emit(Instruction(cls | op | Source.X, dst, x, off, 0))
        else:
            self.emit(Instruction(cls | op | Source.K, dst, 0, off, x))

    def _neg(self, mn: str, ops: list[str]) -> None:
        self.b.neg(self.reg(ops[0]), is64=mn == "neg")

    def _movsx(self, mn: str, ops: list[str]) -> None:
        bits, is64 = _MOVSX[mn]
        self.b.movsx(self.reg(ops[0]), self.reg(ops[1]), bits, is64=is64)

    def _endian(self, mn: str, ops: list[str]) -> None:
        prefix = mn.rstrip("0123456789")
        self.b.endian(self.reg(ops[0]), int(mn[len(prefix):]), _ENDIAN_ORDER[prefix])

    def _lddw(self, mn: str, ops: list[str]) -> None:
        dst = self.reg(ops[0])
        words = ops[1].split()
        if len(words) == 1 and words[0] not in _PSEUDO_NAMES:
            if len(ops) != 2:
                raise self.error("lddw with a plain immediate takes 2 operands: lddw %rD, imm64")
            self.b.ld_imm64(dst, self.number(words[0], 64, "immediate"))
            return
        if len(words) != 2 or words[0] not in _PSEUDO_NAMES:
            raise self.error(f"expected an immediate or '<pseudo> N' ({', '.join(_PSEUDO_NAMES)}), "
                             f"got {ops[1]!r}")
        pseudo = _PSEUDO_NAMES[words[0]]
        paired = pseudo in _PAIRED_PSEUDO
        if pseudo is PseudoSrc.FUNC:
            # The relative offset is the low half; a (rare) non-zero high half is a third operand.
            hi = self.number(ops[2], 32, "high half") if len(ops) == 3 else 0
            insn = Instruction(LD_IMM64, dst, PseudoSrc.FUNC, 0, (hi & 0xFFFFFFFF) << 32)
            self.b.emit_ref(insn, self.target(words[1], 32), "imm")
            return
        if len(ops) != (3 if paired else 2):
            usage = f"lddw %rD, {words[0]} N, OFF" if paired else f"lddw %rD, {words[0]} N"
            raise self.error(f"wrong number of operands: {usage}")
        if paired:
            lo = self.number(words[1], 32, "map reference")
            hi = self.number(ops[2], 32, "value offset")
            self.b.ld_imm64(dst, (hi & 0xFFFFFFFF) << 32 | (lo & 0xFFFFFFFF), pseudo)
        else:
            self.b.ld_imm64(dst, self.number(words[1], 64, "immediate"), pseudo)

    def _ldx(self, mn: str, ops: list[str]) -> None:
        signed = mn.startswith("ldxs")
        size = _SUFFIX_SIZE[mn[4:] if signed else mn[3:]]
        src, off = self.mem(ops[1])
        mode = Mode.MEMSX if signed else Mode.MEM
        self.emit(Instruction(InsnClass.LDX | mode | size, self.reg(ops[0]), src, off))

    def _st(self, mn: str, ops: list[str]) -> None:
        dst, off = self.mem(ops[0])
        self.emit(Instruction(InsnClass.ST | Mode.MEM | _SUFFIX_SIZE[mn[2:]], dst, 0, off, self.imm(ops[1])))

    def _stx(self, mn: str, ops: list[str]) -> None:
        dst, off = self.mem(ops[0])
        self.emit(Instruction(InsnClass.STX | Mode.MEM | _SUFFIX_SIZE[mn[3:]], dst, self.reg(ops[1]), off))

    def _ldacq(self, mn: str, ops: list[str]) -> None:
        # Load-acquire: dst = *(src + off); the address is in src (kernel/bpf/core.c LOAD_ACQ).
        src, off = self.mem(ops[1])
        opcode = InsnClass.STX | Mode.ATOMIC | _SUFFIX_SIZE[mn[5:]]
        self.emit(Instruction(opcode, self.reg(ops[0]), src, off, AtomicOp.LOAD_ACQ))

    def _strel(self, mn: str, ops: list[str]) -> None:
        dst, off = self.mem(ops[0])
        opcode = InsnClass.STX | Mode.ATOMIC | _SUFFIX_SIZE[mn[5:]]
        self.emit(Instruction(opcode, dst, self.reg(ops[1]), off, AtomicOp.STORE_REL))

    def _ldabs(self, mn: str, ops: list[str]) -> None:
        self.b.ld_abs(_SUFFIX_SIZE[mn[5:]].nbytes, self.imm(ops[0]))

    def _ldind(self, mn: str, ops: list[str]) -> None:
        self.b.ld_ind(_SUFFIX_SIZE[mn[5:]].nbytes, self.reg(ops[0]), self.imm(ops[1]))

    def _jump(self, mn: str, ops: list[str]) -> None:
        is64 = not mn.endswith("32")
        name = mn if is64 else mn[:-2]
        self.b.jmp(name, self.reg(ops[0]), self.operand(ops[1]), self.target(ops[2], 16), is64=is64)

    def _ja(self, mn: str, ops: list[str]) -> None:
        long = mn == "ja32"
        self.b.ja(self.target(ops[0], 32 if long else 16), long=long)

    def _may_goto(self, mn: str, ops: list[str]) -> None:
        self.b.may_goto(self.target(ops[0], 16))

    def _call(self, mn: str, ops: list[str]) -> None:
        words = ops[0].split()
        if len(words) == 1 and len(ops) == 1 and words[0] not in _CALL_MODES:
            if words[0].startswith("%"):
                self.b.callx(self.reg(words[0]))
            else:
                self.b.call(self.imm(words[0]))
            return
        kind = words[0]
        if len(words) == 2 and kind == "helper" and len(ops) == 1:
            self.b.call(self.imm(words[1]))
        elif len(words) == 2 and kind == "local" and len(ops) == 1:
            self.b.call_local(self.target(words[1], 32))
        elif len(words) == 2 and kind in ("kfunc", "runtime"):
            off = self.number(ops[1], 16, "BTF fd index", pattern=False) if len(ops) == 2 else 0
            self.b.call_kfunc(self.imm(words[1]), off)
        else:
            raise self.error("call takes a helper id (call N), a register (call %rD), "
                             "'local <label>' or 'kfunc <btf id>[, <btf fd index>]'")

    def _exit(self, mn: str, ops: list[str]) -> None:
        if self.exit_label and not self.b.has_label("exit"):
            self.b.label("exit")
        self.b.exit()

    def _lock(self, rest: str) -> None:
        usage = "lock [fetch] add|or|and|xor|xchg|cmpxchg[32] [%rD+off], %rS"
        m = _LOCK_RE.match(rest)
        if m is None or m.group(2) == "fetch":
            raise self.error(f"lock needs an operation and 2 operands: {usage}")
        fetch, op, operands = m.groups()
        is64 = not op.endswith("32")
        name = op if is64 else op[:-2]
        if name not in _ATOMIC_RMW:
            raise self.error(f"unknown atomic operation {op!r}: {usage}")
        ops = _split_operands(operands)
        if len(ops) != 2:
            raise self.error(f"invalid number of operands for lock {op}: expected 2, got {len(ops)}"
                             f" ({usage})")
        dst, off = self.mem(ops[0])
        code = int(_ATOMIC_RMW[name]) | (ATOMIC_FETCH if fetch else 0)
        size = Size.DW if is64 else Size.W
        self.emit(Instruction(InsnClass.STX | Mode.ATOMIC | size, dst, self.reg(ops[1]), off, code))

    # -- driver ---------------------------------------------------------------------------------
    def emit(self, insn: Instruction) -> None:
        self.b.emit(insn)

    def run(self) -> list[Instruction]:
        for lineno, raw in enumerate(self.lines, 1):
            self.lineno, self.source = lineno, raw
            self.b.line = lineno
            text = raw.split("#", 1)[0].strip()
            while text:
                m = _LINE_RE.match(text)
                assert m is not None
                head, rest = m.groups()
                if head.endswith(":") or rest.startswith(":"):
                    text = self._label(head, rest)
                    continue
                self._instruction(head, rest)
                break
        try:
            insns = self.b.build()
        except AsmError as e:
            if e.line is not None and e.source is None:
                raise AsmError(e.message, index=e.index, line=e.line,
                               source=self.lines[e.line - 1]) from None
            raise
        slot = 0
        for insn, lineno in zip(insns, self.insn_lines, strict=True):
            err = field_error(insn.opcode, insn.dst, insn.src, insn.off,
                              _first_slot_imm(insn))
            if err:
                raise AsmError(err, index=slot, line=lineno, source=self.lines[lineno - 1])
            slot += insn.width
        return insns

    def _label(self, head: str, rest: str) -> str:
        if head.endswith(":"):
            name, rest = head[:-1], rest
        else:
            name, rest = head, rest[1:].strip()
        if not _LABEL_RE.match(name):
            raise self.error(f"invalid label name {name!r}")
        self.b.label(name)
        return rest

    def _instruction(self, head: str, rest: str) -> None:
        mnemonic = head.lower()
        before = len(self.b)
        if mnemonic == "lock":
            self._lock(rest)
        else:
            entry = _MNEMONICS.get(mnemonic)
            if entry is None:
                raise self.error(f"invalid mnemonic {head!r}")
            counts, usage, method = entry
            handler: _Handler = getattr(self, method)
            ops = _split_operands(rest)
            if len(ops) not in counts:
                want = " or ".join(str(c) for c in counts)
                raise self.error(f"invalid number of operands for {mnemonic}: expected {want}, got "
                                 f"{len(ops)} ({usage})")
            if any(not op for op in ops):
                raise self.error(f"empty operand ({usage})")
            try:
                handler(mnemonic, ops)
            except AsmError as e:
                if e.line is None:  # from Instruction/Builder: add where it happened
                    raise self.error(e.message) from None
                raise
        self.insn_lines.extend([self.lineno] * (len(self.b) - before))


def _split_operands(rest: str) -> list[str]:
    rest = rest.strip()
    return [op.strip() for op in rest.split(",")] if rest else []


def _first_slot_imm(insn: Instruction) -> int:
    if insn.opcode != LD_IMM64:
        return insn.imm
    lo = insn.imm & 0xFFFFFFFF
    return lo - (1 << 32) if lo & 0x80000000 else lo


def assemble_ubpf(text: str) -> list[Instruction]:
    """Assemble a listing in the ubpf dialect; `AsmError` names the source line of any fault."""
    return _Assembler(text).run()


# -- disassembler ---------------------------------------------------------------------------------
def _imm_text(value: int, bits: int = 32) -> str:
    """Small values in decimal, large ones as hex bit patterns (which `assemble_ubpf` reads back)."""
    if -0x10000 < value < 0x10000:
        return str(value)
    return hex(value & ((1 << bits) - 1))


def _mem_text(reg: int, off: int) -> str:
    if off == 0:
        return f"[%r{reg}]"
    return f"[%r{reg}{off:+d}]"


def _rel(value: int, labels: dict[int, str], slot: int) -> str:
    return labels.get(slot + 1 + value, f"{value:+d}")


def _relative_field(insn: Instruction, kind: Kind) -> int | None:
    """The relative target of a jump, local call or function address, or None."""
    if kind is Kind.JUMP or kind is Kind.JCOND or (kind is Kind.JA and insn.cls is InsnClass.JMP):
        return insn.off
    if kind is Kind.JA or (kind is Kind.CALL and insn.src == PseudoCall.CALL):
        return insn.imm
    if kind is Kind.LD_IMM64 and insn.src == PseudoSrc.FUNC:
        return _first_slot_imm(insn)
    return None


def format_ubpf(insn: Instruction, *, slot: int = 0, labels: dict[int, str] | None = None) -> str:
    """One instruction in the ubpf dialect; raises `AsmError` for an invalid encoding."""
    err = field_error(insn.opcode, insn.dst, insn.src, insn.off, _first_slot_imm(insn))
    if err:
        raise AsmError(f"cannot disassemble an invalid encoding: {err}", index=slot)
    labels = labels or {}
    kind = OPCODES[insn.opcode].kind
    op, dst, src, off, imm = insn.opcode, insn.dst, insn.src, insn.off, insn.imm
    sfx32 = "32" if insn.cls in (InsnClass.ALU, InsnClass.JMP32) else ""
    if kind is Kind.ALU:
        alu = AluOp(op & 0xF0)
        if alu is AluOp.NEG:
            return f"neg{sfx32} %r{dst}"
        if alu is AluOp.MOV and insn.source is Source.X and off:
            return f"movsx{off}{'32' if sfx32 else '64'} %r{dst}, %r{src}"
        name = _ALU_NAME[(alu, off if alu in (AluOp.DIV, AluOp.MOD) else 0)] + sfx32
        x = f"%r{src}" if insn.source is Source.X else _imm_text(imm)
        return f"{name} %r{dst}, {x}"
    if kind is Kind.END:
        if insn.cls is InsnClass.ALU64:
            return f"bswap{imm} %r{dst}"
        return f"{'be' if op & 0x08 == Endian.TO_BE else 'le'}{imm} %r{dst}"
    if kind is Kind.JUMP:
        x = f"%r{src}" if insn.source is Source.X else _imm_text(imm)
        return f"{_JUMP_NAME[JmpOp(op & 0xF0)]}{sfx32} %r{dst}, {x}, {_rel(off, labels, slot)}"
    if kind is Kind.JA:
        if insn.cls is InsnClass.JMP32:
            return f"ja32 {_rel(imm, labels, slot)}"
        return f"ja {_rel(off, labels, slot)}"
    if kind is Kind.JCOND:
        return f"may_goto {_rel(off, labels, slot)}"
    if kind is Kind.CALL:
        if src == PseudoCall.CALL:
            return f"call local {_rel(imm, labels, slot)}"
        if src == PseudoCall.KFUNC:
            return f"call kfunc {imm}" + (f", {off}" if off else "")
        return f"call {imm}"
    if kind is Kind.CALLX:
        return f"call %r{dst}"
    if kind is Kind.EXIT:
        return "exit"
    if kind is Kind.LD_IMM64:
        return f"lddw %r{dst}, {_lddw_operand(insn, labels, slot)}"
    sz = _SIZE_SUFFIX[insn.size]
    if kind is Kind.LD_ABS:
        return f"ldabs{sz} {_imm_text(imm)}"
    if kind is Kind.LD_IND:
        return f"ldind{sz} %r{src}, {_imm_text(imm)}"
    if kind is Kind.LDX:
        return f"ldx{'s' if insn.mode is Mode.MEMSX else ''}{sz} %r{dst}, {_mem_text(src, off)}"
    if kind is Kind.ST:
        return f"st{sz} {_mem_text(dst, off)}, {_imm_text(imm)}"
    if kind is Kind.STX:
        return f"stx{sz} {_mem_text(dst, off)}, %r{src}"
    # Kind.ATOMIC
    if imm == AtomicOp.LOAD_ACQ:
        return f"ldacq{sz} %r{dst}, {_mem_text(src, off)}"
    if imm == AtomicOp.STORE_REL:
        return f"strel{sz} {_mem_text(dst, off)}, %r{src}"
    always = imm in _ALWAYS_FETCH
    name = _ATOMIC_NAME[imm if always else imm & ~ATOMIC_FETCH]
    fetch = "fetch " if imm & ATOMIC_FETCH and not always else ""
    width = "" if insn.size is Size.DW else "32"
    return f"lock {fetch}{name}{width} {_mem_text(dst, off)}, %r{src}"


def _lddw_operand(insn: Instruction, labels: dict[int, str], slot: int) -> str:
    pseudo = PseudoSrc(insn.src)
    if pseudo is PseudoSrc.NONE:
        return _imm_text(insn.imm, 64)
    name = _PSEUDO_NAME[pseudo]
    if pseudo is PseudoSrc.FUNC:
        hi = (insn.imm >> 32) & 0xFFFFFFFF
        rel = _rel(_first_slot_imm(insn), labels, slot)
        return f"{name} {rel}, {_imm_text(hi)}" if hi else f"{name} {rel}"
    if pseudo in _PAIRED_PSEUDO:
        lo, hi = insn.imm & 0xFFFFFFFF, (insn.imm >> 32) & 0xFFFFFFFF
        return f"{name} {_imm_text(lo)}, {_imm_text(hi)}"
    return f"{name} {_imm_text(insn.imm, 64)}"


def disassemble_ubpf(insns: Sequence[Instruction], *, labels: bool = False) -> str:
    """Disassemble into the ubpf dialect, one instruction per line.

    Jump targets are relative (`+N`) unless `labels` is true, in which case every target that lands
    on an instruction (or just past the last one) gets a label `L<n>`. Raises `AsmError` naming the
    slot of an invalid encoding.
    """
    starts: list[int] = []
    slot = 0
    for insn in insns:
        starts.append(slot)
        slot += insn.width
    names: dict[int, str] = {}
    if labels:
        valid = set(starts) | {slot}
        targets = set()
        for start, insn in zip(starts, insns, strict=True):
            spec = OPCODES.get(insn.opcode)
            rel = _relative_field(insn, spec.kind) if spec else None
            if rel is not None and start + 1 + rel in valid:
                targets.add(start + 1 + rel)
        names = {t: f"L{i}" for i, t in enumerate(sorted(targets))}
    out: list[str] = []
    for start, insn in zip(starts, insns, strict=True):
        if start in names:
            out.append(f"{names[start]}:")
        out.append(format_ubpf(insn, slot=start, labels=names))
    if slot in names:
        out.append(f"{names[slot]}:")
    return "\n".join(out) + "\n" if out else ""
