"""An x86-64 assembler for the JIT: the instructions it needs, encoded with REX/ModRM/SIB, and labels.

`Asm` collects code as byte chunks, labels and branches. Branches start in their short (rel8) form and
are widened to rel32 where the displacement does not fit, repeating until the layout is stable (widening
only grows the code, so this reaches a fixed point). RIP-relative operands may name a code `Label` or an
offset in the data area that follows the code (`DataRef`); they are resolved once the layout is known.

Encodings follow the Intel SDM vol. 2 (instruction format, chapter 2; opcode tables, appendix A).
Operand sizes are in bits (8, 16, 32, 64). Byte registers 4-7 (spl, bpl, sil, dil) get a REX prefix so
they are never read as ah/ch/dh/bh.
"""

from __future__ import annotations

import enum

from bpfkit._records import record
from bpfkit.errors import BpfkitError


class Gp(enum.IntEnum):
    """General-purpose registers by encoding number."""

    RAX = 0
    RCX = 1
    RDX = 2
    RBX = 3
    RSP = 4
    RBP = 5
    RSI = 6
    RDI = 7
    R8 = 8
    R9 = 9
    R10 = 10
    R11 = 11
    R12 = 12
    R13 = 13
    R14 = 14
    R15 = 15


class Cond(enum.IntEnum):
    """Condition codes (the low nibble of Jcc/SETcc/CMOVcc)."""

    OVERFLOW = 0x0
    NO_OVERFLOW = 0x1
    B = 0x2
    AE = 0x3
    E = 0x4
    NE = 0x5
    BE = 0x6
    A = 0x7
    S = 0x8
    NS = 0x9
    P = 0xA
    NP = 0xB
    L = 0xC
    GE = 0xD
    LE = 0xE
    G = 0xF


class Alu(enum.IntEnum):
    """The /digit of the group-1 ALU instructions (and base opcode // 8)."""

    ADD = 0
    OR = 1
    ADC = 2
    SBB = 3
    AND = 4
    SUB = 5
    XOR = 6
    CMP = 7


class Shift(enum.IntEnum):
    """The /digit of the group-2 shift and rotate instructions."""

    ROL = 0
    ROR = 1
    SHL = 4
    SHR = 5
    SAR = 7


class Unary(enum.IntEnum):
    """The /digit of the group-3 (F7) instructions."""

    NOT = 2
    NEG = 3
    MUL = 4
    IMUL = 5
    DIV = 6
    IDIV = 7


class AsmEncodingError(BpfkitError):
    """The JIT asked the assembler for an instruction form that does not exist (a JIT bug)."""


class Label:
    """A position in the code, bound with `Asm.bind`; `offset` is known after `Asm.assemble`."""

    __slots__ = ("_chunk", "_pos", "name", "offset")

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.offset: int | None = None
        self._chunk: _Chunk | None = None
        self._pos = 0

    def __repr__(self) -> str:
        return f"<Label {self.name or hex(id(self))} @{self.offset}>"


@record
class DataRef:
    """Byte `offset` of the data area placed after the code (page aligned)."""

    offset: int


Target = Label | DataRef


@record
class Mem:
    """A memory operand: [base + index*scale + disp], or [rip + target + disp] when `rip` is set."""

    base: Gp | None = None
    disp: int = 0
    index: Gp | None = None
    scale: int = 1
    rip: Target | None = None

    def __post_init__(self) -> None:
        if self.scale not in (1, 2, 4, 8):
            raise AsmEncodingError(f"scale {self.scale} is not 1, 2, 4 or 8")
        if self.index == Gp.RSP:
            raise AsmEncodingError("rsp cannot be an index register")
        if not -(1 << 31) <= self.disp < 1 << 31:
            raise AsmEncodingError(f"displacement {self.disp} does not fit in 32 bits")
        if self.rip is not None and (self.base is not None or self.index is not None):
            raise AsmEncodingError("a RIP-relative operand has no base or index")
        if self.rip is None and self.base is None:
            raise AsmEncodingError("absolute addresses are not supported; use a base register")


def rip(target: Target, disp: int = 0) -> Mem:
    """A RIP-relative memory operand."""
    return Mem(rip=target, disp=disp)


Operand = Gp | Mem


_SCALE = {1: 0, 2: 1, 4: 2, 8: 3}


def _fits8(value: int) -> bool:
    return -128 <= value < 128


def _fits32(value: int) -> bool:
    return -(1 << 31) <= value < 1 << 31


