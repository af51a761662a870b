"""Random programs for the differential test of the VM against the kernel (BPF_PROG_TEST_RUN).

A generated program is an XDP program both sides run on the same packet:

    prologue   bounds-check the packet (r6 = data, PACKET_LEN bytes), fill the 64-byte stack area
               and every scalar register (r0-r5, r7-r9) with drawn values, from immediates (known
               to the verifier) or from the packet (unknown to it, so it explores both branches)
    body       drawn instructions: ALU32/ALU64 (every op incl. sdiv/smod, movsx, neg, le/be/bswap),
               forward conditional/unconditional jumps (JMP and JMP32, K and X, ja and gotol), bounded
               loops (a counter of 1-4 around straight-line code), bpf-to-bpf calls of generated
               subprograms (straight-line code on r0-r5 and their own stack), stack loads and
               stores of every size incl. sign-extending loads, stack atomics (add/or/and/xor with and
               without fetch, xchg, cmpxchg; 32 and 64-bit), loads/stores in a packet scratch area
    epilogue   write every scalar register and the stack area into the packet, return XDP_PASS

so one comparison of `data_out` covers r0, all registers, the stack and the packet. Generation keeps
to what the verifier accepts: r6 (packet) and r10 (stack) are never ALU operands or destinations,
only scalar registers are stored, immediate shifts are in range and immediate divisors non-zero;
whatever the verifier still refuses (e.g. unreachable code after a `ja`) is skipped and counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from bpfkit.errors import KernelError
from bpfkit.isa import Builder, Instruction, disassemble
from bpfkit.uapi.enums import ProgType, XdpAction
from bpfkit.uapi.insn import AluOp, AtomicOp, InsnClass, Mode, Reg, Source

SCALARS: tuple[Reg, ...] = (Reg.R0, Reg.R1, Reg.R2, Reg.R3, Reg.R4, Reg.R5, Reg.R7, Reg.R8, Reg.R9)
PKT = Reg.R6
FP = Reg.R10
STACK_WORDS = 8
REGS_OFF = 0
STACK_OFF = REGS_OFF + 8 * len(SCALARS)
AREA_OFF = STACK_OFF + 8 * STACK_WORDS
AREA_LEN = 32
PACKET_LEN = AREA_OFF + AREA_LEN

ALU_OPS = ("add", "sub", "mul", "div", "sdiv", "mod", "smod", "or", "and", "lsh", "rsh", "xor", "mov",
           "arsh")
JUMP_NAMES = ("jeq", "jgt", "jge", "jset", "jne", "jsgt", "jsge", "jlt", "jle", "jslt", "jsle")
ATOMICS = (AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR, AtomicOp.FETCH_ADD, AtomicOp.FETCH_OR,
           AtomicOp.FETCH_AND, AtomicOp.FETCH_XOR, AtomicOp.XCHG, AtomicOp.CMPXCHG)
STRAIGHT = ("alu", "alu", "alu", "alu", "movsx", "neg", "end", "stack_ld", "stack_st", "stack_atomic",
            "pkt_ld", "pkt_st")
"""Kinds of body item without control flow (what a loop body is made of)."""
KINDS = (*STRAIGHT, "jump", "jump", "ja", "loop", "call")

_INTERESTING32 = (0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 63, 64, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF,
                  0x7FFFFFFF, -0x80000000, -1, -2, -7, -0x8000, -0x80)
_INTERESTING64 = (0, 1, 0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000,
                  0xFFFFFFFFFFFFFFFF, 0xFFFFFFFF80000000, 0x80000000, 0x7FFFFFFF, 0xFFFFFFFFFFFFFFFE)


def imm32() -> st.SearchStrategy[int]:
    return st.sampled_from(_INTERESTING32) | st.integers(-(1 << 31), (1 << 31) - 1)


def value64() -> st.SearchStrategy[int]:
    return (st.sampled_from(_INTERESTING64) | st.integers(0, (1 << 64) - 1)
            | st.integers(-(1 << 31), (1 << 31) - 1).map(lambda v: v & ((1 << 64) - 1)))


@dataclass(frozen=True, slots=True)
class Generated:
    """A generated program and the packet it runs on."""

    insns: tuple[Instruction, ...]
    packet: bytes

    def listing(self) -> str:
        return disassemble(list(self.insns))


@dataclass(frozen=True, slots=True)
class Scope:
    """What body items may use: item kinds, registers written and read, stack words (from r10 down)."""

    kinds: tuple[str, ...] = KINDS
    written: tuple[Reg, ...] = SCALARS
    sources: tuple[Reg, ...] = SCALARS
    stack_words: int = STACK_WORDS


ARGS = (Reg.R1, Reg.R2, Reg.R3, Reg.R4, Reg.R5)
CALLEE = Scope(("alu", "alu", "alu", "movsx", "neg", "end", "stack_ld", "stack_st", "stack_atomic"),
               (Reg.R0, *ARGS), (Reg.R0, *ARGS), 2)
"""A subprogram sees r1-r5 (its arguments) and r0 once set, and its own 16 initialised stack bytes."""


def _body_insn(draw: Any, b: Builder, k: int, n: int, scope: Scope, subprograms: list[str]) -> None:
    """Emit body item `k` of `n`: one instruction, a jump pair, a bounded loop, or a call of a new
    subprogram (whose name is added to `subprograms`)."""
    kind = draw(st.sampled_from(scope.kinds))
    reg = st.sampled_from(scope.sources)
    dst = draw(st.sampled_from(scope.written))
    if kind == "stack_atomic" and Reg.R0 not in scope.written:
        kind = "stack_ld"  # cmpxchg writes r0
    if kind == "alu":
        op = draw(st.sampled_from(ALU_OPS))
        is64 = draw(st.booleans())
        if draw(st.booleans()):
            b.alu(op, dst, draw(reg), is64=is64)
        else:
            if op in ("lsh", "rsh", "arsh"):
                imm = draw(st.integers(0, 63 if is64 else 31))
            elif op in ("div", "sdiv", "mod", "smod"):
                imm = draw(imm32().filter(lambda v: v != 0))
            else:
                imm = draw(imm32())
            b.alu(op, dst, imm, is64=is64)
    elif kind == "movsx":
        is64 = draw(st.booleans())
        b.movsx(dst, draw(reg), draw(st.sampled_from((8, 16, 32) if is64 else (8, 16))), is64=is64)
    elif kind == "neg":
        b.neg(dst, is64=draw(st.booleans()))
    elif kind == "end":
        b.endian(dst, draw(st.sampled_from((16, 32, 64))), draw(st.sampled_from(("le", "be", "swap"))))
    elif kind in ("jump", "ja"):
        skip = draw(st.integers(0, 4))
        target = f"i{k + 1 + skip}" if k + 1 + skip < n else "end"
        if kind == "ja":
            # A conditional jump to just past the `ja` keeps the skipped instructions reachable (the
            # verifier refuses unreachable code). `long` is gotol (JMP32 JA, 32-bit offset).
            b.jmp(draw(st.sampled_from(JUMP_NAMES)), dst, draw(reg), f"i{k + 1}" if k + 1 < n else "end")
            b.ja(target, long=draw(st.booleans()))
        else:
            op = draw(st.sampled_from(JUMP_NAMES))
            is64 = draw(st.booleans())
            x: Reg | int = draw(reg) if draw(st.booleans()) else draw(imm32())
            b.jmp(op, dst, x, target, is64=is64)
    elif kind == "loop":
        # counter = 1..4; do { 1-3 straight-line items that leave the counter alone } while (--counter)
        counter = draw(st.sampled_from(SCALARS[1:]))
        inner = Scope(STRAIGHT, tuple(r for r in scope.written if r != counter), scope.sources,
                      scope.stack_words)
        b.mov(counter, draw(st.integers(1, 4))).label(f"loop{k}")
        for _ in range(draw(st.integers(1, 3))):
            _body_insn(draw, b, k, n, inner, subprograms)
        b.sub(counter, 1).jmp("jne", counter, 0, f"loop{k}")
    elif kind == "call":
        # A bpf-to-bpf call: r1-r5 are the arguments; after it r0 is the result, r6-r9 are kept and
        # r1-r5 are unreadable (the verifier says so), so they get fresh values.
        name = f"sub{len(subprograms)}"
        subprograms.append(name)
        b.call_local(name)
        for r in ARGS:
            b.mov(r, draw(imm32()))
    elif kind in ("stack_ld", "stack_st", "stack_atomic"):
        size = draw(st.sampled_from((4, 8) if kind == "stack_atomic" else (1, 2, 4, 8)))
        words = scope.stack_words
        off = -8 * words + size * draw(st.integers(0, 8 * words // size - 1))
        if kind == "stack_ld":
            signed = size != 8 and draw(st.booleans())
            b.ldx(size, dst, FP, off, signed=signed)
        elif kind == "stack_st":
            if draw(st.booleans()):
                b.stx(size, FP, off, dst)
            else:
                b.st(size, FP, off, draw(imm32()))
        else:
            b.atomic(size, draw(st.sampled_from(ATOMICS)), FP, off, dst)
    else:
        size = draw(st.sampled_from((1, 2, 4, 8)))
        off = AREA_OFF + draw(st.integers(0, AREA_LEN - size))
        if kind == "pkt_ld":
            b.ldx(size, dst, PKT, off, signed=size != 8 and draw(st.booleans()))
        elif draw(st.booleans()):
            b.stx(size, PKT, off, dst)
        else:
            b.st(size, PKT, off, draw(imm32()))


@st.composite
def programs(draw: Any, max_body: int = 24) -> Generated:
    """A generated program (see the module docstring) and its packet."""
    b = Builder()
    b.ldx(4, Reg.R2, Reg.R1, 0).ldx(4, Reg.R3, Reg.R1, 4).mov(PKT, Reg.R2)
    b.add(Reg.R2, PACKET_LEN).jmp("jgt", Reg.R2, Reg.R3, "short")
    # Initial values come from immediates (known to the verifier) or from the packet (unknown to it,
    # so both sides of a branch get explored); the packet's register and stack zones hold them.
    init = bytearray(PACKET_LEN)
    for i in range(STACK_WORDS):
        value = draw(value64())
        if draw(st.booleans()):
            b.ld_imm64(Reg.R1, value)
        else:
            b.ldx(8, Reg.R1, PKT, STACK_OFF + 8 * i)
            init[STACK_OFF + 8 * i:STACK_OFF + 8 * i + 8] = value.to_bytes(8, "little")
        b.stx(8, FP, -8 * (i + 1), Reg.R1)
    for i, r in enumerate(SCALARS):
        how = draw(st.sampled_from(("lddw", "mov", "packet")))
        if how == "lddw":
            b.ld_imm64(r, draw(value64()))
        elif how == "mov":
            b.mov(r, draw(imm32()))
        else:
            init[REGS_OFF + 8 * i:REGS_OFF + 8 * i + 8] = draw(value64()).to_bytes(8, "little")
            b.ldx(8, r, PKT, REGS_OFF + 8 * i)
    n = draw(st.integers(1, max_body))
    subprograms: list[str] = []
    for k in range(n):
        b.label(f"i{k}")
        _body_insn(draw, b, k, n, Scope(), subprograms)
    b.label("end")
    for i, r in enumerate(SCALARS):
        b.stx(8, PKT, REGS_OFF + 8 * i, r)
    for i in range(STACK_WORDS):
        b.ldx(8, Reg.R1, FP, -8 * (i + 1)).stx(8, PKT, STACK_OFF + 8 * i, Reg.R1)
    b.mov(Reg.R0, int(XdpAction.PASS)).exit()
    b.label("short").mov(Reg.R0, int(XdpAction.ABORTED)).exit()
    for name in subprograms:
        # r0 = r1; its two stack words from r2 and r3; then straight-line code; return r0.
        b.label(name).mov(Reg.R0, Reg.R1).stx(8, FP, -8, Reg.R2).stx(8, FP, -16, Reg.R3)
        m = draw(st.integers(1, 6))
        for k in range(m):
            _body_insn(draw, b, k, m, CALLEE, subprograms)
        b.exit()
    init[AREA_OFF:] = draw(st.binary(min_size=AREA_LEN, max_size=AREA_LEN))
    return Generated(tuple(b.build()), bytes(init))


def signature(insn: Instruction) -> tuple[int, int, int]:
    """What tells operations apart: the opcode, plus `off` for sdiv/smod/movsx and `imm` for atomics
    and byte swaps."""
    cls, op = insn.opcode & 0x07, insn.opcode & 0xF0
    off = imm = 0
    if cls in (InsnClass.ALU, InsnClass.ALU64):
        if op in (AluOp.DIV, AluOp.MOD) or (op == AluOp.MOV and insn.opcode & Source.X):
            off = insn.off
        if op == AluOp.END:
            imm = insn.imm
    elif cls == InsnClass.STX and insn.opcode & 0xE0 == Mode.ATOMIC:
        imm = insn.imm
    return insn.opcode, off, imm


def universe() -> set[tuple[int, int, int]]:
    """The signature of every operation the generator can emit."""
    b = Builder()
    for is64 in (True, False):
        for op in ALU_OPS:
            b.alu(op, Reg.R0, Reg.R1, is64=is64).alu(op, Reg.R0, 1, is64=is64)
        for bits in (8, 16, 32) if is64 else (8, 16):
            b.movsx(Reg.R0, Reg.R1, bits, is64=is64)
        b.neg(Reg.R0, is64=is64)
        for name in JUMP_NAMES:
            b.jmp(name, Reg.R0, Reg.R1, 0, is64=is64).jmp(name, Reg.R0, 1, 0, is64=is64)
        b.ja(0, long=not is64)
    for bits in (16, 32, 64):
        for order in ("le", "be", "swap"):
            b.endian(Reg.R0, bits, order)
    for size in (1, 2, 4, 8):
        b.ldx(size, Reg.R0, FP, -8).stx(size, FP, -8, Reg.R0).st(size, FP, -8, 1)
        if size != 8:
            b.ldx(size, Reg.R0, FP, -8, signed=True)
    for size in (4, 8):
        for aop in ATOMICS:
            b.atomic(size, aop, FP, -8, Reg.R0)
    b.call_local(0)
    return {signature(i) for i in b.build()}


@dataclass(slots=True)
class Stats:
    """Counts over a run of the differential test."""

    compared: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        total = self.compared + self.rejected
        top = ", ".join(f"{r!r} x{n}" for r, n in self.reasons.most_common(5))
        return (f"{total} programs: {self.compared} compared (VM = kernel), {self.rejected} rejected by "
                f"the kernel verifier" + (f" ({top})" if top else ""))


STATS = Stats()


def run_kernel(gen: Generated) -> tuple[int, bytes] | str:
    """(retval, data_out) from the kernel, or the verifier's one-line reason for refusing."""
    from bpfkit.kernel.programs import Program

    try:
        prog = Program.load(list(gen.insns), ProgType.XDP, name="difftest")
    except KernelError as e:
        log = getattr(e, "log", "") or ""
        lines = [ln for ln in log.splitlines() if ln.strip() and not ln.startswith(
            ("processed ", "verification time", "stack depth", "max_states_per_insn"))]
        return lines[-1] if lines else str(e).replace("\n", " ")
    with prog:
        r = prog.test_run(gen.packet)
    return r.retval, r.data_out


