"""State comparison for pruning: is every behaviour of the current state one the explored state
already showed safe? (the kernel's states_equal, regsafe, stacksafe, check_ids).

bpfkit keeps no precision marks, so scalars always compare by range (the kernel's RANGE_WITHIN);
registers no later instruction reads are skipped (liveness). `exact` asks for equality instead of
inclusion (infinite-loop detection).
"""

from __future__ import annotations

from bpfkit.vm.verifier.liveness import CALLER_SAVED
from bpfkit.vm.verifier.memory import spill_size
from bpfkit.vm.verifier.precision import Precision, stack_key
from bpfkit.vm.verifier.state import EMPTY_SLOT, FP, NREGS, Byte, Reg, RegType, StackSlot, State


class IdMap:
    """A consistent renaming of ids between the old and the current state (check_ids)."""

    def __init__(self) -> None:
        self.fwd: dict[int, int] = {}
        self.back: dict[int, int] = {}
        self.fresh = -1

    def same(self, old: int, cur: int, scalar: bool) -> bool:
        if scalar:
            if not old:
                return True
            if not cur:
                cur = self.fresh  # an unlinked scalar: a new id no one else has
                self.fresh -= 1
        elif not old or not cur:
            return old == cur
        seen = self.fwd.get(old)
        if seen is None:
            if cur in self.back:
                return False
            self.fwd[old] = cur
            self.back[cur] = old
            return True
        return seen == cur


def reg_safe(old: Reg, cur: Reg, ids: IdMap, exact: bool, precise: bool = True) -> bool:
    if old.type is RegType.NOT_INIT:
        return not exact or cur.type is RegType.NOT_INIT
    if old.type is not cur.type:
        return False
    if not precise and not exact and old.type is RegType.SCALAR:
        return True  # no check ahead depends on this value
    if exact:
        return old == cur or (old.b == cur.b and _same_shape(old, cur) and ids.same(old.id, cur.id, False)
                              and ids.same(old.ref_obj_id, cur.ref_obj_id, False))
    if old.type is RegType.SCALAR:
        return cur.b.within(old.b) and ids.same(old.id, cur.id, True)
    if not _same_shape(old, cur) or not cur.b.within(old.b):
        return False
    if cur.range < old.range:
        return False
    return ids.same(old.id, cur.id, False) and ids.same(old.ref_obj_id, cur.ref_obj_id, False)


def _same_shape(old: Reg, cur: Reg) -> bool:
    return (old.off == cur.off and old.maybe_null == cur.maybe_null and old.map == cur.map
            and old.mem_size == cur.mem_size and old.ringbuf == cur.ringbuf
            and old.rdonly == cur.rdonly and old.frameno == cur.frameno and old.subprog == cur.subprog
            and old.btf_id == cur.btf_id and old.trust == cur.trust
            and (old.type not in (RegType.PACKET, RegType.PACKET_META) or old.range <= cur.range))


def _spilled_zero(slot: StackSlot) -> bool:
    sp = slot.spilled
    return sp is not None and sp.is_scalar and sp.b.is_const and sp.b.value == 0


def _slot_safe(old: StackSlot, cur: StackSlot, ids: IdMap, exact: bool, precise: bool = True) -> bool:
    """Whether every read of `cur`'s slot behaves as a read of `old`'s did (stacksafe)."""
    if exact:
        if old.kinds != cur.kinds:
            return False
        if old.spilled is None or cur.spilled is None:
            return old.spilled is cur.spilled
        return reg_safe(old.spilled, cur.spilled, ids, True)
    if old.spilled is not None:
        if cur.spilled is None or spill_size(old) != spill_size(cur):
            return False
        if not reg_safe(old.spilled, cur.spilled, ids, False, precise):
            return False
    cur_scalar = cur.spilled is not None and cur.spilled.is_scalar
    for ok, ck in zip(old.kinds, cur.kinds, strict=True):
        if ok is Byte.INVALID or ok is ck:
            continue
        if ok is Byte.MISC and (ck is Byte.ZERO or (ck is Byte.SPILL and cur_scalar)):
            continue
        if ok is Byte.ZERO and ck is Byte.SPILL and _spilled_zero(cur):
            continue
        return False
    return True


