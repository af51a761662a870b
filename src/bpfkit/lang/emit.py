"""Low-level code emission for the language compiler: stack slots, memory copies, constants, map calls.

`Emitter` wraps a `bpfkit.isa.Builder` with what every statement needs: a bump allocator of 8-byte
aligned stack slots below r10 (freed per statement by `mark`/`release`), zeroing and copying of stack
memory, string constants, fresh labels, map lookups, and the instruction-slot -> source-span table used
to point verifier complaints at the script. Register use: r6 holds the context for the whole program,
r0 carries integer results, r1-r5 are scratch (helper calls clobber them), r7 holds a map value
pointer across helper calls where one statement needs it (join()).
"""

from __future__ import annotations

from bpfkit.errors import CompileError
from bpfkit.isa import Builder
from bpfkit.lang.diagnostics import error
from bpfkit.lang.source import Span
from bpfkit.uapi.enums import Helper
from bpfkit.uapi.insn import Reg

R0, R1, R2, R3, R4, R5, R6, R7, R10 = (Reg.R0, Reg.R1, Reg.R2, Reg.R3, Reg.R4, Reg.R5, Reg.R6, Reg.R7,
                                       Reg.R10)
#: The BPF stack size limit (MAX_BPF_STACK, include/linux/filter.h).
STACK_SIZE = 512


def _align8(n: int) -> int:
    return (n + 7) & ~7


