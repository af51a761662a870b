"""What a conditional jump teaches: whether a branch is decided, and the bounds on each side.

`branch_taken` is the kernel's is_scalar_branch_taken (True: always taken, False: never, None: both
possible); `refine` narrows both operands for one outcome (regs_refine_cond_op), returning None when
no value can take that branch. Operations are the jump opcodes; the false branch of `a > b` is
refined as `a <= b`, and so on.
"""

from __future__ import annotations

from bpfkit.uapi.insn import JmpOp
from bpfkit.vm.verifier.ranges import U32_MAX, U64_MAX, Bounds, s32, sync
from bpfkit.vm.verifier.tnum import U32, U64, Tnum

NEGATE = {
    JmpOp.JEQ: JmpOp.JNE, JmpOp.JNE: JmpOp.JEQ, JmpOp.JGT: JmpOp.JLE, JmpOp.JLE: JmpOp.JGT,
    JmpOp.JGE: JmpOp.JLT, JmpOp.JLT: JmpOp.JGE, JmpOp.JSGT: JmpOp.JSLE, JmpOp.JSLE: JmpOp.JSGT,
    JmpOp.JSGE: JmpOp.JSLT, JmpOp.JSLT: JmpOp.JSGE,
}
"""The opposite condition (JSET has none: its false branch is handled as `!(a & b)`)."""

SWAP = {
    JmpOp.JEQ: JmpOp.JEQ, JmpOp.JNE: JmpOp.JNE, JmpOp.JSET: JmpOp.JSET, JmpOp.JGT: JmpOp.JLT,
    JmpOp.JLT: JmpOp.JGT, JmpOp.JGE: JmpOp.JLE, JmpOp.JLE: JmpOp.JGE, JmpOp.JSGT: JmpOp.JSLT,
    JmpOp.JSLT: JmpOp.JSGT, JmpOp.JSGE: JmpOp.JSLE, JmpOp.JSLE: JmpOp.JSGE,
}
"""`a op b` == `b SWAP[op] a`."""

View = tuple[int, int, int, int, Tnum]  # smin, smax, umin, umax, var_off of one width


def _view(b: Bounds, is32: bool) -> View:
    if is32:
        return b.s32_min, b.s32_max, b.u32_min, b.u32_max, b.var_off.subreg()
    return b.smin, b.smax, b.umin, b.umax, b.var_off


def _const(v: View) -> int | None:
    return v[4].value if v[4].mask == 0 else None


def branch_taken(op: JmpOp, a: Bounds, b: Bounds, is32: bool) -> bool | None:
    """Whether `a op b` is always (True), never (False) or sometimes (None) true."""
    x, y = _view(a, is32), _view(b, is32)
    smin1, smax1, umin1, umax1, t1 = x
    smin2, smax2, umin2, umax2, t2 = y
    if op is JmpOp.JEQ or op is JmpOp.JNE:
        eq: bool | None = None
        c1, c2 = _const(x), _const(y)
        if c1 is not None and c2 is not None:
            eq = c1 == c2
        elif (umin1 > umax2 or umax1 < umin2 or smin1 > smax2 or smax1 < smin2
              or t1.conflicts(t2)):
            eq = False
        if eq is None:
            return None
        return eq if op is JmpOp.JEQ else not eq
    if op is JmpOp.JSET:
        c2 = _const(y)
        if c2 is None:
            return None
        if t1.value & c2:
            return True
        if not (t1.value | t1.mask) & c2:
            return False
        return None
    if op is JmpOp.JGT:
        return True if umin1 > umax2 else False if umax1 <= umin2 else None
    if op is JmpOp.JGE:
        return True if umin1 >= umax2 else False if umax1 < umin2 else None
    if op is JmpOp.JLT:
        return True if umax1 < umin2 else False if umin1 >= umax2 else None
    if op is JmpOp.JLE:
        return True if umax1 <= umin2 else False if umin1 > umax2 else None
    if op is JmpOp.JSGT:
        return True if smin1 > smax2 else False if smax1 <= smin2 else None
    if op is JmpOp.JSGE:
        return True if smin1 >= smax2 else False if smax1 < smin2 else None
    if op is JmpOp.JSLT:
        return True if smax1 < smin2 else False if smin1 >= smax2 else None
    if op is JmpOp.JSLE:
        return True if smax1 <= smin2 else False if smin1 > smax2 else None
    raise AssertionError(op)


