"""Precision tracking: which scalars a verified state's safety depended on (the kernel's precision
marks, mark_chain_precision / backtrack_insn).

A scalar is *precise* in a checkpoint when some check below it (a decided branch, an offset added to a
pointer, a helper's size argument, a checked return value) used its exact range. Only precise scalars
have to be covered when pruning; the others may differ freely, which is what lets loops with
counters the checks never look at converge. When a check uses registers, their dependencies are
traced backwards through the instructions the path executed since each checkpoint (registers through
ALU operations, spilled values through the stack slots they went through) and added to every
checkpoint up the chain. Where bpfkit cannot follow a dependency (callbacks, atomics on the stack) it
gives up and marks every scalar of the whole chain precise, which is always safe.
"""

from __future__ import annotations

from bpfkit._records import field, record
from bpfkit.isa.opcodes import Kind
from bpfkit.uapi.insn import AluOp, PseudoCall
from bpfkit.vm.verifier.cfg import Program, alu_op, is_x
from bpfkit.vm.verifier.state import NSLOTS, State

RegKey = tuple[int, int]
"""(frame depth, register)."""
Linked = tuple[frozenset[RegKey], frozenset[int]]
"""Scalars (registers, spilled slots) a conditional jump refined along with its operands."""
HistEntry = tuple[int, int, int, Linked | None]
"""(instruction slot, frame depth it ran in, stack key of the slot it accessed or -1, for a
conditional jump the scalars linked to its operands)."""


def stack_key(frameno: int, slot: int) -> int:
    return frameno * NSLOTS + slot


@record(frozen=False)
class Precision:
    """The precise scalars of a checkpoint: registers per frame (bit masks), spilled slots, or all."""

    regs: dict[int, int] = field(default_factory=dict)
    slots: set[int] = field(default_factory=set)
    all: bool = False

    def reg(self, frame: int, reg: int) -> bool:
        return self.all or bool(self.regs.get(frame, 0) >> reg & 1)

    def slot(self, key: int) -> bool:
        return self.all or key in self.slots

    def add(self, regs: set[RegKey], slots: set[int]) -> bool:
        """Add marks; True if any was new."""
        new = False
        for frame, reg in regs:
            mask = self.regs.get(frame, 0)
            if not mask >> reg & 1:
                self.regs[frame] = mask | 1 << reg
                new = True
        if not slots <= self.slots:
            self.slots |= slots
            new = True
        return new


class Checkpoint:
    """A state kept at a prune point. `branches` paths below it are still being explored; `hist` is
    the path from the previous checkpoint to this one; `prec` its precise scalars."""

    __slots__ = ("branches", "hist", "hits", "insn", "misses", "parent", "prec", "state")

    def __init__(self, state: State, parent: Checkpoint | None, insn: int, hist: list[HistEntry]) -> None:
        self.state = state
        self.parent = parent
        self.insn = insn
        self.hist = hist
        self.branches = 1
        self.hits = 0
        self.misses = 0
        self.prec = Precision()


class GiveUp(Exception):
    """A dependency bpfkit does not follow."""


