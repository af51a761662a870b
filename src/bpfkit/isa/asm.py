"""Assembler of the `llvm` dialect: the text of llvm-objdump and the kernel verifier log to instructions.

Reads everything `bpfkit.isa.disasm` prints, llvm-objdump's own spellings (with or without alu32 `w`
registers) and the kernel verifier log's (also `bpftool prog dump xlated`): `(r10 -4)`, `goto pc+3`,
`call bpf_map_lookup_elem#1`, `call pc+5#name`, `atomic64_fetch_add(...)`, `r1 = map[id:5]`,
`r1 = map[id:5][0]+8`, `r2 = subprog[+3]`, a leading `12: (bf)` index and opcode (an LD_IMM64 shows
no `ll` there; the opcode says so). Per line: comments (`;`, `//`, and `#` at the start or after a
blank), labels `name:`, then one instruction; a trailing `<label>` annotation as llvm-objdump prints
it is checked against the offset when it names a label of the listing and ignored otherwise.
Jump targets are labels or signed relative offsets (`+2`, `-1`, `pc+2`); an unsigned number after
`call` is a helper id. Where a 64-bit operation sign-extends its 32-bit immediate, a decimal must be
in the signed range (`r1 = 4294967295` is refused: write `r1 = 4294967295 ll`), while a hex literal
is taken as the field's bit pattern, as the kernel prints it (`if r1 s> 0xffffffff goto pc+3`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Literal

from bpfkit._records import record
from bpfkit.errors import AsmError
from bpfkit.isa.builder import Builder
from bpfkit.isa.instruction import LD_IMM64, Instruction
from bpfkit.isa.llvm_syntax import (
    ALU_BY_TEXT,
    ATOMIC_FETCH_NAMES,
    ATOMIC_RMW_OPS,
    JMP_BY_TEXT,
    KFUNC_CALL,
    PSEUDO_BY_NAME,
    VALUE_PSEUDO,
)
from bpfkit.isa.opcodes import field_error
from bpfkit.uapi.insn import (
    MAX_REG,
    AluOp,
    AtomicOp,
    Endian,
    InsnClass,
    JCond,
    JmpOp,
    Mode,
    PseudoCall,
    PseudoSrc,
    Size,
    Source,
)

__all__ = ["assemble_llvm"]

_TOKEN = re.compile(r"""
    \s*(?:
        (?P<num>0[xX][0-9a-fA-F]+|[0-9]+)
      | (?P<sop>(?<![\w.$])s(?:>>=|>=|<=|/=|%=|>|<))
      | (?P<name>[A-Za-z_.$][\w.$]*)
      | (?P<op><<=|>>=|==|!=|>=|<=|[-+*/%|&^]=|[-+*/%&|^=<>()\[\],#:])
    )""", re.VERBOSE)
_COMMENT = re.compile(r";|//|(?:^|(?<=\s))#")
_ANNOTATION = re.compile(r"\s<[^<>]*>\s*$")
_LOG_PREFIX = re.compile(r"^\s*(?:\d+:\s*)?(?:\((?P<opcode>[0-9a-fA-F]{2})\)\s*)?")
_LABEL = re.compile(r"^\s*<?([A-Za-z_.$][\w.$]*)>?:(?![=:])")
_REGISTER = re.compile(r"^([rw])(\d+)$")
_END = re.compile(r"^(be|le|bswap)(16|32|64)$")
_UNSIGNED = {"u8": Size.B, "u16": Size.H, "u32": Size.W, "u64": Size.DW}
_SIGNED = {"s8": Size.B, "s16": Size.H, "s32": Size.W}
_XCHG = {"xchg_64": Size.DW, "xchg32_32": Size.W}
_CMPXCHG = {"cmpxchg_64": Size.DW, "cmpxchg32_32": Size.W}
_FETCH_BY_NAME = {name: AtomicOp(op) for op, name in ATOMIC_FETCH_NAMES.items()}
_RMW_BY_TEXT = {f"{text}=": AtomicOp(op) for op, text in ATOMIC_RMW_OPS.items()}

Field = Literal["off", "imm"]
Target = str | int


@cache
def _helper_ids() -> dict[str, int]:
    """Helper name (with and without the `bpf_` prefix) -> id."""
    from bpfkit.uapi.enums import HELPER_NAMES

    ids: dict[str, int] = {}
    for num, name in HELPER_NAMES.items():
        ids[name] = num
        ids.setdefault(name.removeprefix("bpf_"), num)
    return ids


@record
class _Tok:
    kind: str  # num, sop, name, op
    text: str
    value: int = 0


@record
class _Reg:
    num: int
    wide: bool  # r (64-bit) rather than w (its low 32 bits)

    def __str__(self) -> str:
        return f"{'r' if self.wide else 'w'}{self.num}"


@record
class _Stmt:
    """One parsed instruction; `target` is set when a field is a label or relative offset."""

    insn: Instruction
    target: Target | None = None
    field: Field = "off"


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise AsmError(f"unexpected character {text[pos:].lstrip()[:1]!r}")
        kind = m.lastgroup or "op"
        word = m.group(kind)
        value = 0
        if kind == "num":
            if len(word) > 1 and word[0] == "0" and word[1] not in "xX":
                raise AsmError(f"number {word!r} has a leading zero: write it in decimal without one, "
                               "or in hex as 0x...")
            value = int(word, 0)
        toks.append(_Tok(kind, word, value))
        pos = m.end()
    return toks


class _Parser:
    """Recursive descent over the tokens of one line."""

    def __init__(self, toks: list[_Tok], line: int, source: str, labels: set[str],
                 log_opcode: int | None = None) -> None:
        self.toks = toks
        self.log_opcode = log_opcode
        self.pos = 0
        self.line = line
        self.source = source
        self.labels = labels

    # -- token helpers ----------------------------------------------------------------------------
    def fail(self, message: str) -> AsmError:
        return AsmError(message, line=self.line, source=self.source)

    def peek(self, ahead: int = 0) -> _Tok | None:
        i = self.pos + ahead
        return self.toks[i] if i < len(self.toks) else None

    def at(self, text: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok is not None and tok.kind != "num" and tok.text == text

    def found(self) -> str:
        tok = self.peek()
        return "the end of the line" if tok is None else repr(tok.text)

    def take(self, what: str) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise self.fail(f"expected {what}, found the end of the line")
        self.pos += 1
        return tok

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.pos += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.accept(text):
            raise self.fail(f"expected {text!r}, found {self.found()}")

    def name(self, what: str) -> str:
        tok = self.take(what)
        if tok.kind != "name":
            raise self.fail(f"expected {what}, found {tok.text!r}")
        return tok.text

    def done(self) -> None:
        if self.peek() is not None:
            rest = " ".join(t.text for t in self.toks[self.pos:])
            raise self.fail(f"unexpected {rest!r} after the instruction")

    # -- operands ---------------------------------------------------------------------------------
    def is_reg(self, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok is not None and tok.kind == "name" and _REGISTER.match(tok.text) is not None

    def reg(self, what: str = "a register") -> _Reg:
        tok = self.take(what)
        m = _REGISTER.match(tok.text) if tok.kind == "name" else None
        if m is None:
            raise self.fail(f"expected {what}, found {tok.text!r}")
        num = int(m.group(2))
        if num > MAX_REG:
            raise self.fail(f"bad register {tok.text!r}: registers are r0..r{MAX_REG} (w0..w{MAX_REG})")
        return _Reg(num, m.group(1) == "r")

    def reg64(self, what: str = "a register") -> int:
        reg = self.reg(what)
        if not reg.wide:
            raise self.fail(f"{what} must be a 64-bit register r{reg.num}, not {reg}")
        return reg.num

    def is_number(self) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text in "+-":
            tok = self.peek(1)
        return tok is not None and tok.kind == "num"

    def number(self, what: str = "a number") -> int:
        sign = -1 if self.accept("-") else 1
        if sign == 1:
            self.accept("+")
        tok = self.take(what)
        if tok.kind != "num":
            raise self.fail(f"expected {what}, found {tok.text!r}")
        return sign * tok.value

    def ranged(self, value: int, lo: int, hi: int, what: str) -> int:
        if not lo <= value <= hi:
            raise self.fail(f"{what} {value} out of range ({lo}..{hi})")
        return value

    def imm(self, wide: bool, what: str = "immediate", *, move: bool = False) -> int:
        """A 32-bit immediate.

        The 64-bit forms sign-extend it, so a decimal must be a signed value there; a hex literal is
        the field's bit pattern (the verifier log prints `if r1 s> 0xffffffff`, meaning -1).
        """
        tok = self.peek()
        bit_pattern = tok is not None and tok.kind == "num" and tok.text[:2] in ("0x", "0X")
        value = self.number(what)
        if wide and not -(1 << 31) <= value < (1 << 31) and not (bit_pattern and value < (1 << 32)):
            hint = f"; use 'rN = {value} ll' for a 64-bit constant" if move else ""
            raise self.fail(f"{what} {value} out of range for a sign-extended 32-bit field "
                            f"({-(1 << 31)}..{(1 << 31) - 1}){hint}")
        return self.ranged(value, -(1 << 31), (1 << 32) - 1, what)

    def offset(self, bits: int = 16) -> int:
        return self.ranged(self.number("an offset"), -(1 << (bits - 1)), (1 << (bits - 1)) - 1, "offset")

    def target(self, bits: int) -> Target:
        """A jump target: a label, `+N`/`-N`, or the verifier log's `pc+N`."""
        if self.at("pc") and (self.at("+", 1) or self.at("-", 1)):
            self.pos += 1
        tok = self.peek()
        if tok is None:
            raise self.fail("expected a jump target (a label or +N/-N), found the end of the line")
        if tok.kind == "name":
            self.pos += 1
            return tok.text
        if tok.kind == "num":
            raise self.fail(f"jump offset {tok.text} needs a sign: +{tok.text} or -{tok.text} "
                            "(relative to the next instruction), or use a label")
        if tok.text not in ("+", "-"):
            raise self.fail(f"expected a jump target (a label or +N/-N), found {tok.text!r}")
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return self.ranged(self.number("a jump offset"), lo, hi, "jump offset")

    def size(self, signed: bool = False) -> Size:
        """`(u32 *)` (or `(s8 *)` when `signed`) after the opening parenthesis."""
        name = self.name("an access size like u32")
        table = _SIGNED if signed else _UNSIGNED
        if name not in table:
            raise self.fail(f"bad access size {name!r}: expected one of {', '.join(table)}")
        self.expect("*")
        self.expect(")")
        return table[name]

    def address(self) -> tuple[int, int]:
        """`r1 + 8` / `r10 -4`: base register and offset."""
        base = self.reg64("an address register")
        off = 0
        if self.at("+") or self.at("-"):
            off = self.offset()
        return base, off

    def memref(self) -> tuple[Size, int, int]:
        """`(u32 *)(r1 + 8)`, after the `*` of a load or store or as an atomic's pointer argument:
        size, base register, offset."""
        self.expect("(")
        size = self.size()
        self.expect("(")
        base, off = self.address()
        self.expect(")")
        return size, base, off

    def value_reg(self, size: Size, what: str = "the value register") -> int:
        """A register holding a value of `size`: `w` allowed below 64 bits."""
        reg = self.reg(what)
        if size is Size.DW and not reg.wide:
            raise self.fail(f"a 64-bit access needs r{reg.num}, not {reg}")
        return reg.num

    # -- statements -------------------------------------------------------------------------------
    def statement(self) -> _Stmt:
        tok = self.peek()
        assert tok is not None
        word = tok.text if tok.kind == "name" else ""
        if word and not self.is_reg():
            self.pos += 1
            handler = _KEYWORDS.get(word)
            if handler is None:
                raise self.fail(f"unknown instruction {word!r}")
            return handler(self)
        if tok.text == "*":
            self.pos += 1
            return self.store()
        if self.is_reg():
            return self.assignment(self.reg())
        raise self.fail(f"unknown instruction starting with {tok.text!r}")

    def kw_exit(self) -> _Stmt:
        return _Stmt(Instruction(InsnClass.JMP | JmpOp.EXIT))

    def kw_goto(self) -> _Stmt:
        return _Stmt(Instruction(InsnClass.JMP | JmpOp.JA), self.target(16), "off")

    def kw_gotol(self) -> _Stmt:
        return _Stmt(Instruction(InsnClass.JMP32 | JmpOp.JA), self.target(32), "imm")

    def kw_may_goto(self) -> _Stmt:
        insn = Instruction(InsnClass.JMP | JmpOp.JCOND, src=JCond.MAY_GOTO)
        return _Stmt(insn, self.target(16), "off")

    def kw_callx(self) -> _Stmt:
        return _Stmt(Instruction(InsnClass.JMP | JmpOp.CALL | Source.X, self.reg64("the call register")))

    def kw_call(self) -> _Stmt:
        call = InsnClass.JMP | JmpOp.CALL
        tok = self.peek()
        if tok is None:
            raise self.fail("call needs a helper id, a helper name, a label or a relative offset")
        if tok.kind == "num":
            self.pos += 1
            return _Stmt(Instruction(call, imm=self.ranged(tok.value, 0, (1 << 32) - 1, "helper id")))
        if tok.kind == "name" and tok.text == KFUNC_CALL and self.at("(", 1):
            self.pos += 2
            btf_id = self.imm(False, "kfunc BTF id")
            fd_index = 0
            if self.accept(","):
                fd_index = self.offset()
            self.expect(")")
            return _Stmt(Instruction(call, src=PseudoCall.KFUNC, off=fd_index, imm=btf_id))
        if tok.kind == "name" and tok.text != "pc":
            self.pos += 1
            if self.accept("#"):
                # The verifier log's `call bpf_map_lookup_elem#1`: the number is the imm (a helper id,
                # or in a dump of translated code the helper's address offset), the name a comment.
                num = self.number("a helper id")
                return _Stmt(Instruction(call, imm=self.ranged(num, -(1 << 31), (1 << 32) - 1, "helper id")))
            if tok.text in self.labels:
                return _Stmt(Instruction(call, src=PseudoCall.CALL), tok.text, "imm")
            helper = _helper_ids().get(tok.text)
            if helper is None:
                raise self.fail(f"call {tok.text}: no label or helper of that name")
            return _Stmt(Instruction(call, imm=helper))
        target = self.target(32)
        if self.accept("#"):
            self.name("a subprogram name")  # the verifier log's `call pc+5#bpf_prog_..._name`
        return _Stmt(Instruction(call, src=PseudoCall.CALL), target, "imm")

    def kw_if(self) -> _Stmt:
        dst = self.reg("the register to compare")
        tok = self.take("a comparison like == or s<")
        op = JMP_BY_TEXT.get(tok.text) if tok.kind in ("op", "sop") else None
        if op is None:
            raise self.fail(f"expected a comparison (==, !=, >, >=, <, <=, &, s>, s>=, s<, s<=), "
                            f"found {tok.text!r}")
        cls = InsnClass.JMP if dst.wide else InsnClass.JMP32
        if self.is_reg():
            src = self.reg()
            if src.wide != dst.wide:
                raise self.fail(f"cannot compare {dst} with {src}: use two r or two w registers")
            insn = Instruction(cls | op | Source.X, dst.num, src.num)
        else:
            insn = Instruction(cls | op | Source.K, dst.num, imm=self.imm(dst.wide))
        if not self.accept("goto"):
            raise self.fail(f"expected 'goto', found {self.found()}")
        return _Stmt(insn, self.target(16), "off")

    def kw_lock(self) -> _Stmt:
        self.expect("*")
        size, base, off = self.memref()
        tok = self.take("an operator like +=")
        op = _RMW_BY_TEXT.get(tok.text)
        if op is None:
            raise self.fail(f"expected one of {', '.join(_RMW_BY_TEXT)}, found {tok.text!r}")
        src = self.value_reg(size)
        return _Stmt(self.atomic(size, base, src, off, op))

    def kw_store_release(self) -> _Stmt:
        self.expect("(")
        size, base, off = self.memref()
        self.expect(",")
        src = self.value_reg(size)
        self.expect(")")
        return _Stmt(self.atomic(size, base, src, off, AtomicOp.STORE_REL))

    def atomic(self, size: Size, dst: int, src: int, off: int, op: AtomicOp) -> Instruction:
        if size not in (Size.W, Size.DW) and op not in (AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL):
            raise self.fail("atomic read-modify-write operations take u32 or u64")
        return Instruction(InsnClass.STX | Mode.ATOMIC | size, dst, src, off, int(op))

    def store(self) -> _Stmt:
        size, base, off = self.memref()
        self.expect("=")
        if self.is_reg():
            src = self.value_reg(size)
            return _Stmt(Instruction(InsnClass.STX | Mode.MEM | size, base, src, off))
        imm = self.imm(size is Size.DW, "stored immediate")
        return _Stmt(Instruction(InsnClass.ST | Mode.MEM | size, base, 0, off, imm))

    def assignment(self, dst: _Reg) -> _Stmt:
        tok = self.take("an operator")
        if tok.text in ALU_BY_TEXT and tok.kind in ("op", "sop"):
            op, off = ALU_BY_TEXT[tok.text]
            return _Stmt(self.alu(dst, op, off))
        if tok.text != "=":
            raise self.fail(f"expected '=' or an operator like '+=', found {tok.text!r}")
        if self.at("-") and self.is_reg(1):
            self.pos += 1
            src = self.reg()
            if src != dst:
                raise self.fail(f"negation works in place: write '{dst} = -{dst}'")
            return _Stmt(Instruction((InsnClass.ALU64 if dst.wide else InsnClass.ALU) | AluOp.NEG, dst.num))
        if self.is_number():
            return self.constant(dst)
        if self.is_reg():
            return _Stmt(self.alu(dst, AluOp.MOV, 0))
        if self.accept("("):
            return self.movsx(dst)
        if self.accept("*"):
            return self.load(dst)
        word = self.name("a value")
        m = _END.match(word)
        if m:
            return self.endian(dst, m.group(1), int(m.group(2)))
        if word in PSEUDO_BY_NAME:
            return self.pseudo(dst, PSEUDO_BY_NAME[word])
        if word in ("map", "subprog") and self.at("["):
            return self.log_pseudo(dst, word)
        return self.atomic_call(dst, word)

    def log_pseudo(self, dst: _Reg, word: str) -> _Stmt:
        """The verifier log's `map[id:5]`, `map[id:5][0]+8` and `subprog[+3]`.

        A translated dump holds the map id where the loader's bytecode holds an fd; either way the
        number is the immediate.
        """
        if not dst.wide:
            raise self.fail(f"a 64-bit load needs r{dst.num}, not {dst}")
        self.expect("[")
        if word == "subprog":
            target = self.target(32)
            self.expect("]")
            return _Stmt(Instruction(LD_IMM64, dst.num, PseudoSrc.FUNC), target, "imm")
        if self.name("'id'") != "id":
            raise self.fail("expected map[id:N]")
        self.expect(":")
        map_id = self.imm(False, "map id")
        self.expect("]")
        if not self.accept("["):
            return _Stmt(Instruction(LD_IMM64, dst.num, PseudoSrc.MAP_FD, 0, map_id & 0xFFFFFFFF))
        self.ranged(self.number("an element index"), 0, 0, "element index")
        self.expect("]")
        off = self.ranged(self.number("a value offset"), 0, (1 << 32) - 1, "value offset")
        imm = (map_id & 0xFFFFFFFF) | (off << 32)
        return _Stmt(Instruction(LD_IMM64, dst.num, PseudoSrc.MAP_VALUE, 0, imm))

    def alu(self, dst: _Reg, op: AluOp, off: int) -> Instruction:
        cls = InsnClass.ALU64 if dst.wide else InsnClass.ALU
        if self.is_reg():
            src = self.reg()
            if src.wide != dst.wide:
                raise self.fail(f"cannot mix {dst} and {src}: use two r (64-bit) or two w (32-bit) registers")
            return Instruction(cls | op | Source.X, dst.num, src.num, off)
        return Instruction(cls | op | Source.K, dst.num, 0, off, self.imm(dst.wide, move=op is AluOp.MOV))

    def constant(self, dst: _Reg) -> _Stmt:
        start = self.pos
        value = self.number("a constant")
        # The verifier log prints LD_IMM64 without `ll`; its `(18)` opcode prefix tells.
        if self.accept("ll") or self.log_opcode == LD_IMM64:
            if not dst.wide:
                raise self.fail(f"a 64-bit constant needs r{dst.num}, not {dst}")
            value = self.ranged(value, -(1 << 63), (1 << 64) - 1, "64-bit constant")
            return _Stmt(Instruction(LD_IMM64, dst.num, imm=value))
        self.pos = start  # re-read it as the 32-bit immediate of a move
        return _Stmt(self.alu(dst, AluOp.MOV, 0))

    def movsx(self, dst: _Reg) -> _Stmt:
        width = self.name("a sign-extension width like s8")
        bits = {"s8": 8, "s16": 16, "s32": 32}.get(width)
        if bits is None or (bits == 32 and not dst.wide):
            allowed = "s8, s16 or s32" if dst.wide else "s8 or s16"
            raise self.fail(f"bad sign-extension {width!r} for {dst}: expected {allowed}")
        self.expect(")")
        src = self.reg()
        if src.wide != dst.wide:
            raise self.fail(f"cannot mix {dst} and {src}: use two r or two w registers")
        cls = InsnClass.ALU64 if dst.wide else InsnClass.ALU
        return _Stmt(Instruction(cls | AluOp.MOV | Source.X, dst.num, src.num, bits))

    def load(self, dst: _Reg) -> _Stmt:
        self.expect("(")
        tok = self.peek()
        signed = tok is not None and tok.text in _SIGNED
        size = self.size(signed)
        if self.accept("skb"):
            return self.skb_load(dst, size)
        self.expect("(")
        base, off = self.address()
        self.expect(")")
        if signed:
            if not dst.wide:
                raise self.fail(f"a sign-extending load needs r{dst.num}, not {dst}")
            return _Stmt(Instruction(InsnClass.LDX | Mode.MEMSX | size, dst.num, base, off))
        if size is Size.DW and not dst.wide:
            raise self.fail(f"a 64-bit load needs r{dst.num}, not {dst}")
        return _Stmt(Instruction(InsnClass.LDX | Mode.MEM | size, dst.num, base, off))

    def skb_load(self, dst: _Reg, size: Size) -> _Stmt:
        if dst != _Reg(0, True):
            raise self.fail(f"packet loads (skb[...]) always load into r0, not {dst}")
        if size is Size.DW:
            raise self.fail("packet loads (skb[...]) take u8, u16 or u32")
        self.expect("[")
        if self.is_reg():
            src = self.reg64("the index register")
            imm = 0
            if self.at("+") or self.at("-"):
                imm = self.imm(False, "packet offset")
            self.expect("]")
            return _Stmt(Instruction(InsnClass.LD | Mode.IND | size, 0, src, 0, imm))
        imm = self.imm(False, "packet offset")
        self.expect("]")
        return _Stmt(Instruction(InsnClass.LD | Mode.ABS | size, 0, 0, 0, imm))

    def endian(self, dst: _Reg, kind: str, bits: int) -> _Stmt:
        src = self.reg()
        if src.num != dst.num:
            raise self.fail(f"byte swaps work in place: write 'r{dst.num} = {kind}{bits} r{dst.num}'")
        if kind == "bswap":
            opcode = InsnClass.ALU64 | AluOp.END
        else:
            opcode = InsnClass.ALU | AluOp.END | (Endian.TO_BE if kind == "be" else Endian.TO_LE)
        return _Stmt(Instruction(opcode, dst.num, imm=bits))

    def pseudo(self, dst: _Reg, src: PseudoSrc) -> _Stmt:
        if not dst.wide:
            raise self.fail(f"a 64-bit load needs r{dst.num}, not {dst}")
        self.expect("(")
        target: Target | None = None
        lo = 0
        if src is PseudoSrc.FUNC:
            target = self.target(32)
        else:
            lo = self.imm(False, "pseudo immediate")
        hi = 0
        if self.accept(","):
            hi = self.ranged(self.number("the high half"), -(1 << 31), (1 << 32) - 1, "high half")
        self.expect(")")
        if src in VALUE_PSEUDO and self.accept("+"):
            hi = self.ranged(self.number("a value offset"), 0, (1 << 32) - 1, "value offset")
        self.accept("ll")
        insn = Instruction(LD_IMM64, dst.num, src, 0, (lo & 0xFFFFFFFF) | ((hi & 0xFFFFFFFF) << 32))
        if target is None:
            return _Stmt(insn)
        return _Stmt(insn, target, "imm")

    def atomic_call(self, dst: _Reg, word: str) -> _Stmt:
        """`atomic_fetch_add(...)`, `xchg_64(...)`, `cmpxchg_64(...)`, `load_acquire(...)` and the
        kernel log's `atomic64_fetch_add`, `atomic_xchg`, `atomic64_cmpxchg`."""
        kernel64 = word.startswith("atomic64_")
        base_word = "atomic_" + word[len("atomic64_"):] if kernel64 else word
        self.expect("(")
        if base_word == "load_acquire":
            size, base, off = self.memref()
            self.expect(")")
            if size is Size.DW and not dst.wide:
                raise self.fail(f"a 64-bit load needs r{dst.num}, not {dst}")
            return _Stmt(self.atomic(size, dst.num, base, off, AtomicOp.LOAD_ACQ))
        if word in _XCHG or word in _CMPXCHG:
            size = _XCHG[word] if word in _XCHG else _CMPXCHG[word]
            base, off = self.address()
        elif base_word.startswith("atomic_fetch_") or base_word in ("atomic_xchg", "atomic_cmpxchg"):
            size, base, off = self.memref()
            if kernel64 and size is not Size.DW:
                raise self.fail(f"{word} takes a u64 pointer")
        else:
            raise self.fail(f"unknown operation {word!r}")
        if size is Size.DW and not dst.wide:
            raise self.fail(f"a 64-bit atomic needs r{dst.num}, not {dst}")
        self.expect(",")
        if word in _CMPXCHG or base_word == "atomic_cmpxchg":
            if dst.num != 0:
                raise self.fail(f"cmpxchg returns the old value in r0, not {dst}")
            expected = self.reg("the expected value register")
            if expected.num != 0:
                raise self.fail(f"cmpxchg compares with r0, not {expected}")
            self.expect(",")
            src = self.value_reg(size)
            self.expect(")")
            return _Stmt(self.atomic(size, base, src, off, AtomicOp.CMPXCHG))
        src = self.value_reg(size)
        self.expect(")")
        if src != dst.num:
            raise self.fail(f"the fetched value goes to the operand register: write '{dst} = "
                            f"{word}(..., {dst})'")
        if base_word in ("atomic_xchg", "xchg_64", "xchg32_32"):
            return _Stmt(self.atomic(size, base, src, off, AtomicOp.XCHG))
        name = base_word[len("atomic_fetch_"):]
        if name not in _FETCH_BY_NAME:
            raise self.fail(f"unknown atomic operation {word!r}")
        return _Stmt(self.atomic(size, base, src, off, _FETCH_BY_NAME[name]))


_KEYWORDS: dict[str, Callable[[_Parser], _Stmt]] = {
    "exit": _Parser.kw_exit, "goto": _Parser.kw_goto, "gotol": _Parser.kw_gotol,
    "may_goto": _Parser.kw_may_goto, "call": _Parser.kw_call, "callx": _Parser.kw_callx,
    "if": _Parser.kw_if, "lock": _Parser.kw_lock, "store_release": _Parser.kw_store_release,
}


@record
class _Check:
    """An llvm-objdump `<label>` annotation to hold against the numeric offset it follows."""

    line: int
    source: str
    target: int
    label: str


@record
class _Line:
    labels: list[str]  # labels defined on the line
    body: str  # the instruction text, without comment, prefix, labels and annotation
    annotation: str | None  # a trailing llvm-objdump `<label>`
    log_opcode: int | None  # the opcode of a verifier log's `12: (bf)` prefix


def _split(raw: str) -> _Line:
    m = _COMMENT.search(raw)
    text = raw[:m.start()] if m else raw
    pm = _LOG_PREFIX.match(text)
    log_opcode = None
    if pm:
        if pm.group("opcode"):
            log_opcode = int(pm.group("opcode"), 16)
        text = text[pm.end():]
    labels = []
    while True:
        lm = _LABEL.match(text)
        if lm is None or _REGISTER.match(lm.group(1)):
            break
        labels.append(lm.group(1))
        text = text[lm.end():]
    annotation = None
    am = _ANNOTATION.search(text)
    if am:
        annotation = am.group(0).strip()[1:-1]
        text = text[:am.start()]
    return _Line(labels, text.strip(), annotation, log_opcode)


def assemble_llvm(text: str) -> list[Instruction]:
    """Assemble a listing in the llvm/kernel syntax; raise `AsmError` naming the line on bad input."""
    lines = text.splitlines()
    split = [_split(raw) for raw in lines]
    defined = {name for line in split for name in line.labels}
    builder = Builder()
    checks: list[_Check] = []
    for number, (raw, line) in enumerate(zip(lines, split, strict=True), start=1):
        builder.line = number
        for name in line.labels:
            try:
                builder.label(name)
            except AsmError as e:
                raise AsmError(e.message, line=number, source=raw) from None
        if not line.body:
            continue
        try:
            parser = _Parser(_tokenize(line.body), number, raw, defined, line.log_opcode)
            stmt = parser.statement()
            parser.done()
        except AsmError as e:
            if e.line is None:
                raise AsmError(e.message, line=number, source=raw) from None
            raise
        insn = stmt.insn
        imm = insn.imm if insn.opcode != LD_IMM64 else (insn.imm & 0xFFFFFFFF) - (
            (insn.imm & 0x80000000) << 1)
        err = field_error(insn.opcode, insn.dst, insn.src, insn.off, imm)
        if err:
            raise AsmError(err, line=number, source=raw)
        if line.log_opcode is not None and line.log_opcode != insn.opcode:
            raise AsmError(f"the log's opcode ({line.log_opcode:02x}) differs from the instruction's "
                           f"({insn.opcode:02x})", line=number, source=raw)
        if stmt.target is None:
            builder.emit(insn)
            continue
        if isinstance(stmt.target, int) and line.annotation in defined:
            assert line.annotation is not None
            checks.append(_Check(number, raw, builder.slot + 1 + stmt.target, line.annotation))
        builder.emit_ref(insn, stmt.target, stmt.field)
    try:
        insns = builder.build()
    except AsmError as e:
        source = lines[e.line - 1] if e.line is not None else None
        raise AsmError(e.message, index=e.index, line=e.line, source=source) from None
    slots = builder.labels()
    for check in checks:
        if slots[check.label] != check.target:
            raise AsmError(f"the offset jumps to slot {check.target}, but the annotation <{check.label}> "
                           f"names slot {slots[check.label]}", line=check.line, source=check.source)
    return insns
