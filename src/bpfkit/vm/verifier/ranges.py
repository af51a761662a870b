"""Scalar bounds: a tnum plus signed and unsigned, 64- and 32-bit ranges, kept consistent.

`Bounds` is the value part of the kernel's `struct bpf_reg_state` (var_off, smin/smax, umin/umax,
s32_min/s32_max, u32_min/u32_max). Every function here over-approximates: a concrete value that
satisfied the inputs satisfies the output. `sync` is the kernel's reg_bounds_sync: each view tightens
the others (kernel/bpf/verifier.c __update_reg_bounds, __reg_deduce_bounds, __reg_bound_offset).
The ALU transfer functions follow adjust_scalar_min_max_vals: a range survives an operation only
where the kernel keeps it, so bpfkit never knows more than the kernel does.
"""

from __future__ import annotations

from functools import lru_cache

from bpfkit._records import record
from bpfkit.vm.verifier.tnum import U32, U64, UNKNOWN, Tnum

S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1
U32_MAX, U64_MAX = U32, U64


def s64(x: int) -> int:
    x &= U64
    return x - (1 << 64) if x >> 63 else x


def s32(x: int) -> int:
    x &= U32
    return x - (1 << 32) if x >> 31 else x


def u64(x: int) -> int:
    return x & U64


def u32(x: int) -> int:
    return x & U32


@record
class Bounds:
    """What is known about a 64-bit value (a scalar, or the variable offset of a pointer)."""

    var_off: Tnum = UNKNOWN
    smin: int = S64_MIN
    smax: int = S64_MAX
    umin: int = 0
    umax: int = U64_MAX
    s32_min: int = S32_MIN
    s32_max: int = S32_MAX
    u32_min: int = 0
    u32_max: int = U32_MAX

    @staticmethod
    def const(value: int) -> Bounds:
        v = value & U64
        lo = v & U32
        return Bounds(Tnum(v, 0), s64(v), s64(v), v, v, s32(lo), s32(lo), lo, lo)

    @staticmethod
    def urange(lo: int, hi: int) -> Bounds:
        """A value known only to lie in the unsigned range [lo, hi]."""
        return sync(Bounds(Tnum.range(lo, hi), umin=lo, umax=hi))

    @property
    def is_const(self) -> bool:
        return self.var_off.mask == 0

    @property
    def value(self) -> int:
        """The value (meaningful when `is_const`)."""
        return self.var_off.value

    @property
    def is_const32(self) -> bool:
        return self.var_off.mask & U32 == 0

    @property
    def is_unknown(self) -> bool:
        return self == UNBOUNDED

    def is_empty(self) -> bool:
        """No value satisfies every view (an impossible state: the branch that made it is dead)."""
        if self.smin > self.smax or self.umin > self.umax:
            return True
        if self.s32_min > self.s32_max or self.u32_min > self.u32_max:
            return True
        vo = self.var_off
        return vo.value > self.umax or (vo.value | vo.mask) < self.umin

    def contains(self, value: int) -> bool:
        """Whether the concrete 64-bit `value` satisfies every view."""
        v = value & U64
        lo = v & U32
        return (self.umin <= v <= self.umax and self.smin <= s64(v) <= self.smax
                and self.u32_min <= lo <= self.u32_max and self.s32_min <= s32(lo) <= self.s32_max
                and self.var_off.contains_value(v))

    def join(self, other: Bounds) -> Bounds:
        """The smallest bounds holding the values of both."""
        return Bounds(self.var_off.union(other.var_off), min(self.smin, other.smin),
                      max(self.smax, other.smax), min(self.umin, other.umin), max(self.umax, other.umax),
                      min(self.s32_min, other.s32_min), max(self.s32_max, other.s32_max),
                      min(self.u32_min, other.u32_min), max(self.u32_max, other.u32_max))

    def within(self, old: Bounds) -> bool:
        """Every value of `self` is a value of `old` (the pruning test of the kernel's range_within
        plus tnum_in)."""
        return (old.umin <= self.umin and self.umax <= old.umax and old.smin <= self.smin
                and self.smax <= old.smax and old.u32_min <= self.u32_min
                and self.u32_max <= old.u32_max and old.s32_min <= self.s32_min
                and self.s32_max <= old.s32_max and old.var_off.contains(self.var_off))

    def describe(self) -> str:
        """Kernel log style: the constant, or the non-trivial views."""
        if self.is_const:
            return str(s64(self.value))
        parts = []
        if self.smin != S64_MIN:
            parts.append(f"smin={self.smin}")
        if self.smax != S64_MAX:
            parts.append(f"smax={self.smax}")
        if self.umin:
            parts.append(f"umin={self.umin}")
        if self.umax != U64_MAX:
            parts.append(f"umax={self.umax}")
        if self.s32_min != S32_MIN and s32(self.s32_min) != self.smin:
            parts.append(f"smin32={self.s32_min}")
        if self.s32_max != S32_MAX and self.s32_max != self.smax:
            parts.append(f"smax32={self.s32_max}")
        if self.u32_min and self.u32_min != self.umin:
            parts.append(f"umin32={self.u32_min}")
        if self.u32_max != U32_MAX and self.u32_max != self.umax:
            parts.append(f"umax32={self.u32_max}")
        if not self.var_off.is_unknown:
            parts.append(f"var_off={self.var_off}")
        return ",".join(parts)


