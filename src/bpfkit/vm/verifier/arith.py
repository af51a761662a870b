"""ALU transfer functions on scalar `Bounds` (the kernel's adjust_scalar_min_max_vals).

`alu(op, dst, src, alu32)` is what is known of `dst op src`. Where the kernel gives up on a range
(division, modulo, byte swaps, negation, shifts by a non-constant or too large amount) bpfkit gives up
too, so it never proves more than the kernel can.
"""

from __future__ import annotations

from bpfkit.uapi.insn import AluOp
from bpfkit.vm.verifier.ranges import (
    S32_MAX,
    S32_MIN,
    S64_MAX,
    S64_MIN,
    U32_MAX,
    U64_MAX,
    Bounds,
    sync,
    unknown,
    zext32,
)
from bpfkit.vm.verifier.tnum import U32, Tnum

Range = tuple[int, int]

_RANGED = frozenset({AluOp.ADD, AluOp.SUB, AluOp.MUL, AluOp.AND, AluOp.OR, AluOp.XOR})
_SHIFTS = frozenset({AluOp.LSH, AluOp.RSH, AluOp.ARSH})


def computable(op: AluOp, src: Bounds, alu32: bool) -> bool:
    """Whether the kernel tracks the result's range (is_safe_to_compute_dst_reg_range)."""
    if op in _RANGED:
        return True
    if op in _SHIFTS:
        bits = 32 if alu32 else 64
        known = src.is_const32 if alu32 else src.is_const
        value = src.value & U32 if alu32 else src.value
        return known and value < bits
    return False


def _fit(lo: int, hi: int, bound: Range) -> Range:
    return (lo, hi) if bound[0] <= lo and hi <= bound[1] else bound


def _views(op: AluOp, d: tuple[int, int, int, int], s: tuple[int, int, int, int], var: Tnum,
           srange: Range, urange: Range, shift: int) -> tuple[int, int, int, int]:
    """(smin, smax, umin, umax) of `d op s` in one width; d and s are (smin, smax, umin, umax)."""
    dsmin, dsmax, dumin, dumax = d
    ssmin, ssmax, sumin, sumax = s
    top = urange[1]
    both_nonneg = dsmin >= 0 and ssmin >= 0
    if op is AluOp.ADD:
        return (*_fit(dsmin + ssmin, dsmax + ssmax, srange), *_fit(dumin + sumin, dumax + sumax, urange))
    if op is AluOp.SUB:
        return (*_fit(dsmin - ssmax, dsmax - ssmin, srange), *_fit(dumin - sumax, dumax - sumin, urange))
    if op is AluOp.MUL:
        signed = _fit(dsmin * ssmin, dsmax * ssmax, srange) if both_nonneg else srange
        return (*signed, *_fit(dumin * sumin, dumax * sumax, urange))
    if op is AluOp.AND:
        umin, umax = var.value & top, min(dumax, sumax)
        return (*((umin, umax) if both_nonneg else srange), umin, umax)
    if op is AluOp.OR:
        umin, umax = max(dumin, sumin), (var.value | var.mask) & top
        return (*((umin, umax) if both_nonneg else srange), umin, umax)
    if op is AluOp.XOR:
        umin, umax = var.value & top, (var.value | var.mask) & top
        return (*((umin, umax) if both_nonneg else srange), umin, umax)
    if op is AluOp.LSH:
        if dumax << shift <= top:
            return (*srange, dumin << shift, dumax << shift)
        return (*srange, *urange)
    if op is AluOp.RSH:
        return (*srange, dumin >> shift, dumax >> shift)
    if op is AluOp.ARSH:
        return (dsmin >> shift, dsmax >> shift, *urange)
    raise AssertionError(op)


def _var_off(op: AluOp, d: Tnum, s: Tnum, shift: int, bits: int) -> Tnum:
    if op is AluOp.ADD:
        return d.add(s)
    if op is AluOp.SUB:
        return d.sub(s)
    if op is AluOp.MUL:
        return d.mul(s)
    if op is AluOp.AND:
        return d.and_(s)
    if op is AluOp.OR:
        return d.or_(s)
    if op is AluOp.XOR:
        return d.xor(s)
    if op is AluOp.LSH:
        return d.lshift(shift)
    if op is AluOp.RSH:
        return d.rshift(shift) if bits == 64 else d.subreg().rshift(shift)
    return d.arshift(shift, bits)


def alu(op: AluOp, dst: Bounds, src: Bounds, alu32: bool) -> Bounds:
    """The bounds of `dst op src` (MOV, NEG and END are handled by the caller)."""
    if not computable(op, src, alu32):
        return unknown(alu32)
    shift = src.value & (31 if alu32 else 63) if op in _SHIFTS else 0
    d32 = (dst.s32_min, dst.s32_max, dst.u32_min, dst.u32_max)
    s32_ = (src.s32_min, src.s32_max, src.u32_min, src.u32_max)
    if alu32:
        var32 = _var_off(op, dst.var_off.subreg(), src.var_off.subreg(), shift, 32).subreg()
        smin32, smax32, umin32, umax32 = _views(op, d32, s32_, var32, (S32_MIN, S32_MAX), (0, U32_MAX),
                                                shift)
        out = Bounds(var32, umin=umin32, umax=umax32, s32_min=smin32, s32_max=smax32,
                     u32_min=umin32, u32_max=umax32)
        return zext32(sync(out))
    var = _var_off(op, dst.var_off, src.var_off, shift, 64)
    d64 = (dst.smin, dst.smax, dst.umin, dst.umax)
    s64_ = (src.smin, src.smax, src.umin, src.umax)
    smin, smax, umin, umax = _views(op, d64, s64_, var, (S64_MIN, S64_MAX), (0, U64_MAX), shift)
    if op in _SHIFTS:
        # The low half of a 64-bit shift is not a 32-bit shift of the low half: leave the 32-bit views
        # to the tnum (sync derives them from var_off).
        smin32, smax32, umin32, umax32 = S32_MIN, S32_MAX, 0, U32_MAX
    else:
        smin32, smax32, umin32, umax32 = _views(op, d32, s32_, var.subreg(), (S32_MIN, S32_MAX),
                                                (0, U32_MAX), shift)
    return sync(Bounds(var, smin, smax, umin, umax, smin32, smax32, umin32, umax32))
