"""Bounds: `sync`, the ALU transfer functions and the branch refinements contain every concrete value
(the VM's arithmetic, `bpfkit.vm.alu`, is the oracle), and keep the ranges the kernel keeps."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from bpfkit.uapi.insn import AluOp, JmpOp
from bpfkit.vm import alu as concrete
from bpfkit.vm.verifier.arith import alu
from bpfkit.vm.verifier.ranges import S64_MIN, Bounds, sext, sync, truncate, zext32
from bpfkit.vm.verifier.refine import NEGATE, branch_taken, refine
from bpfkit.vm.verifier.tnum import U64

EDGES = [0, 1, 2, 5, 7, 8, 63, 64, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, (1 << 63) - 1,
         1 << 63, U64, U64 - 7]
value = st.one_of(st.sampled_from(EDGES), st.integers(0, U64), st.integers(0, 1000),
                  st.integers(U64 - 1000, U64))


@st.composite
def abstract(draw: st.DrawFn) -> tuple[Bounds, list[int]]:
    """Bounds built as the join of a few constants (so they hold them), with those constants."""
    members = draw(st.lists(value, min_size=1, max_size=4))
    b = Bounds.const(members[0])
    for m in members[1:]:
        b = b.join(Bounds.const(m))
    return sync(b), members


EXAMPLES = int(os.environ.get("BPFKIT_EXAMPLES", "400"))
"""Examples per property (raise it for a deeper search: BPFKIT_EXAMPLES=50000)."""

OPS = [AluOp.ADD, AluOp.SUB, AluOp.MUL, AluOp.AND, AluOp.OR, AluOp.XOR, AluOp.LSH, AluOp.RSH,
       AluOp.ARSH, AluOp.DIV, AluOp.MOD]
JUMPS = [JmpOp.JEQ, JmpOp.JNE, JmpOp.JGT, JmpOp.JGE, JmpOp.JLT, JmpOp.JLE, JmpOp.JSGT, JmpOp.JSGE,
         JmpOp.JSLT, JmpOp.JSLE, JmpOp.JSET]


@given(abstract())
def test_sync_keeps_members(a: tuple[Bounds, list[int]]) -> None:
    b, members = a
    assert not b.is_empty()
    for m in members:
        assert b.contains(m)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.sampled_from(OPS), abstract(), abstract(), st.booleans())
def test_alu_is_sound(op: AluOp, a: tuple[Bounds, list[int]], b: tuple[Bounds, list[int]],
                      alu32: bool) -> None:
    (da, xs), (db, ys) = a, b
    out = alu(op, da, db, alu32)
    for x in xs:
        for y in ys:
            if op in (AluOp.LSH, AluOp.RSH, AluOp.ARSH):
                y &= 31 if alu32 else 63
            result = concrete.alu(op, 0, x, y, not alu32)
            assert out.contains(result), (op, x, y, result, out)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.sampled_from(JUMPS), abstract(), abstract(), st.booleans())
def test_branches_are_sound(op: JmpOp, a: tuple[Bounds, list[int]], b: tuple[Bounds, list[int]],
                            is32: bool) -> None:
    (da, xs), (db, ys) = a, b
    decided = branch_taken(op, da, db, is32)
    taken = refine(op, da, db, is32)
    if op is JmpOp.JSET:
        fall = refine(op, da, db, is32, jset_false=True)
    else:
        fall = refine(NEGATE[op], da, db, is32)
    for x in xs:
        for y in ys:
            holds = concrete.condition(op, x, y, not is32)
            if decided is not None:
                assert holds == decided, (op, x, y)
            side = taken if holds else fall
            assert side is not None, (op, x, y, "a reachable side was called dead")
            assert side[0].contains(x) and side[1].contains(y), (op, x, y, side)


def test_kernel_ranges_survive() -> None:
    x = Bounds.urange(0, 7)
    assert alu(AluOp.LSH, x, Bounds.const(3), False).umax == 56
    assert alu(AluOp.ADD, x, Bounds.const(8), False).umin == 8
    assert alu(AluOp.AND, Bounds(), Bounds.const(0xFF), False).umax == 0xFF
    assert alu(AluOp.DIV, x, Bounds.const(2), False).is_unknown  # the kernel keeps no range
    assert alu(AluOp.LSH, x, Bounds.urange(0, 2), False).is_unknown  # shift by a non-constant
    assert alu(AluOp.ADD, Bounds(), Bounds.const(1), False).smin == S64_MIN
    assert zext32(Bounds()).umax == 0xFFFFFFFF


def test_refine_learns_bounds() -> None:
    unknown = Bounds()
    taken = refine(JmpOp.JGT, unknown, Bounds.const(7), False)
    fall = refine(JmpOp.JLE, unknown, Bounds.const(7), False)
    assert taken is not None and taken[0].umin == 8
    assert fall is not None and fall[0].umax == 7 and fall[0].smin == 0
    assert refine(JmpOp.JEQ, Bounds.const(3), Bounds.const(4), False) is None
    assert branch_taken(JmpOp.JGT, Bounds.urange(10, 20), Bounds.const(5), False) is True
    assert branch_taken(JmpOp.JSET, Bounds.const(4), Bounds.const(3), False) is False
    jmp32 = refine(JmpOp.JLE, unknown, Bounds.const(7), True)
    assert jmp32 is not None and jmp32[0].u32_max == 7 and jmp32[0].umax > 0xFFFFFFFF  # high half unknown


@given(abstract(), st.sampled_from([1, 2, 4]))
def test_width_changes_are_sound(a: tuple[Bounds, list[int]], size: int) -> None:
    b, xs = a
    bits = 8 * size
    for x in xs:
        assert truncate(b, size).contains(x & ((1 << bits) - 1))
        assert sext(b, size).contains(concrete.sign_extend(x, bits))
        assert zext32(b).contains(x & 0xFFFFFFFF)