def _imm(value: int, nbytes: int) -> bytes:
    """`value` as `nbytes` little-endian bytes; accepts signed or unsigned spellings."""
    bits = nbytes * 8
    if not -(1 << (bits - 1)) <= value < 1 << bits:
        raise AsmEncodingError(f"immediate {value} does not fit in {bits} bits")
    return (value & ((1 << bits) - 1)).to_bytes(nbytes, "little")


class _Chunk:
    """Straight bytes; `fixups` are RIP-relative displacements to fill in: (position of the disp32,
    position of the instruction's end, target, extra displacement)."""

    __slots__ = ("code", "fixups", "start")

    def __init__(self) -> None:
        self.code = bytearray()
        self.fixups: list[tuple[int, int, Target, int]] = []
        self.start = 0


class _Branch:
    """A jmp/jcc (short until widened) or a call rel32 to a label."""

    __slots__ = ("after", "cond", "kind", "label", "size")

    def __init__(self, kind: str, cond: Cond | None, label: Label, after: _Chunk) -> None:
        self.kind = kind  # "jmp", "jcc", "call"
        self.cond = cond
        self.label = label
        self.size = 5 if kind == "call" else 2
        self.after = after  # the chunk that follows: its start is where this branch ends

    def widen(self) -> None:
        self.size = 5 if self.kind == "jmp" else 6


