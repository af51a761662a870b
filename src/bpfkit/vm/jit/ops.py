"""Native code for eBPF arithmetic, byte swaps, jump conditions and atomics, with the kernel's semantics.

Register mapping (the kernel's x86-64 JIT, arch/x86/net/bpf_jit_comp.c): r0=rax, r1=rdi, r2=rsi,
r3=rdx, r4=rcx, r5=r8, r6=rbx, r7=r13, r8=r14, r9=r15, r10=rbp. r9, r10 and r11 are the JIT's scratch
registers; r12 holds the run block.

Semantics (bpfkit.vm.alu, from RFC 9669 and the verifier's rewrites): 32-bit operations zero-extend their
result (an x86 write to a 32-bit register does so); shift counts are masked to the width (x86 masks them
the same way); unsigned division by zero gives 0 and modulo by zero leaves dst (zero-extended for
ALU32); signed division by -1 is negation (INT_MIN / -1 = INT_MIN, INT_MIN % -1 = 0), done without
`idiv`, which would trap.
"""

from __future__ import annotations

from bpfkit.errors import VmError
from bpfkit.uapi.insn import AluOp, AtomicOp, InsnClass, JmpOp, Source
from bpfkit.vm.jit.x86 import Alu, Asm, Cond, Gp, Label, Mem, Shift, Unary

REG: tuple[Gp, ...] = (Gp.RAX, Gp.RDI, Gp.RSI, Gp.RDX, Gp.RCX, Gp.R8, Gp.RBX, Gp.R13, Gp.R14,
                       Gp.R15, Gp.RBP)
"""eBPF register number -> x86-64 register."""

_BINARY = {AluOp.ADD: Alu.ADD, AluOp.SUB: Alu.SUB, AluOp.OR: Alu.OR, AluOp.AND: Alu.AND,
           AluOp.XOR: Alu.XOR}
_SHIFTS = {AluOp.LSH: Shift.SHL, AluOp.RSH: Shift.SHR, AluOp.ARSH: Shift.SAR}
CONDITIONS: dict[JmpOp, Cond] = {
    JmpOp.JEQ: Cond.E, JmpOp.JNE: Cond.NE, JmpOp.JGT: Cond.A, JmpOp.JGE: Cond.AE, JmpOp.JLT: Cond.B,
    JmpOp.JLE: Cond.BE, JmpOp.JSGT: Cond.G, JmpOp.JSGE: Cond.GE, JmpOp.JSLT: Cond.L, JmpOp.JSLE: Cond.LE,
    JmpOp.JSET: Cond.NE,
}


def imm_for(value: int, bits: int) -> int:
    """A signed 32-bit eBPF immediate as the x86 immediate of a `bits`-wide operation (64-bit operations
    sign-extend imm32 exactly as eBPF does; 32-bit ones take the low 32 bits)."""
    return value if bits == 64 else value & 0xFFFFFFFF


def zext32(a: Asm, reg: Gp) -> None:
    """Clear the upper half of `reg` (mov r32, r32)."""
    a.mov(reg, reg, 32)


def alu(a: Asm, opcode: int, dst: int, src: int, off: int, imm: int) -> None:
    """Emit one BPF_ALU / BPF_ALU64 instruction other than BPF_END."""
    is64 = (opcode & 0x07) == InsnClass.ALU64
    bits = 64 if is64 else 32
    op = AluOp(opcode & 0xF0)
    use_reg = bool(opcode & Source.X)
    d = REG[dst]
    s = REG[src]
    if op in _BINARY:
        a.alu(_BINARY[op], d, s if use_reg else imm_for(imm, bits), bits)
    elif op is AluOp.MOV:
        if use_reg and off:
            if is64 and off == 32:
                a.movsx(d, s, 32)
            else:
                a.movsx(d, s, off, bits)
        elif use_reg:
            a.mov(d, s, bits)
        elif is64:
            a.mov(d, imm)
        else:
            a.mov(d, imm & 0xFFFFFFFF, 32)
    elif op is AluOp.MUL:
        if use_reg:
            a.imul(d, s, bits)
        else:
            a.imul_imm(d, d, imm_for(imm, bits), bits)
    elif op is AluOp.NEG:
        a.unary(Unary.NEG, d, bits)
    elif op in _SHIFTS:
        _shift(a, _SHIFTS[op], d, s if use_reg else None, imm & (bits - 1), bits)
    elif op in (AluOp.DIV, AluOp.MOD):
        _divmod(a, op is AluOp.DIV, d, s if use_reg else None, imm, bits, signed=off == 1)
    else:  # pragma: no cover - the opcode table admits nothing else
        raise VmError(f"the JIT cannot compile ALU operation {op:#x}")


