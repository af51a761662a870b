"""Conditional jumps: decide or split, and refine each side (the kernel's check_cond_jmp_op).

Scalars compared with scalars get their bounds narrowed on both sides (and so do their linked copies);
a pointer that may be NULL compared with 0 becomes NULL on one side and a valid pointer on the other
(with every pointer from the same lookup); a packet pointer compared with the packet end learns how
many bytes are safe (find_good_pkt_pointers).
"""

from __future__ import annotations

from bpfkit._records import replace
from bpfkit.uapi.insn import InsnClass, JmpOp
from bpfkit.vm.verifier.alu import read_reg
from bpfkit.vm.verifier.cfg import Op, is_x, jmp_op
from bpfkit.vm.verifier.env import MAX_PACKET_OFF
from bpfkit.vm.verifier.ranges import Bounds
from bpfkit.vm.verifier.refine import NEGATE, branch_taken, refine
from bpfkit.vm.verifier.state import Reg, RegType, State, const, pointer

NOT_NULL_TYPES = frozenset({RegType.MAP_VALUE, RegType.MEM})
"""Pointers that are never NULL unless marked maybe-null (reg_not_null)."""

Outcome = tuple[bool, State]
"""(taken, state) of one feasible side of a branch."""


def _with_linked(st: State, reg: Reg, b: Bounds) -> None:
    """Give every scalar sharing `reg`'s id the bounds `b` (sync_linked_regs)."""
    if not reg.id:
        return
    rid = reg.id

    def update(r: Reg) -> Reg:
        if r.type is RegType.SCALAR and r.id == rid:
            return replace(r, b=b)
        return r

    st.map_regs(update)


def _null_check(st: State, reg: Reg, is_null: bool) -> None:
    """Mark every pointer from the same lookup/reservation as NULL or as valid."""
    rid = reg.id

    def update(r: Reg) -> Reg:
        if not (r.maybe_null and r.id == rid):
            return r
        if is_null:
            return const(0)
        if r.type is RegType.MAP_VALUE and r.map is not None and r.map.inner is not None:
            # A lookup in a map of maps gives one of the inner maps (mark_ptr_or_null_reg).
            return pointer(RegType.MAP_PTR, map=r.map.inner)
        return replace(r, maybe_null=False, id=0 if not r.ref_obj_id else r.id)

    st.map_regs(update)
    if is_null and reg.ref_obj_id:
        # A NULL reservation holds nothing to release.
        st.refs = tuple(ref for ref in st.refs if ref[0] != reg.ref_obj_id)


def _good_packet(st: State, reg: Reg, right_open: bool) -> None:
    """`reg` (a packet pointer) is known to be at most the end: bytes [0, reg.off) from its base are
    in the packet (one more if the comparison was strict)."""
    if reg.off < 0 or (reg.off == 0 and right_open):
        return
    if reg.b.umax > MAX_PACKET_OFF or reg.b.umax + reg.off > MAX_PACKET_OFF:
        return
    new_range = reg.off + (1 if right_open else 0)
    kind, rid = reg.type, reg.id

    def update(r: Reg) -> Reg:
        if r.type is kind and r.id == rid and r.range < new_range:
            return replace(r, range=new_range)
        return r

    st.map_regs(update)


_END_OF = {RegType.PACKET: RegType.PACKET_END, RegType.PACKET_META: RegType.PACKET}