UNBOUNDED = Bounds()
ZERO = Bounds.const(0)


# -- keeping the views consistent -----------------------------------------------------------------
def _update(b: Bounds) -> Bounds:
    """Tighten the ranges with what the tnum says (__update_reg_bounds)."""
    v, m = b.var_off
    v32, m32 = v & U32, m & U32
    return Bounds(
        b.var_off,
        max(b.smin, s64(v | (m & (1 << 63)))), min(b.smax, s64(v | (m & S64_MAX))),
        max(b.umin, v), min(b.umax, v | m),
        max(b.s32_min, s32(v32 | (m32 & (1 << 31)))), min(b.s32_max, s32(v32 | (m32 & S32_MAX))),
        max(b.u32_min, v32), min(b.u32_max, v32 | m32),
    )


def _deduce(b: Bounds) -> Bounds:
    """Tighten each range with the others (__reg_deduce_bounds)."""
    smin, smax, umin, umax = b.smin, b.smax, b.umin, b.umax
    s32_min, s32_max, u32_min, u32_max = b.s32_min, b.s32_max, b.u32_min, b.u32_max
    # 32-bit views from the 64-bit ones, when the upper halves agree over the whole range.
    if umin >> 32 == umax >> 32:
        u32_min, u32_max = max(u32_min, umin & U32), min(u32_max, umax & U32)
        if s32(umin) <= s32(umax):
            s32_min, s32_max = max(s32_min, s32(umin)), min(s32_max, s32(umax))
    if smin >> 32 == smax >> 32:
        if u32(smin) <= u32(smax):
            u32_min, u32_max = max(u32_min, u32(smin)), min(u32_max, u32(smax))
        if s32(smin) <= s32(smax):
            s32_min, s32_max = max(s32_min, s32(smin)), min(s32_max, s32(smax))
    # 32-bit signed <-> unsigned, when the range does not cross the sign boundary.
    if s32(u32_min) <= s32(u32_max):
        s32_min, s32_max = max(s32_min, s32(u32_min)), min(s32_max, s32(u32_max))
    if u32(s32_min) <= u32(s32_max):
        u32_min, u32_max = max(u32_min, u32(s32_min)), min(u32_max, u32(s32_max))
    # 64-bit signed <-> unsigned.
    if s64(umin) <= s64(umax):
        smin, smax = max(smin, s64(umin)), min(smax, s64(umax))
    if u64(smin) <= u64(smax):
        umin, umax = max(umin, u64(smin)), min(umax, u64(smax))
    # 64-bit views from the 32-bit ones: the low half of every value lies in [u32_min, u32_max].
    if u32_min <= u32_max:
        new_umin = (umin & ~U32 & U64) | u32_min
        new_umax = (umax & ~U32 & U64) | u32_max
        umin, umax = max(umin, new_umin), min(umax, new_umax)
        new_smin = s64((u64(smin) & ~U32) | u32_min)
        new_smax = s64((u64(smax) & ~U32) | u32_max)
        if smin >> 32 == new_smin >> 32:
            smin = max(smin, new_smin)
        if smax >> 32 == new_smax >> 32:
            smax = min(smax, new_smax)
    if S32_MIN <= smin and smax <= S32_MAX and s32_min <= s32_max:
        smin, smax = max(smin, s32_min), min(smax, s32_max)
    return Bounds(b.var_off, smin, smax, umin, umax, s32_min, s32_max, u32_min, u32_max)


