"""Tristate numbers: what the verifier knows about the bits of a 64-bit value.

A `Tnum` is a pair (value, mask): a bit set in `mask` is unknown, otherwise the bit equals that bit of
`value` (a bit is never set in both). The operations over-approximate the machine operations: every
concrete result of `op(x, y)` for x in `a`, y in `b` is in `op(a, b)`. The arithmetic follows the
published tristate-number analysis the kernel uses (kernel/bpf/tnum.c; Vishwanathan et al., "Sound,
Precise, and Fast Abstract Interpretation with Tristate Numbers", CGO 2022).

`Tnum` is a NamedTuple rather than a dataclass: it is the verifier's most created object and a tuple is
several times cheaper to build.
"""

from __future__ import annotations

from typing import NamedTuple

U64 = 0xFFFFFFFFFFFFFFFF
U32 = 0xFFFFFFFF


class Tnum(NamedTuple):
    """A tristate number: bits in `mask` are unknown, the others are those of `value`."""

    value: int
    mask: int

    # -- construction -----------------------------------------------------------------------------
    @staticmethod
    def const(value: int) -> Tnum:
        return Tnum(value & U64, 0)

    @staticmethod
    def range(lo: int, hi: int) -> Tnum:
        """The smallest tnum holding every value of the unsigned range [lo, hi]."""
        lo &= U64
        hi &= U64
        chi = lo ^ hi
        bits = chi.bit_length()
        if bits > 63:
            return UNKNOWN
        delta = (1 << bits) - 1
        return Tnum(lo & ~delta & U64, delta)

    # -- queries ----------------------------------------------------------------------------------
    @property
    def is_const(self) -> bool:
        return self.mask == 0

    @property
    def is_unknown(self) -> bool:
        return self.mask == U64

    def contains(self, other: Tnum) -> bool:
        """True if every value of `other` is a value of `self` (the kernel's tnum_in)."""
        if other.mask & ~self.mask:
            return False
        return (other.value & ~self.mask) == self.value

    def contains_value(self, value: int) -> bool:
        return (value & U64 & ~self.mask) == self.value

    def conflicts(self, other: Tnum) -> bool:
        """True if no value is in both (a known bit differs)."""
        return bool((self.value ^ other.value) & ~(self.mask | other.mask))

    def is_aligned(self, size: int) -> bool:
        """Every value is a multiple of `size` (a power of two)."""
        return not ((self.value | self.mask) & (size - 1))

    @property
    def umin(self) -> int:
        return self.value

    @property
    def umax(self) -> int:
        return self.value | self.mask

    # -- shifts -----------------------------------------------------------------------------------
    def lshift(self, shift: int) -> Tnum:
        return Tnum((self.value << shift) & U64, (self.mask << shift) & U64)

    def rshift(self, shift: int) -> Tnum:
        return Tnum(self.value >> shift, self.mask >> shift)

    def arshift(self, shift: int, bits: int = 64) -> Tnum:
        """Arithmetic right shift of the low `bits` (32 or 64) bits; the result is `bits` wide."""
        full = (1 << bits) - 1
        value = _sext(self.value & full, bits) >> shift
        mask = _sext(self.mask & full, bits) >> shift
        return Tnum(value & full, mask & full)

    # -- arithmetic -------------------------------------------------------------------------------
    def add(self, other: Tnum) -> Tnum:
        sm = self.mask + other.mask
        sv = self.value + other.value
        sigma = sm + sv
        chi = sigma ^ sv
        mu = (chi | self.mask | other.mask) & U64
        return Tnum(sv & ~mu & U64, mu)

    def sub(self, other: Tnum) -> Tnum:
        dv = self.value - other.value
        alpha = dv + self.mask
        beta = dv - other.mask
        chi = alpha ^ beta
        mu = (chi | self.mask | other.mask) & U64
        return Tnum(dv & ~mu & U64, mu)

    def and_(self, other: Tnum) -> Tnum:
        alpha = self.value | self.mask
        beta = other.value | other.mask
        value = self.value & other.value
        return Tnum(value, alpha & beta & ~value)

    def or_(self, other: Tnum) -> Tnum:
        value = self.value | other.value
        mu = self.mask | other.mask
        return Tnum(value, mu & ~value)

    def xor(self, other: Tnum) -> Tnum:
        value = self.value ^ other.value
        mu = self.mask | other.mask
        return Tnum(value & ~mu, mu)

    def mul(self, other: Tnum) -> Tnum:
        """Multiplication: the product of the known parts plus, for each bit of `self`, the partial
        product it may contribute (all of `other` when the bit is unknown)."""
        acc_value = (self.value * other.value) & U64
        acc_mask = ZERO
        a, b = self, other
        while a.value or a.mask:
            if a.value & 1:
                acc_mask = acc_mask.add(Tnum(0, b.mask))
            elif a.mask & 1:
                acc_mask = acc_mask.add(Tnum(0, (b.value | b.mask) & U64))
            a = a.rshift(1)
            b = b.lshift(1)
        return Tnum(acc_value, 0).add(acc_mask)

    def neg(self) -> Tnum:
        return ZERO.sub(self)

    # -- lattice ----------------------------------------------------------------------------------
    def intersect(self, other: Tnum) -> Tnum:
        """Values in both (the caller checks `conflicts` first when the meet may be empty)."""
        value = self.value | other.value
        mu = self.mask & other.mask
        return Tnum(value & ~mu, mu)

    def union(self, other: Tnum) -> Tnum:
        """The smallest tnum holding the values of both."""
        mu = self.mask | other.mask | (self.value ^ other.value)
        return Tnum(self.value & ~mu & U64, mu & U64)

    # -- sub-registers ----------------------------------------------------------------------------
    def cast(self, size: int) -> Tnum:
        """Truncate to the low `size` bytes (zero-extended)."""
        keep = (1 << (8 * size)) - 1
        return Tnum(self.value & keep, self.mask & keep)

    def subreg(self) -> Tnum:
        return Tnum(self.value & U32, self.mask & U32)

    def clear_subreg(self) -> Tnum:
        return Tnum(self.value & ~U32 & U64, self.mask & ~U32 & U64)

    def with_subreg(self, sub: Tnum) -> Tnum:
        """The high 32 bits of `self` with the low 32 bits of `sub`."""
        return self.clear_subreg().or_(sub.subreg())

    def sext(self, size: int) -> Tnum:
        """Sign-extend from the low `size` bytes, as MOVSX and sign-extending loads do."""
        bits = 8 * size
        keep = (1 << bits) - 1
        value, mask = self.value & keep, self.mask & keep
        sign = 1 << (bits - 1)
        if mask & sign:  # unknown sign bit: every higher bit is unknown
            return Tnum(value & (sign - 1), (mask | (U64 & ~keep)) & U64)
        if value & sign:
            return Tnum((value | (U64 & ~keep)) & U64, mask)
        return Tnum(value, mask)

    def __str__(self) -> str:
        if self.mask == 0:
            return f"{self.value:#x}"
        return f"({self.value:#x}; {self.mask:#x})"


def _sext(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


ZERO = Tnum(0, 0)
UNKNOWN = Tnum(0, U64)
UNKNOWN32 = Tnum(0, U32)