class Emitter:
    """Instruction builder plus stack allocator and span table for one program."""

    def __init__(self) -> None:
        self.b = Builder()
        self.top = 0
        self.peak = 0
        self._labels = 0
        self.spans: list[tuple[int, Span]] = []
        self.span: Span | None = None

    # -- bookkeeping -------------------------------------------------------------------------------
    def at(self, span: Span) -> None:
        """Record that the code emitted from here comes from `span`."""
        self.span = span
        self.spans.append((self.b.slot, span))

    def label(self, hint: str = "L") -> str:
        self._labels += 1
        return f".{hint}{self._labels}"

    def alloc(self, size: int) -> int:
        """A fresh stack slot of `size` bytes; returns its (negative) offset from r10."""
        self.top += _align8(max(size, 8))
        if self.top > STACK_SIZE:
            raise CompileError([error(
                f"the program needs more than the {STACK_SIZE} bytes of BPF stack (too many or too "
                "large strings, tuples or printf arguments in one statement)", self.span)])
        self.peak = max(self.peak, self.top)
        return -self.top

    def mark(self) -> int:
        return self.top

    def release(self, mark: int) -> None:
        self.top = mark

    # -- memory ------------------------------------------------------------------------------------
    def zero(self, off: int, size: int) -> None:
        for i in range(0, _align8(size), 8):
            self.b.st(8, R10, off + i, 0)

    def copy(self, dst: int, src: int, size: int, *, src_reg: Reg = R10, dst_reg: Reg = R10) -> None:
        """Copy `size` bytes (a multiple of 8) from src_reg+src to dst_reg+dst through r1."""
        if src_reg is R10 and dst_reg is R10 and src == dst:
            return
        for i in range(0, size, 8):
            self.b.ldx(8, R1, src_reg, src + i)
            self.b.stx(8, dst_reg, dst + i, R1)

    def const_bytes(self, off: int, data: bytes, size: int) -> None:
        """Write `data` zero-padded to `size` bytes at r10+off."""
        padded = data[:size].ljust(_align8(size), b"\0")
        for i in range(0, len(padded), 8):
            lo = int.from_bytes(padded[i:i + 4], "little")
            hi = int.from_bytes(padded[i + 4:i + 8], "little")
            if lo == 0 and hi == 0:
                self.b.st(8, R10, off + i, 0)
                continue
            self.b.st(4, R10, off + i, _s32(lo))
            self.b.st(4, R10, off + i + 4, _s32(hi))

    def load_imm(self, reg: Reg, value: int) -> None:
        value &= (1 << 64) - 1
        signed = value - (1 << 64) if value >= 1 << 63 else value
        if -(1 << 31) <= signed < (1 << 31):
            self.b.mov(reg, signed)
        else:
            self.b.ld_imm64(reg, value)

    def stack_ptr(self, reg: Reg, off: int) -> None:
        self.b.mov(reg, R10)
        self.b.add(reg, off)

    # -- maps --------------------------------------------------------------------------------------
    def lookup(self, symbol: str, key_off: int) -> None:
        """r0 = bpf_map_lookup_elem(map, r10+key_off) (NULL when missing)."""
        self.b.ld_map(R1, symbol)
        self.stack_ptr(R2, key_off)
        self.b.call(Helper.MAP_LOOKUP_ELEM)

    def update(self, symbol: str, key_off: int, value_off: int, flags: int = 0) -> None:
        self.b.ld_map(R1, symbol)
        self.stack_ptr(R2, key_off)
        self.stack_ptr(R3, value_off)
        self.b.mov(R4, flags)
        self.b.call(Helper.MAP_UPDATE_ELEM)

    def delete(self, symbol: str, key_off: int) -> None:
        self.b.ld_map(R1, symbol)
        self.stack_ptr(R2, key_off)
        self.b.call(Helper.MAP_DELETE_ELEM)

    def ringbuf_output(self, symbol: str, off: int, size: int) -> None:
        """Send `size` bytes at stack offset `off` to ring buffer map `symbol`."""
        self.stack_ptr(R2, off)
        self._output(symbol, size)

    def ringbuf_output_from(self, symbol: str, reg: Reg, size: int) -> None:
        """Send `size` bytes at the address in `reg` (a map value: a staged event) to `symbol`."""
        self.b.mov(R2, reg)
        self._output(symbol, size)

    def _output(self, symbol: str, size: int) -> None:
        self.b.ld_map(R1, symbol)
        self.b.mov(R3, size)
        self.b.mov(R4, 0)
        self.b.call(Helper.RINGBUF_OUTPUT)

    # -- integers ----------------------------------------------------------------------------------
    def truncate(self, reg: Reg, size: int, signed: bool) -> None:
        """Keep the low `size` bytes of `reg`, sign- or zero-extending to 64 bits."""
        if size >= 8:
            return
        shift = 64 - size * 8
        self.b.alu("lsh", reg, shift)
        self.b.alu("arsh" if signed else "rsh", reg, shift)

    def log2_bucket(self, reg: Reg, tmp: Reg) -> None:
        """Turn the value in `reg` into bpftrace's hist() bucket: 0 for < 0, 1 for 0, else log2(v) + 2."""
        neg, zero, done = self.label("neg"), self.label("zero"), self.label("log")
        b = self.b
        b.jmp("jslt", reg, 0, neg)
        b.jmp("jeq", reg, 0, zero)
        b.mov(R5, 2)  # result accumulates in r5
        for shift in (32, 16, 8, 4, 2, 1):
            skip = self.label("b")
            b.mov(tmp, reg)
            b.alu("rsh", tmp, shift)
            b.jmp("jeq", tmp, 0, skip)
            b.mov(reg, tmp)
            b.add(R5, shift)
            b.label(skip)
        b.mov(reg, R5)
        b.ja(done)
        b.label(neg)
        b.mov(reg, 0)
        b.ja(done)
        b.label(zero)
        b.mov(reg, 1)
        b.label(done)

    def linear_bucket(self, reg: Reg, lo: int, hi: int, step: int) -> None:
        """bpftrace's lhist() bucket: 0 below `lo`, n+1 at or above `hi`, else (v - lo) / step + 1."""
        under, over, done = self.label("under"), self.label("over"), self.label("lin")
        b = self.b
        tmp = R5
        self.load_imm(tmp, lo)
        b.jmp("jslt", reg, tmp, under)
        self.load_imm(tmp, hi)
        b.jmp("jsge", reg, tmp, over)
        self.load_imm(tmp, lo)
        b.sub(reg, tmp)
        b.alu("div", reg, step)
        b.add(reg, 1)
        b.ja(done)
        b.label(under)
        b.mov(reg, 0)
        b.ja(done)
        b.label(over)
        b.mov(reg, (hi - lo) // step + 1)
        b.label(done)


def _s32(v: int) -> int:
    return v - (1 << 32) if v >= 1 << 31 else v
