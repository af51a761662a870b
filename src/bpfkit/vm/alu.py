"""Arithmetic of eBPF with the kernel's semantics, as plain functions on unsigned 64-bit ints.

Facts (RFC 9669 section 4 and kernel/bpf/core.c, with the verifier's rewrites in do_misc_fixups):
32-bit operations work on the low halves and zero-extend the result; shift amounts are masked to the
operand width; unsigned division by zero gives 0 and modulo by zero leaves the dividend (its low 32 bits,
zero-extended, for ALU32); signed division and modulo truncate toward zero, INT_MIN / -1 = INT_MIN and
INT_MIN % -1 = 0, and by zero behave like their unsigned forms.
"""

from __future__ import annotations

from bpfkit.errors import VmError
from bpfkit.uapi.insn import AluOp, AtomicOp, JmpOp

U64 = 0xFFFFFFFFFFFFFFFF
U32 = 0xFFFFFFFF


def signed(value: int, bits: int) -> int:
    """The low `bits` of `value` read as a two's-complement signed int."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def sign_extend(value: int, bits: int, to: int = 64) -> int:
    """Sign-extend the low `bits` of `value` to an unsigned `to`-bit value."""
    return signed(value, bits) & ((1 << to) - 1)


def sdiv(a: int, b: int, bits: int) -> int:
    """Signed division truncating toward zero; by zero gives 0; INT_MIN / -1 wraps to INT_MIN."""
    mask = (1 << bits) - 1
    sa, sb = signed(a, bits), signed(b, bits)
    if sb == 0:
        return 0
    q = abs(sa) // abs(sb)
    return (-q if (sa < 0) != (sb < 0) else q) & mask


def smod(a: int, b: int, bits: int) -> int:
    """Signed remainder with the sign of the dividend; by zero leaves the dividend."""
    mask = (1 << bits) - 1
    sa, sb = signed(a, bits), signed(b, bits)
    if sb == 0:
        return a & mask
    r = abs(sa) % abs(sb)
    return (-r if sa < 0 else r) & mask


def bswap(value: int, bits: int) -> int:
    """Reverse the byte order of the low `bits` of `value` (the rest is dropped)."""
    n = bits // 8
    return int.from_bytes((value & ((1 << bits) - 1)).to_bytes(n, "little"), "big")


def alu(op: int, off: int, d: int, s: int, is64: bool) -> int:
    """dst `op` src for a BPF_ALU/ALU64 operation other than END; `s` is already the source value
    (an immediate sign-extended to 64 bits). Returns the new unsigned 64-bit dst."""
    if is64:
        bits, mask = 64, U64
    else:
        bits, mask = 32, U32
        d &= U32
        s &= U32
    if op == AluOp.ADD:
        return (d + s) & mask
    if op == AluOp.SUB:
        return (d - s) & mask
    if op == AluOp.MUL:
        return (d * s) & mask
    if op == AluOp.DIV:
        if off == 1:
            return sdiv(d, s, bits)
        return d // s if s else 0
    if op == AluOp.MOD:
        if off == 1:
            return smod(d, s, bits)
        return d % s if s else d
    if op == AluOp.OR:
        return d | s
    if op == AluOp.AND:
        return d & s
    if op == AluOp.XOR:
        return d ^ s
    if op == AluOp.LSH:
        return (d << (s & (bits - 1))) & mask
    if op == AluOp.RSH:
        return d >> (s & (bits - 1))
    if op == AluOp.ARSH:
        return (signed(d, bits) >> (s & (bits - 1))) & mask
    if op == AluOp.NEG:
        return -d & mask
    if op == AluOp.MOV:
        if off:  # MOVSX: sign-extend the low `off` bits of src to the operation width
            return sign_extend(s, off, bits)
        return s
    raise VmError(f"unknown ALU operation {op:#x}")


def end(opcode: int, imm: int, d: int) -> int:
    """BPF_END: `le`/`be` (ALU class) convert to that byte order from a little-endian host; the ALU64
    form (bswap) always swaps. Widths below 64 zero the upper bits."""
    bits = imm
    is_be = bool(opcode & 0x08)
    is_swap = (opcode & 0x07) == 0x07
    if is_swap or is_be:
        return bswap(d, bits)
    return d & ((1 << bits) - 1)


def condition(op: int, a: int, b: int, is64: bool) -> bool:
    """Whether a conditional jump `op` is taken; `b` is the source (immediates already extended)."""
    if is64:
        bits = 64
    else:
        bits = 32
        a &= U32
        b &= U32
    if op == JmpOp.JEQ:
        return a == b
    if op == JmpOp.JNE:
        return a != b
    if op == JmpOp.JGT:
        return a > b
    if op == JmpOp.JGE:
        return a >= b
    if op == JmpOp.JLT:
        return a < b
    if op == JmpOp.JLE:
        return a <= b
    if op == JmpOp.JSET:
        return bool(a & b)
    sa, sb = signed(a, bits), signed(b, bits)
    if op == JmpOp.JSGT:
        return sa > sb
    if op == JmpOp.JSGE:
        return sa >= sb
    if op == JmpOp.JSLT:
        return sa < sb
    if op == JmpOp.JSLE:
        return sa <= sb
    raise VmError(f"unknown jump operation {op:#x}")


def atomic_rmw(imm: int, old: int, src: int, r0: int, size: int) -> tuple[int, int | None, int | None]:
    """The read-modify-write part of a BPF_ATOMIC op on a `size`-byte location holding `old`.

    Returns (new memory value, new src register or None, new r0 or None). FETCH forms and XCHG return
    the old value in src; CMPXCHG compares r0 (its low 32 bits for 4-byte ops) and returns the old value
    in r0. Values read back into registers are zero-extended.
    """
    mask = U64 if size == 8 else U32
    src_v = src & mask
    op = imm & ~0x01
    fetch = bool(imm & 0x01)
    if imm == AtomicOp.XCHG:
        return src_v, old, None
    if imm == AtomicOp.CMPXCHG:
        new = src_v if (r0 & mask) == old else old
        return new, None, old
    if op == AtomicOp.ADD:
        new = (old + src_v) & mask
    elif op == AtomicOp.OR:
        new = old | src_v
    elif op == AtomicOp.AND:
        new = old & src_v
    elif op == AtomicOp.XOR:
        new = old ^ src_v
    else:
        raise VmError(f"unknown atomic operation {imm:#x}")
    return new, (old if fetch else None), None