def _put(b: Bounds, v: View, is32: bool) -> Bounds:
    smin, smax, umin, umax, var = v
    if is32:
        return Bounds(b.var_off.with_subreg(var), b.smin, b.smax, b.umin, b.umax, smin, smax, umin, umax)
    return Bounds(var, smin, smax, umin, umax, b.s32_min, b.s32_max, b.u32_min, b.u32_max)


def _meet(x: View, y: View) -> View | None:
    if x[4].conflicts(y[4]):
        return None
    return (max(x[0], y[0]), min(x[1], y[1]), max(x[2], y[2]), min(x[3], y[3]), x[4].intersect(y[4]))


def _not_equal(x: View, c: int, is32: bool) -> View:
    """Shrink x's ranges by one where an edge equals the constant c."""
    smin, smax, umin, umax, var = x
    sc = s32(c) if is32 else (c - (1 << 64) if c >> 63 else c)
    if umin == c:
        umin += 1
    if umax == c:
        umax -= 1
    if smin == sc:
        smin += 1
    if smax == sc:
        smax -= 1
    return smin, smax, umin, umax, var


def refine(op: JmpOp, a: Bounds, b: Bounds, is32: bool, *, jset_false: bool = False
           ) -> tuple[Bounds, Bounds] | None:
    """Narrow `a` and `b` given that `a op b` holds (for JSET with `jset_false`: that `a & b` is 0).

    None when no pair of values satisfies it (the branch is dead).
    """
    x, y = _view(a, is32), _view(b, is32)
    top = U32_MAX if is32 else U64_MAX
    if op is JmpOp.JSET:
        c = _const(y)
        if c is None:
            return a, b
        smin, smax, umin, umax, var = x
        if jset_false:
            var = var.and_(Tnum(~c & (U32 if is32 else U64), 0))
        elif c and not c & (c - 1):  # a single bit: it is set
            var = var.or_(Tnum(c, 0))
        x = (smin, smax, umin, umax, var)
    elif op is JmpOp.JEQ:
        m = _meet(x, y)
        if m is None:
            return None
        x = y = m
    elif op is JmpOp.JNE:
        c1, c2 = _const(x), _const(y)
        if c2 is not None:
            x = _not_equal(x, c2, is32)
        elif c1 is not None:
            y = _not_equal(y, c1, is32)
    else:
        if op in (JmpOp.JGT, JmpOp.JGE, JmpOp.JSGT, JmpOp.JSGE):
            # a > b is b < a: refine with the operands swapped.
            swapped = refine(SWAP[op], b, a, is32)
            return None if swapped is None else (swapped[1], swapped[0])
        smin1, smax1, umin1, umax1, t1 = x
        smin2, smax2, umin2, umax2, t2 = y
        if op is JmpOp.JLE:
            umax1, umin2 = min(umax1, umax2), max(umin2, umin1)
        elif op is JmpOp.JLT:
            umax1, umin2 = min(umax1, umax2 - 1), max(umin2, umin1 + 1)
        elif op is JmpOp.JSLE:
            smax1, smin2 = min(smax1, smax2), max(smin2, smin1)
        elif op is JmpOp.JSLT:
            smax1, smin2 = min(smax1, smax2 - 1), max(smin2, smin1 + 1)
        x = (smin1, smax1, umin1, umax1, t1)
        y = (smin2, smax2, umin2, umax2, t2)
        if umax1 < 0 or umin2 > top:
            return None
    na, nb = sync(_put(a, x, is32)), sync(_put(b, y, is32))
    if na.is_empty() or nb.is_empty():
        return None
    return na, nb