def states_equal(old: State, cur: State, live: list[int], exact: bool = False,
                 prec: Precision | None = None) -> bool:
    """Whether `cur` is covered by `old` (or, with `exact`, the same), at the same instruction."""
    if len(old.frames) != len(cur.frames):
        return False
    if len(old.refs) != len(cur.refs) or old.rcu != cur.rcu:
        return False
    ids = IdMap()
    for i, (fo, fc) in enumerate(zip(old.frames, cur.frames, strict=True)):
        if fo.callsite != fc.callsite or fo.subprog != fc.subprog or fo.callback != fc.callback:
            return False
        mask = live[i]
        oregs, cregs = fo.regs, fc.regs
        for r in range(NREGS):
            if r == FP or not mask >> r & 1:
                continue
            ro, rc = oregs[r], cregs[r]
            if ro is rc and not ro.id and not ro.ref_obj_id:
                continue  # one immutable register shared by both states (no id to map)
            if not reg_safe(ro, rc, ids, exact, prec is None or prec.reg(i, r)):
                return False
        ostack, cstack = fo.stack, fc.stack
        for index in ostack.keys() | cstack.keys():
            so, sc = ostack.get(index, EMPTY_SLOT), cstack.get(index, EMPTY_SLOT)
            if so is sc and (so.spilled is None or not (so.spilled.id or so.spilled.ref_obj_id)):
                continue
            precise = prec is None or prec.slot(stack_key(i, index))
            if not _slot_safe(so, sc, ids, exact, precise):
                return False
    for (ref_o, _), (ref_c, _) in zip(old.refs, cur.refs, strict=True):
        if not ids.same(ref_o, ref_c, False):
            return False
    return True


def frame_masks(state: State, insn: int, live_in: list[int], prog_next: dict[int, int]) -> list[int]:
    """The live-register mask of each frame of `state` when the innermost is at `insn`: a caller
    frame needs what its continuation reads (after a call r0-r5 are new; a callback's caller goes
    back to the helper call, which reads its arguments)."""
    out = []
    frames = state.frames
    for i in range(len(frames) - 1):
        callee = frames[i + 1]
        site = callee.callsite
        if callee.callback:
            out.append(live_in[site])
        else:
            out.append(live_in[prog_next[site]] & ~CALLER_SAVED)
    out.append(live_in[insn])
    return out


def widen(old: State, cur: State, prec: Precision | None = None) -> bool:
    """Forget (make unknown) every scalar of `cur`, in a register or spilled, that `old` does not
    cover (and, with `prec`, that no check so far needed precisely); True if anything changed. Used
    where a loop the runtime bounds (may_goto, a bpf_loop callback) comes round again with a changing
    counter (the kernel's widen_imprecise_scalars)."""
    if len(old.frames) != len(cur.frames):
        return False
    changed = False
    for i, (fo, fc) in enumerate(zip(old.frames, cur.frames, strict=True)):
        for r in range(NREGS):
            ro, rc = fo.regs[r], fc.regs[r]
            if (ro.is_scalar and rc.is_scalar and not rc.b.within(ro.b)
                    and (prec is None or not prec.reg(i, r))):
                fc.regs[r] = Reg(RegType.SCALAR)
                changed = True
        for index in fo.stack.keys() & fc.stack.keys():
            so, sc = fo.stack[index], fc.stack[index]
            if (so.spilled is not None and sc.spilled is not None and so.spilled.is_scalar
                    and sc.spilled.is_scalar and not sc.spilled.b.within(so.spilled.b)
                    and (prec is None or not prec.slot(stack_key(i, index)))):
                fc.stack[index] = StackSlot(sc.kinds, Reg(RegType.SCALAR))
                changed = True
    return changed