def _bound_offset(b: Bounds) -> Bounds:
    """Tighten the tnum with the unsigned ranges (__reg_bound_offset)."""
    if b.umin > b.umax or b.u32_min > b.u32_max:
        return b
    var64 = b.var_off.intersect(Tnum.range(b.umin, b.umax))
    var32 = var64.subreg().intersect(Tnum.range(b.u32_min, b.u32_max))
    return Bounds(var64.clear_subreg().or_(var32), b.smin, b.smax, b.umin, b.umax,
                  b.s32_min, b.s32_max, b.u32_min, b.u32_max)


@lru_cache(maxsize=1 << 14)
def sync(b: Bounds) -> Bounds:
    """Make the five views agree (reg_bounds_sync). Pure, and called with the same few bounds over
    and over (constants, loop counters), so results are cached."""
    b = _update(b)
    b = _deduce(b)
    b = _deduce(b)
    b = _bound_offset(b)
    return _update(b)


# -- width changes --------------------------------------------------------------------------------
def zext32(b: Bounds) -> Bounds:
    """The 64-bit value after a 32-bit operation: the low half, zero-extended (zext_32_to_64)."""
    if b.u32_min > b.u32_max:
        return b
    return sync(Bounds(b.var_off.subreg(), b.u32_min, b.u32_max, b.u32_min, b.u32_max,
                       b.s32_min, b.s32_max, b.u32_min, b.u32_max))


def truncate(b: Bounds, size: int) -> Bounds:
    """The value zero-extended from its low `size` bytes (coerce_reg_to_size)."""
    if size >= 8:
        return b
    top = (1 << (8 * size)) - 1
    if b.umax <= top and b.umin <= b.umax:
        return b
    var_off = b.var_off.cast(size)
    if b.umin >> (8 * size) == b.umax >> (8 * size):  # no wrap-around inside the range
        lo, hi = b.umin & top, b.umax & top
    else:
        lo, hi = 0, top
    return sync(Bounds(var_off, lo, hi, lo, hi, *_s32_of(lo, hi), lo, hi))


def _s32_of(lo: int, hi: int) -> tuple[int, int]:
    """The s32 range of a value in the unsigned range [lo, hi] (hi <= U32_MAX)."""
    if hi <= S32_MAX:
        return lo, hi
    return S32_MIN, S32_MAX


def sext(b: Bounds, size: int) -> Bounds:
    """The value sign-extended from its low `size` bytes (MOVSX, sign-extending loads)."""
    bits = 8 * size
    var_off = b.var_off.sext(size)
    lo_signed_min, lo_signed_max = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    top = (1 << bits) - 1
    if b.umin >> bits == b.umax >> bits:
        lo, hi = b.umin & top, b.umax & top
        slo = lo - (1 << bits) if lo >> (bits - 1) else lo
        shi = hi - (1 << bits) if hi >> (bits - 1) else hi
        if slo <= shi:
            lo_signed_min, lo_signed_max = slo, shi
    return sync(Bounds(var_off, lo_signed_min, lo_signed_max, 0, U64_MAX,
                       max(S32_MIN, lo_signed_min), min(S32_MAX, lo_signed_max), 0, U32_MAX))


def sext32(b: Bounds, size: int) -> Bounds:
    """A 32-bit MOVSX: the low `size` bytes sign-extended into 32 bits, then zero-extended to 64."""
    return zext32(sext(b, size))


def unknown(alu32: bool = False) -> Bounds:
    """An unknown value; after a 32-bit operation, an unknown zero-extended 32-bit value."""
    if alu32:
        return UNKNOWN_U32
    return UNBOUNDED


UNKNOWN_U32 = Bounds(Tnum(0, U32), 0, U32_MAX, 0, U32_MAX, S32_MIN, S32_MAX, 0, U32_MAX)


def of_size(size: int) -> Bounds:
    """An unknown value zero-extended from `size` bytes (a load of that size)."""
    if size >= 8:
        return UNBOUNDED
    top = (1 << (8 * size)) - 1
    return sync(Bounds(Tnum(0, top), 0, top, 0, top, *_s32_of(0, top), 0, top))