def _shift(a: Asm, op: Shift, d: Gp, s: Gp | None, amount: int, bits: int) -> None:
    if s is None:
        if amount:
            a.shift(op, d, amount, bits)
        elif bits == 32:
            zext32(a, d)
        return
    # A variable count must be in cl (rcx is r4): shift a copy when dst is rcx, else save rcx.
    if s == Gp.RCX:
        a.shift(op, d, None, bits)
    elif d == Gp.RCX:
        a.mov(Gp.R11, Gp.RCX)
        a.mov(Gp.RCX, s)
        a.shift(op, Gp.R11, None, bits)
        a.mov(Gp.RCX, Gp.R11)
    else:
        a.mov(Gp.R11, Gp.RCX)
        a.mov(Gp.RCX, s)
        a.shift(op, d, None, bits)
        a.mov(Gp.RCX, Gp.R11)
    if bits == 32:
        zext32(a, d)  # a 32-bit shift by 0 must still clear the upper half


def _divmod(a: Asm, is_div: bool, d: Gp, s: Gp | None, imm: int, bits: int, *, signed: bool) -> None:
    done = Label("divmod.done")
    if s is None:
        value = imm if bits == 64 else imm & 0xFFFFFFFF
        if imm == 0:
            _by_zero(a, is_div, d, bits)
            return
        if signed and imm == -1:
            _by_minus_one(a, is_div, d, bits)
            return
        a.mov(Gp.R11, value)
    else:
        a.mov(Gp.R11, s, bits)
        zero = Label("divmod.zero")
        a.test(Gp.R11, Gp.R11, bits)
        a.jcc(Cond.E, zero)
        minus_one = Label("divmod.minus1")
        if signed:
            a.alu(Alu.CMP, Gp.R11, -1, bits)
            a.jcc(Cond.E, minus_one)
        _divide(a, is_div, d, bits, signed)
        a.jmp(done)
        a.bind(zero)
        _by_zero(a, is_div, d, bits)
        if signed:
            a.jmp(done)
            a.bind(minus_one)
            _by_minus_one(a, is_div, d, bits)
        a.bind(done)
        return
    _divide(a, is_div, d, bits, signed)


def _divide(a: Asm, is_div: bool, d: Gp, bits: int, signed: bool) -> None:
    """dst = dst / r11 (or %) with rax and rdx (r0, r3) saved in r10 and r9 around the division."""
    a.mov(Gp.R10, Gp.RAX)
    a.mov(Gp.R9, Gp.RDX)
    a.mov(Gp.RAX, d, bits)
    if signed:
        if bits == 64:
            a.cqo()
        else:
            a.cdq()
        a.unary(Unary.IDIV, Gp.R11, bits)
    else:
        a.alu(Alu.XOR, Gp.RDX, Gp.RDX, 32)
        a.unary(Unary.DIV, Gp.R11, bits)
    a.mov(Gp.R11, Gp.RAX if is_div else Gp.RDX, bits)
    a.mov(Gp.RAX, Gp.R10)
    a.mov(Gp.RDX, Gp.R9)
    a.mov(d, Gp.R11, bits)


