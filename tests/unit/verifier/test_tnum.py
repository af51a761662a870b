"""Tristate numbers: every operation contains every concrete result (soundness), and the constructors
and queries mean what they say."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bpfkit.vm.verifier.tnum import U64, UNKNOWN, Tnum

EDGES = [0, 1, 2, 3, 7, 8, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, (1 << 63) - 1, 1 << 63, U64,
         U64 - 1]
values = st.one_of(st.sampled_from(EDGES), st.integers(0, U64), st.integers(0, 300))


@st.composite
def tnum_with_member(draw: st.DrawFn) -> tuple[Tnum, int]:
    """A tnum and one value it contains."""
    x = draw(values)
    mask = draw(st.one_of(st.just(0), st.integers(0, U64), st.sampled_from([0xFF, 0xFFFFFFFF, U64, 7])))
    t = Tnum(x & ~mask & U64, mask)
    member = (t.value | (draw(values) & mask)) & U64
    return t, member


def test_const_and_unknown() -> None:
    assert Tnum.const(5) == Tnum(5, 0) and Tnum.const(5).is_const
    assert Tnum.const(-1) == Tnum(U64, 0)
    assert UNKNOWN.is_unknown and UNKNOWN.contains(Tnum.const(12345))
    assert str(Tnum(0, 0xFF)) == "(0x0; 0xff)" and str(Tnum.const(16)) == "0x10"


@given(values, values)
def test_range_holds_its_range(a: int, b: int) -> None:
    lo, hi = min(a, b), max(a, b)
    t = Tnum.range(lo, hi)
    for v in (lo, hi, (lo + hi) // 2):
        assert t.contains_value(v)


@given(tnum_with_member(), tnum_with_member())
def test_binary_ops_are_sound(a: tuple[Tnum, int], b: tuple[Tnum, int]) -> None:
    (ta, x), (tb, y) = a, b
    assert ta.add(tb).contains_value(x + y)
    assert ta.sub(tb).contains_value(x - y)
    assert ta.mul(tb).contains_value(x * y)
    assert ta.and_(tb).contains_value(x & y)
    assert ta.or_(tb).contains_value(x | y)
    assert ta.xor(tb).contains_value(x ^ y)
    assert ta.union(tb).contains_value(x) and ta.union(tb).contains_value(y)
    if not ta.conflicts(tb) and ta.contains_value(y):
        assert ta.intersect(tb).contains_value(y)


@given(tnum_with_member(), st.integers(0, 63))
def test_shifts_are_sound(a: tuple[Tnum, int], shift: int) -> None:
    t, x = a
    assert t.lshift(shift).contains_value(x << shift)
    assert t.rshift(shift).contains_value(x >> shift)
    signed = x - (1 << 64) if x >> 63 else x
    assert t.arshift(shift).contains_value(signed >> shift)
    low = x & 0xFFFFFFFF
    slow = low - (1 << 32) if low >> 31 else low
    assert t.arshift(shift % 32, 32).contains_value((slow >> (shift % 32)) & 0xFFFFFFFF)


@given(tnum_with_member(), st.sampled_from([1, 2, 4]))
def test_casts_are_sound(a: tuple[Tnum, int], size: int) -> None:
    t, x = a
    bits = 8 * size
    assert t.cast(size).contains_value(x & ((1 << bits) - 1))
    low = x & ((1 << bits) - 1)
    sx = (low - (1 << bits) if low >> (bits - 1) else low) & U64
    assert t.sext(size).contains_value(sx)
    assert t.subreg().contains_value(x & 0xFFFFFFFF)
    assert t.clear_subreg().contains_value(x & ~0xFFFFFFFF & U64)


def test_contains_is_inclusion() -> None:
    assert Tnum(0, 0xF).contains(Tnum(4, 3))
    assert not Tnum(0, 0x3).contains(Tnum(4, 0))
    assert Tnum.const(4).conflicts(Tnum.const(5))
    assert not Tnum(4, 1).conflicts(Tnum.const(5))
    assert Tnum(8, 0).is_aligned(8) and not Tnum(8, 4).is_aligned(8)