def _packet_compare(op: JmpOp, dst: Reg, src: Reg, taken: State, fall: State) -> None:
    """Learn packet ranges from `dst op src` where one side is a packet (or meta) pointer and the other
    its end (data_end, or data for meta)."""
    if _END_OF.get(dst.type) is src.type:
        ptr, ptr_left = dst, True
    elif _END_OF.get(src.type) is dst.type:
        ptr, ptr_left = src, False
    else:
        return
    if not ptr_left:  # end op ptr  ==  ptr SWAP(op) end
        op = {JmpOp.JGT: JmpOp.JLT, JmpOp.JLT: JmpOp.JGT, JmpOp.JGE: JmpOp.JLE,
              JmpOp.JLE: JmpOp.JGE}.get(op, op)
    # Now the test is `ptr op end`; find the side where ptr <= end (or ptr < end).
    if op is JmpOp.JGT:  # ptr > end: the fall-through has ptr <= end
        _good_packet(fall, ptr, False)
    elif op is JmpOp.JGE:  # ptr >= end: the fall-through has ptr < end
        _good_packet(fall, ptr, True)
    elif op is JmpOp.JLT:  # ptr < end: taken
        _good_packet(taken, ptr, True)
    elif op is JmpOp.JLE:  # ptr <= end: taken
        _good_packet(taken, ptr, False)


def check_cond_jump(st: State, op: Op) -> tuple[State | None, State | None, list[int]]:
    """(state if taken, state if not taken, registers whose values decided it); None for a side no
    execution can reach. The caller's `st` is reused for one of them."""
    insn = op.insn
    jop = jmp_op(insn)
    is32 = insn.cls is InsnClass.JMP32
    dst = read_reg(st, insn.dst)
    if is_x(insn):
        src = read_reg(st, insn.src)
        src_regno: int | None = insn.src
    else:
        src = const(insn.imm & 0xFFFFFFFF if is32 else insn.imm)
        src_regno = None
    if dst.is_scalar and src.is_scalar:
        taken_st, fall_st = _scalar_branch(st, jop, dst, src, insn.dst, src_regno, is32)
        used = []
        if taken_st is None or fall_st is None:  # the values decided the branch
            used = [insn.dst] if src_regno is None else [insn.dst, src_regno]
        return taken_st, fall_st, used
    # A pointer that may be NULL, compared with 0.
    zero = src.is_scalar and src.b.is_const and src.b.value == 0
    if (dst.maybe_null and zero and not is_x(insn) and not is32
            and jop in (JmpOp.JEQ, JmpOp.JNE)):
        other = st.copy()
        null_side, valid_side = (st, other) if jop is JmpOp.JEQ else (other, st)
        _null_check(null_side, dst, True)
        _null_check(valid_side, dst, False)
        if jop is JmpOp.JEQ:
            return null_side, valid_side, []
        return valid_side, null_side, []
    if (dst.type in NOT_NULL_TYPES and not dst.maybe_null and zero and not is32
            and jop in (JmpOp.JEQ, JmpOp.JNE)):
        return (None, st, []) if jop is JmpOp.JEQ else (st, None, [])
    taken, fall = st, st.copy()
    if not is32 and dst.is_pointer and src.is_pointer:
        _packet_compare(jop, dst, src, taken, fall)
    return taken, fall, []


def _scalar_branch(st: State, jop: JmpOp, dst: Reg, src: Reg, dst_regno: int, src_regno: int | None,
                   is32: bool) -> tuple[State | None, State | None]:
    decided = branch_taken(jop, dst.b, src.b, is32)
    if decided is True:
        return st, None
    if decided is False:
        return None, st
    taken_b = refine(jop, dst.b, src.b, is32)
    if jop is JmpOp.JSET:
        fall_b = refine(jop, dst.b, src.b, is32, jset_false=True)
    else:
        fall_b = refine(NEGATE[jop], dst.b, src.b, is32)
    out: list[State | None] = []
    for i, nb in enumerate((taken_b, fall_b)):
        if nb is None:
            out.append(None)
            continue
        side = st if i == 1 or fall_b is None else st.copy()
        side.regs[dst_regno] = replace(dst, b=nb[0])
        _with_linked(side, dst, nb[0])
        if src_regno is not None:
            side.regs[src_regno] = replace(side.regs[src_regno], b=nb[1])
            _with_linked(side, src, nb[1])
        out.append(side)
    return out[0], out[1]