class Asm:
    """Accumulates x86-64 machine code; `assemble()` lays it out and returns the bytes."""

    def __init__(self) -> None:
        self._items: list[_Chunk | _Branch] = []
        self._labels: list[Label] = []
        self._chunk = _Chunk()
        self._items.append(self._chunk)

    # -- plumbing ---------------------------------------------------------------------------------
    def raw(self, data: bytes) -> None:
        self._chunk.code += data

    def bind(self, label: Label) -> None:
        """Place `label` here."""
        if label._chunk is not None:
            raise AsmEncodingError(f"label {label!r} is bound twice")
        label._chunk = self._chunk
        label._pos = len(self._chunk.code)
        self._labels.append(label)

    def _encode(self, opcode: bytes, reg: int, rm: Operand, *, bits: int = 64, imm: bytes = b"",
                prefix: bytes = b"", byte_regs: bool = False, reg_is_byte: bool = False) -> None:
        """Emit [prefix][REX]opcode ModRM [SIB] [disp] [imm]. `reg` is the ModRM.reg field (a register
        number or a /digit); REX.W is set for 64-bit operands. `byte_regs` marks the rm operand (and
        `reg_is_byte` the reg operand) as 8-bit registers, which need REX to reach spl..dil."""
        reg = int(reg)  # plain ints: bit operations on IntEnum members are slow
        rex = 0x48 if bits == 64 else 0x40
        need_rex = bits == 64
        if reg >= 8:
            rex |= 0x04
            need_rex = True
        elif reg_is_byte and reg >= 4:
            need_rex = True
        r3 = (reg & 7) << 3
        fixup: tuple[int, Target, int] | None = None
        if isinstance(rm, Gp):
            n = int(rm)
            if n >= 8:
                rex |= 0x01
                need_rex = True
            elif byte_regs and n >= 4:
                need_rex = True
            tail = bytes((0xC0 | r3 | (n & 7),))
        elif rm.rip is not None:
            tail = bytes((0x05 | r3, 0, 0, 0, 0))
            fixup = (1, rm.rip, rm.disp)
        else:
            assert rm.base is not None
            base = int(rm.base)
            if base >= 8:
                rex |= 0x01
                need_rex = True
            index = None if rm.index is None else int(rm.index)
            if index is not None and index >= 8:
                rex |= 0x02
                need_rex = True
            disp = rm.disp
            b3 = base & 7
            if disp == 0 and b3 != 5:
                mod, disp_bytes = 0x00, b""
            elif -128 <= disp < 128:
                mod, disp_bytes = 0x40, bytes((disp & 0xFF,))
            else:
                mod, disp_bytes = 0x80, (disp & 0xFFFFFFFF).to_bytes(4, "little")
            if index is not None or b3 == 4:
                scale = _SCALE[rm.scale]
                sib = (scale << 6) | ((4 if index is None else index & 7) << 3) | b3
                tail = bytes((mod | r3 | 0x04, sib)) + disp_bytes
            else:
                tail = bytes((mod | r3 | b3,)) + disp_bytes
        code = self._chunk.code
        if prefix:
            code += prefix
        if need_rex:
            code.append(rex)
        code += opcode
        start = len(code)
        code += tail
        if imm:
            code += imm
        if fixup is not None:
            pos, target, extra = fixup
            self._chunk.fixups.append((start + pos, len(code), target, extra))

    @staticmethod
    def _prefix(bits: int) -> bytes:
        return b"\x66" if bits == 16 else b""

    # -- moves ------------------------------------------------------------------------------------
    def mov(self, dst: Operand, src: Operand | int, bits: int = 64) -> None:
        """mov dst, src (register, memory or immediate; never memory to memory)."""
        p = self._prefix(bits)
        if isinstance(src, Gp):
            op = b"\x88" if bits == 8 else b"\x89"
            self._encode(op, src, dst, bits=bits, prefix=p, byte_regs=bits == 8, reg_is_byte=bits == 8)
        elif isinstance(src, int):
            self._mov_imm(dst, src, bits)
        elif isinstance(dst, Gp):
            op = b"\x8a" if bits == 8 else b"\x8b"
            self._encode(op, dst, src, bits=bits, prefix=p, reg_is_byte=bits == 8)
        else:
            raise AsmEncodingError("mov cannot move memory to memory")

    def _mov_imm(self, dst: Operand, value: int, bits: int) -> None:
        if isinstance(dst, Gp):
            if bits == 64 and 0 <= value < 1 << 32:
                bits = 32  # mov r32, imm32 zero-extends and is shorter
            if bits == 64 and _fits32(value):
                self._encode(b"\xc7", 0, dst, bits=64, imm=_imm(value, 4))
                return
            if bits in (32, 64):
                rex = (0x48 if bits == 64 else 0x40) | (1 if dst >= 8 else 0)
                out = bytearray()
                if bits == 64 or dst >= 8:
                    out.append(rex)
                out.append(0xB8 + (dst & 7))
                out += _imm(value, 8 if bits == 64 else 4)
                self._chunk.code += out
                return
        if bits == 64:
            if not _fits32(value):
                raise AsmEncodingError(f"mov qword [mem], {value}: immediate must fit in 32 bits")
            self._encode(b"\xc7", 0, dst, bits=64, imm=_imm(value, 4))
        elif bits == 32:
            self._encode(b"\xc7", 0, dst, bits=32, imm=_imm(value, 4))
        elif bits == 16:
            self._encode(b"\xc7", 0, dst, bits=16, imm=_imm(value, 2), prefix=b"\x66")
        else:
            self._encode(b"\xc6", 0, dst, bits=8, imm=_imm(value, 1), byte_regs=True)

    def movzx(self, dst: Gp, src: Operand, src_bits: int) -> None:
        """movzx dst32, src8/src16 (zero-extends into the whole 64-bit register)."""
        op = b"\x0f\xb6" if src_bits == 8 else b"\x0f\xb7"
        self._encode(op, dst, src, bits=32, byte_regs=src_bits == 8)

    def movsx(self, dst: Gp, src: Operand, src_bits: int, bits: int = 64) -> None:
        """movsx/movsxd: sign-extend an 8-, 16- or 32-bit source into a `bits`-wide register."""
        if src_bits == 32:
            if bits != 64:
                raise AsmEncodingError("movsxd needs a 64-bit destination")
            self._encode(b"\x63", dst, src, bits=64)
        else:
            op = b"\x0f\xbe" if src_bits == 8 else b"\x0f\xbf"
            self._encode(op, dst, src, bits=bits, byte_regs=src_bits == 8)

    def lea(self, dst: Gp, src: Mem) -> None:
        self._encode(b"\x8d", dst, src, bits=64)

    # -- arithmetic -------------------------------------------------------------------------------
    def alu(self, op: Alu, dst: Operand, src: Operand | int, bits: int = 64, *, lock: bool = False) -> None:
        """add/or/adc/sbb/and/sub/xor/cmp dst, src. 64-bit immediates are sign-extended imm32."""
        p = (b"\xf0" if lock else b"") + self._prefix(bits)
        if isinstance(src, int) and not isinstance(src, Gp):
            if bits == 8:
                self._encode(b"\x80", op, dst, bits=8, imm=_imm(src, 1), prefix=p, byte_regs=True)
            elif _fits8(src) or (bits == 32 and src >= 1 << 31 and _fits8(src - (1 << 32))):
                value = src - (1 << 32) if src >= 1 << 31 else src
                self._encode(b"\x83", op, dst, bits=bits, imm=_imm(value, 1), prefix=p)
            else:
                if bits == 64 and not _fits32(src):
                    raise AsmEncodingError(f"64-bit ALU immediate {src} must fit in 32 bits (signed)")
                self._encode(b"\x81", op, dst, bits=bits, imm=_imm(src, 2 if bits == 16 else 4), prefix=p)
        elif isinstance(src, Gp):
            base = int(op) * 8 + (0 if bits == 8 else 1)
            self._encode(bytes([base]), src, dst, bits=bits, prefix=p, byte_regs=bits == 8,
                         reg_is_byte=bits == 8)
        elif isinstance(dst, Gp):
            base = int(op) * 8 + (2 if bits == 8 else 3)
            self._encode(bytes([base]), dst, src, bits=bits, prefix=p, reg_is_byte=bits == 8)
        else:
            raise AsmEncodingError("ALU operation cannot take two memory operands")

    def test(self, dst: Operand, src: Gp | int, bits: int = 64) -> None:
        """test dst, src. A 64-bit immediate is a sign-extended imm32."""
        p = self._prefix(bits)
        if isinstance(src, int) and not isinstance(src, Gp):
            if bits == 8:
                self._encode(b"\xf6", 0, dst, bits=8, imm=_imm(src, 1), byte_regs=True)
            else:
                if bits == 64 and not _fits32(src):
                    raise AsmEncodingError(f"64-bit test immediate {src} must fit in 32 bits (signed)")
                self._encode(b"\xf7", 0, dst, bits=bits, imm=_imm(src, 2 if bits == 16 else 4), prefix=p)
        else:
            op = b"\x84" if bits == 8 else b"\x85"
            self._encode(op, src, dst, bits=bits, prefix=p, byte_regs=bits == 8, reg_is_byte=bits == 8)

    def unary(self, op: Unary, dst: Operand, bits: int = 64) -> None:
        """not/neg/mul/imul/div/idiv (the F7 group)."""
        self._encode(b"\xf7", op, dst, bits=bits, prefix=self._prefix(bits))

    def inc(self, dst: Operand, bits: int = 64) -> None:
        self._encode(b"\xff", 0, dst, bits=bits, prefix=self._prefix(bits))

    def dec(self, dst: Operand, bits: int = 64) -> None:
        self._encode(b"\xff", 1, dst, bits=bits, prefix=self._prefix(bits))

    def imul(self, dst: Gp, src: Operand, bits: int = 64) -> None:
        """imul dst, src (low half of the product)."""
        self._encode(b"\x0f\xaf", dst, src, bits=bits)

    def imul_imm(self, dst: Gp, src: Operand, value: int, bits: int = 64) -> None:
        """imul dst, src, imm (imm sign-extended to the operand size)."""
        if bits == 32 and value >= 1 << 31:
            value -= 1 << 32
        if _fits8(value):
            self._encode(b"\x6b", dst, src, bits=bits, imm=_imm(value, 1))
        else:
            self._encode(b"\x69", dst, src, bits=bits, imm=_imm(value, 4))

    def shift(self, op: Shift, dst: Operand, amount: int | None, bits: int = 64) -> None:
        """shl/shr/sar/rol/ror dst by an immediate, or by cl when `amount` is None."""
        p = self._prefix(bits)
        if amount is None:
            self._encode(b"\xd3", op, dst, bits=bits, prefix=p)
        else:
            self._encode(b"\xc1", op, dst, bits=bits, imm=_imm(amount, 1), prefix=p)

    def bswap(self, reg: Gp, bits: int = 64) -> None:
        rex = (0x48 if bits == 64 else 0x40) | (1 if reg >= 8 else 0)
        if rex != 0x40:
            self._chunk.code.append(rex)
        self._chunk.code += bytes([0x0F, 0xC8 + (reg & 7)])

    def cqo(self) -> None:
        self.raw(b"\x48\x99")

    def cdq(self) -> None:
        self.raw(b"\x99")

    def rep_stosq(self) -> None:
        self.raw(b"\xf3\x48\xab")

    # -- atomics ----------------------------------------------------------------------------------
    def xadd(self, dst: Mem, src: Gp, bits: int = 64, *, lock: bool = True) -> None:
        self._encode(b"\x0f\xc1", src, dst, bits=bits, prefix=b"\xf0" if lock else b"")

    def cmpxchg(self, dst: Mem, src: Gp, bits: int = 64, *, lock: bool = True) -> None:
        self._encode(b"\x0f\xb1", src, dst, bits=bits, prefix=b"\xf0" if lock else b"")

    def xchg(self, dst: Mem, src: Gp, bits: int = 64) -> None:
        """xchg with memory (locked implicitly)."""
        self._encode(b"\x87", src, dst, bits=bits)

    # -- stack ------------------------------------------------------------------------------------
    def push(self, src: Gp | Mem | int) -> None:
        if isinstance(src, Gp):
            if src >= 8:
                self._chunk.code.append(0x41)
            self._chunk.code.append(0x50 + (src & 7))
        elif isinstance(src, Mem):
            self._encode(b"\xff", 6, src, bits=32)
        elif _fits8(src):
            self.raw(b"\x6a" + _imm(src, 1))
        else:
            self.raw(b"\x68" + _imm(src, 4))

    def pop(self, dst: Gp | Mem) -> None:
        if isinstance(dst, Gp):
            if dst >= 8:
                self._chunk.code.append(0x41)
            self._chunk.code.append(0x58 + (dst & 7))
        else:
            self._encode(b"\x8f", 0, dst, bits=32)

    # -- control flow -----------------------------------------------------------------------------
    def _branch(self, kind: str, cond: Cond | None, label: Label) -> None:
        after = _Chunk()
        self._items.append(_Branch(kind, cond, label, after))
        self._items.append(after)
        self._chunk = after

    def jmp(self, label: Label) -> None:
        self._branch("jmp", None, label)

    def jcc(self, cond: Cond, label: Label) -> None:
        self._branch("jcc", cond, label)

    def call(self, target: Label | Operand) -> None:
        """call rel32 to a label, or an indirect call through a register or memory."""
        if isinstance(target, Label):
            self._branch("call", None, target)
        else:
            self._encode(b"\xff", 2, target, bits=32)

    def jmp_indirect(self, target: Operand) -> None:
        self._encode(b"\xff", 4, target, bits=32)

    def ret(self) -> None:
        self.raw(b"\xc3")

    def int3(self) -> None:
        self.raw(b"\xcc")

    # -- layout -----------------------------------------------------------------------------------
    def assemble(self, data_offset: int | None = None) -> bytes:
        """Lay out the code; bind label offsets; return the bytes. RIP-relative `DataRef`s resolve to
        `data_offset` (default: the code size rounded up to 4096) + their offset."""
        items = self._items
        branches = [it for it in items if type(it) is _Branch]
        for br in branches:
            if br.label._chunk is None:
                raise AsmEncodingError(f"label {br.label!r} was never bound")
        while True:
            pos = 0
            for it in items:
                if type(it) is _Chunk:
                    it.start = pos
                    pos += len(it.code)
                else:
                    pos += it.size  # type: ignore[union-attr]
            changed = False
            for br in branches:
                if br.size == 2:
                    target = br.label._chunk.start + br.label._pos  # type: ignore[union-attr]
                    end = br.after.start
                    if not -128 <= target - end < 128:
                        br.widen()
                        changed = True
            if not changed:
                break
        size = pos
        for label in self._labels:
            assert label._chunk is not None
            label.offset = label._chunk.start + label._pos
        data_base = data_offset if data_offset is not None else (size + 4095) & ~4095
        out = bytearray()
        for it in items:
            if type(it) is _Chunk:
                start = len(out)
                out += it.code
                for disp_pos, end, target_ref, extra in it.fixups:
                    if isinstance(target_ref, Label):
                        if target_ref._chunk is None:
                            raise AsmEncodingError(f"label {target_ref!r} was never bound")
                        dest = target_ref._chunk.start + target_ref._pos
                    else:
                        dest = data_base + target_ref.offset
                    out[start + disp_pos:start + disp_pos + 4] = _imm(dest + extra - (start + end), 4)
            else:
                br = it  # type: ignore[assignment]
                assert br.label._chunk is not None
                rel = br.label._chunk.start + br.label._pos - (len(out) + br.size)
                if br.kind == "call":
                    out += b"\xe8" + _imm(rel, 4)
                elif br.kind == "jmp":
                    out += (b"\xe9" + _imm(rel, 4)) if br.size == 5 else (b"\xeb" + _imm(rel, 1))
                else:
                    assert br.cond is not None
                    if br.size == 6:
                        out += bytes((0x0F, 0x80 + int(br.cond))) + _imm(rel, 4)
                    else:
                        out += bytes((0x70 + int(br.cond),)) + _imm(rel, 1)
        assert len(out) == size
        return bytes(out)