def run_vm(gen: Generated, engine: str) -> tuple[int, bytes]:
    from bpfkit.vm import Vm

    r = Vm(engine=engine).load(list(gen.insns), prog_type=ProgType.XDP).test_run(gen.packet)  # type: ignore[arg-type]
    return r.retval, r.data_out


def explain(gen: Generated, kernel: tuple[int, bytes], vm: tuple[int, bytes], engine: str) -> str:
    """A readable difference: which register / stack word / packet byte differs."""
    lines = [f"VM ({engine}) and kernel disagree; retval kernel {kernel[0]} vm {vm[0]}"]
    k, v = kernel[1], vm[1]
    for i, r in enumerate(SCALARS):
        a, c = k[8 * i:8 * i + 8], v[8 * i:8 * i + 8]
        if a != c:
            lines.append(f"  {r.name.lower()}: kernel {int.from_bytes(a, 'little'):#x} "
                         f"vm {int.from_bytes(c, 'little'):#x}")
    for i in range(STACK_WORDS):
        o = STACK_OFF + 8 * i
        if k[o:o + 8] != v[o:o + 8]:
            lines.append(f"  stack [r10-{8 * (i + 1)}]: kernel {k[o:o + 8].hex()} vm {v[o:o + 8].hex()}")
    if k[AREA_OFF:] != v[AREA_OFF:]:
        lines.append(f"  packet area: kernel {k[AREA_OFF:].hex()} vm {v[AREA_OFF:].hex()}")
    lines.append(gen.listing())
    return "\n".join(lines)