class Tracker:
    """Backtracks precision marks through a program's instructions."""

    def __init__(self, prog: Program) -> None:
        self.prog = prog

    # -- entry points ---------------------------------------------------------------------------------
    def mark(self, st: State, current: HistEntry, regs: set[RegKey], slots: set[int] = frozenset()  # type: ignore[assignment]
             ) -> None:
        """The check at `current` used `regs` (and spilled `slots`) of `st`: mark them, and what they
        came from, precise in every checkpoint above."""
        s_regs, s_slots = set(regs), set(slots)
        hist: list[HistEntry] = st.hist  # type: ignore[assignment]
        if hist and hist[-1] is current:
            hist = hist[:-1]
        cp = st.parent if isinstance(st.parent, Checkpoint) else None
        after = current
        try:
            while s_regs or s_slots:
                for entry in reversed(hist):
                    self._back(entry, after, s_regs, s_slots)
                    after = entry
                    if not s_regs and not s_slots:
                        return
                if cp is None:
                    return
                if not cp.prec.add(s_regs, s_slots):
                    return  # already marked, and so were the checkpoints above it
                hist, after, cp = cp.hist, (cp.insn, len(cp.state.frames) - 1, -1, None), cp.parent
        except GiveUp:
            self.give_up(st.parent if isinstance(st.parent, Checkpoint) else None)

    @staticmethod
    def give_up(cp: Checkpoint | None, stop: Checkpoint | None = None) -> None:
        """Mark every scalar precise in `cp` and its ancestors (up to, not including, `stop`)."""
        while cp is not None and cp is not stop and not cp.prec.all:
            cp.prec.all = True
            cp = cp.parent

    def propagate(self, old: Checkpoint, st: State, current: HistEntry) -> None:
        """`st` was pruned against `old`: what was precise there is precise on `st`'s path too."""
        if old.prec.all:
            self.give_up(st.parent if isinstance(st.parent, Checkpoint) else None)
            return
        regs: set[RegKey] = set()
        for frame, mask in old.prec.regs.items():
            if frame < len(st.frames):
                cur = st.frames[frame].regs
                regs |= {(frame, r) for r in range(11) if mask >> r & 1 and cur[r].is_scalar}
        self.mark(st, current, regs, set(old.prec.slots))

    # -- one instruction backwards ----------------------------------------------------------------------
    def _back(self, entry: HistEntry, after: HistEntry, regs: set[RegKey], slots: set[int]) -> None:
        slot, depth, skey, linked = entry
        op = self.prog.op(slot)
        after_depth = after[1]
        if after_depth != depth:
            self._cross(op, depth, after_depth, after, regs, slots)
            return
        insn, kind = op.insn, op.kind
        dst, src = (depth, insn.dst), (depth, insn.src)
        if kind is Kind.ALU or kind is Kind.END:
            if dst in regs:
                if kind is Kind.ALU and alu_op(insn) is AluOp.MOV:
                    regs.discard(dst)
                if kind is Kind.ALU and is_x(insn) and alu_op(insn) is not AluOp.NEG:
                    regs.add(src)
        elif kind is Kind.LD_IMM64:
            regs.discard(dst)
        elif kind is Kind.LDX:
            if dst in regs:
                regs.discard(dst)
                if skey >= 0:
                    slots.add(skey)
        elif kind is Kind.STX:
            if skey >= 0 and skey in slots:
                slots.discard(skey)
                regs.add(src)
        elif kind is Kind.ST:
            slots.discard(skey)
        elif kind is Kind.ATOMIC:
            if (skey >= 0 and skey in slots) or src in regs or (depth, 0) in regs or dst in regs:
                raise GiveUp
        elif kind in (Kind.LD_ABS, Kind.LD_IND, Kind.CALL):
            for r in range(6):
                regs.discard((depth, r))
        elif kind is Kind.JUMP:
            # The branch refined its operands and every scalar linked to them (same id): whatever of
            # those is precise after it has its bounds from both operands.
            operands = {dst, src} if is_x(insn) else {dst}
            link_regs, link_slots = linked if linked is not None else (frozenset(), frozenset())
            if regs & operands or regs & link_regs or slots & link_slots:
                regs |= operands | link_regs
                slots |= link_slots

    def _cross(self, op: object, depth: int, after_depth: int, after: HistEntry, regs: set[RegKey],
               slots: set[int]) -> None:
        """Backwards over a frame change: a local call (`op` calls, the next entry is the callee's
        first instruction) or a return (`op` is the callee's exit)."""
        from bpfkit.vm.verifier.cfg import Op

        assert isinstance(op, Op)
        if after_depth == depth + 1 and op.kind is Kind.CALL and op.insn.src == PseudoCall.CALL:
            callee = after_depth
            for frame, r in list(regs):
                if frame == callee:
                    regs.discard((frame, r))
                    if not 1 <= r <= 5:
                        raise GiveUp
                    regs.add((depth, r))
            if any(key // NSLOTS == callee for key in slots):
                raise GiveUp
            return
        if after_depth == depth - 1 and op.kind is Kind.EXIT:
            nxt = self.prog.op(after[0])
            if nxt.kind is Kind.CALL and nxt.insn.src != PseudoCall.CALL:
                raise GiveUp  # back into a callback called by a helper
            if (after_depth, 0) in regs:
                regs.discard((after_depth, 0))
                regs.add((depth, 0))
            return
        raise GiveUp