def _by_zero(a: Asm, is_div: bool, d: Gp, bits: int) -> None:
    if is_div:
        a.alu(Alu.XOR, d, d, 32)
    elif bits == 32:
        zext32(a, d)


def _by_minus_one(a: Asm, is_div: bool, d: Gp, bits: int) -> None:
    if is_div:
        a.unary(Unary.NEG, d, bits)
    else:
        a.alu(Alu.XOR, d, d, 32)


def end(a: Asm, opcode: int, dst: int, width: int) -> None:
    """BPF_END: `le` truncates to the width (the host is little-endian); `be` and the ALU64 `bswap`
    reverse the bytes of the low `width` bits; both zero the rest."""
    d = REG[dst]
    swap = (opcode & 0x07) == InsnClass.ALU64 or bool(opcode & 0x08)
    if not swap:
        if width == 16:
            a.movzx(d, d, 16)
        elif width == 32:
            zext32(a, d)
        return
    if width == 16:
        a.shift(Shift.ROR, d, 8, 16)
        a.movzx(d, d, 16)
    elif width == 32:
        a.bswap(d, 32)
    else:
        a.bswap(d, 64)


def condition(a: Asm, opcode: int, dst: int, src: int, imm: int) -> Cond:
    """Compare for a conditional jump; return the condition under which it is taken."""
    bits = 64 if (opcode & 0x07) == InsnClass.JMP else 32
    op = JmpOp(opcode & 0xF0)
    d = REG[dst]
    operand: Gp | int = REG[src] if opcode & Source.X else imm_for(imm, bits)
    if op is JmpOp.JSET:
        a.test(d, operand, bits)
    else:
        a.alu(Alu.CMP, d, operand, bits)
    return CONDITIONS[op]


def atomic_rmw(a: Asm, op: int, m: Mem, s: Gp, bits: int) -> None:
    """A BPF atomic read-modify-write on [m] (m is [r11]) with source register s."""
    if op in (AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR):
        alu_op = {AtomicOp.ADD: Alu.ADD, AtomicOp.OR: Alu.OR, AtomicOp.AND: Alu.AND,
                  AtomicOp.XOR: Alu.XOR}[AtomicOp(op)]
        a.alu(alu_op, m, s, bits, lock=True)
    elif op == AtomicOp.FETCH_ADD:
        a.xadd(m, s, bits)
        if bits == 32:
            zext32(a, s)
    elif op == AtomicOp.XCHG:
        a.xchg(m, s, bits)
        if bits == 32:
            zext32(a, s)
    elif op == AtomicOp.CMPXCHG:
        a.cmpxchg(m, s, bits)
        if bits == 32:
            zext32(a, Gp.RAX)  # r0 = old value, zero-extended (also when the exchange happened)
    elif op in (AtomicOp.FETCH_OR, AtomicOp.FETCH_AND, AtomicOp.FETCH_XOR):
        alu_op = {AtomicOp.FETCH_OR: Alu.OR, AtomicOp.FETCH_AND: Alu.AND,
                  AtomicOp.FETCH_XOR: Alu.XOR}[AtomicOp(op)]
        loop = Label("atomic.loop")
        a.push(Gp.RAX)  # cmpxchg needs rax (r0): keep r0 on the stack meanwhile
        a.mov(Gp.R9, s)
        a.mov(Gp.RAX, m, bits)
        a.bind(loop)
        a.mov(Gp.R10, Gp.RAX)
        a.alu(alu_op, Gp.R10, Gp.R9, bits)
        a.cmpxchg(m, Gp.R10, bits)
        a.jcc(Cond.NE, loop)
        a.mov(Gp.R10, Gp.RAX, bits)  # the old value, zero-extended for 32-bit operations
        a.pop(Gp.RAX)
        a.mov(s, Gp.R10)  # if s is r0, r0 ends up holding the old value, as the VM does
    else:
        raise VmError(f"the JIT cannot compile atomic operation {op:#x}")
