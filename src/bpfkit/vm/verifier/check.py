"""The exploration: every path of the program, instruction by instruction, in the abstract domain
(the kernel's do_check with is_state_visited).

Paths are explored depth first. At prune points (jump targets, branch fall-throughs, calls) the
state is compared with the states already seen there: a state covered by one whose every path ended
safely is pruned; one equal to a state still on the current path can only loop forever and is
refused; otherwise it is kept as a checkpoint. `Checkpoint.branches` counts the paths still running
below a checkpoint, so a checkpoint is used for pruning only once everything below it is verified.
Loops through `may_goto` and through bpf_loop's callback may prune against a checkpoint still in
progress (the runtime bounds them), as the kernel allows; there, scalars no check needed are widened so
the loop converges. Only the scalars a check below a checkpoint relied on must be covered
(`bpfkit.vm.verifier.precision`), and registers no later instruction reads are ignored.
"""

from __future__ import annotations

from collections.abc import Callable

from bpfkit._records import record
from bpfkit.isa.opcodes import Kind
from bpfkit.uapi.enums import MapType, ProgType
from bpfkit.uapi.insn import AtomicOp, PseudoCall, PseudoSrc
from bpfkit.vm.verifier import alu, branches, btfmem, calls, kfuncs, lsm, memory
from bpfkit.vm.verifier.cfg import Op
from bpfkit.vm.verifier.ctxaccess import LD_ABS_TYPES
from bpfkit.vm.verifier.env import COMPLEXITY_LIMIT_JMP_SEQ, Env
from bpfkit.vm.verifier.errors import Refusal
from bpfkit.vm.verifier.precision import Checkpoint, HistEntry, Linked, Tracker, stack_key
from bpfkit.vm.verifier.prune import frame_masks, states_equal, widen
from bpfkit.vm.verifier.ranges import of_size, zext32
from bpfkit.vm.verifier.state import (
    FP,
    NOT_INIT,
    NREGS,
    Frame,
    Reg,
    RegType,
    State,
    const,
    pointer,
    scalar,
)


def _swap(a: State, b: State) -> None:
    """Exchange the contents of two states (so the object a caller holds continues the other path)."""
    a.frames, b.frames = b.frames, a.frames
    a.refs, b.refs = b.refs, a.refs
    a.path, b.path = b.path, a.path
    a.may_goto_depth, b.may_goto_depth = b.may_goto_depth, a.may_goto_depth
    a.rcu, b.rcu = b.rcu, a.rcu
    a.parent, b.parent = b.parent, a.parent
    a.hist, b.hist = b.hist, a.hist


def _swap_in(st: State, other: State) -> None:
    if other is not st:
        _swap(st, other)


@record(frozen=False)
class Failure:
    """Where exploration stopped: the refusal and the state it happened in."""

    refusal: Refusal
    state: State


LogFn = Callable[[int, Op, State | None], None]
"""Called with the state None before an instruction runs, and with its state after."""


def initial_state(env: Env, gpl: bool) -> State:
    """The state at the first instruction (r1 the context, r10 the frame); refuses programs whose type
    needs a condition checked before any instruction (an LSM program without a GPL license)."""
    if env.prog_type == ProgType.LSM:
        lsm.check_program(env.expected_attach_type, gpl)
    if env.prog_type in memory.BTF_CTX_TYPES and env.ctx_proto is None:
        # The kernel resolves a BTF-typed program's target before checking it.
        env.ctx_proto = btfmem.attach_proto(env.btf, env.prog_type, env.expected_attach_type, env.attach_to)
    regs: list[Reg] = [NOT_INIT] * NREGS
    if env.prog_type is None:
        regs[1], regs[2] = memory.raw_mode_regs(env)
    else:
        regs[1] = pointer(RegType.CTX)
    regs[FP] = pointer(RegType.STACK, frameno=0)
    return State([Frame(regs)])


class Explorer:
    """Runs the exploration over `env.prog`; `run()` returns None on success or the `Failure`."""

    def __init__(self, env: Env, *, gpl: bool = True, log: LogFn | None = None) -> None:
        self.env = env
        self.gpl = gpl
        self.log = log
        self.visited: dict[int, list[Checkpoint]] = {}
        self.pending: list[tuple[int, State]] = []
        self.prog_next = {op.slot: op.next for op in env.prog.ops if op is not None}
        self.on_branch: Callable[[int, int], None] | None = None
        self.jumps = 0
        self.cp_jumps = self.cp_insns = 0
        self.tracker = Tracker(env.prog)
        self.marks: list[int] = []
        """Registers the instruction being checked used precisely (filled by the checks)."""

    # -- bookkeeping --------------------------------------------------------------------------------
    def _fork(self, st: State) -> State:
        new = st.copy()
        if isinstance(st.parent, Checkpoint):
            st.parent.branches += 1
        return new

    def _push(self, insn: int, st: State) -> None:
        self.pending.append((insn, st))
        if len(self.pending) > COMPLEXITY_LIMIT_JMP_SEQ:
            raise Refusal(insn, f"The sequence of {COMPLEXITY_LIMIT_JMP_SEQ} jumps is too complex.",
                          "the program branches too much: simplify it or split it with tail calls")
        self._note_peak()

    def _note_peak(self) -> None:
        held = self.env.states + len(self.pending)
        if held > self.env.peak_states:
            self.env.peak_states = held

    @staticmethod
    def _path_done(st: State) -> None:
        cp = st.parent
        while isinstance(cp, Checkpoint):
            cp.branches -= 1
            if cp.branches > 0:
                break
            cp = cp.parent

    def _visit(self, insn: int, st: State) -> bool:
        """At a prune point: True if the path can stop here (covered by a verified state)."""
        env = self.env
        live = frame_masks(st, insn, env.live, self.prog_next)
        here: HistEntry = (insn, len(st.frames) - 1, -1, None)
        op = env.prog.op(insn)
        is_loop_call = op.kind is Kind.CALL and calls.is_loop_call(op)
        loops_ok = op.kind is Kind.JCOND or is_loop_call
        widened = False
        seen = self.visited.get(insn, [])
        evict = False
        for cp in seen:
            old = cp.state
            if cp.branches == 0:
                if states_equal(old, st, live, prec=cp.prec):
                    cp.hits += 1
                    self.tracker.propagate(cp, st, here)
                    return True
                cp.misses += 1
                evict = evict or cp.misses > 3 * cp.hits + 3
                continue
            if loops_ok and (op.kind is not Kind.JCOND or old.may_goto_depth != st.may_goto_depth):
                if states_equal(old, st, live):
                    # Everything between the loop's checkpoint and here relied on the loop's future.
                    self.tracker.give_up(st.parent if isinstance(st.parent, Checkpoint) else None, cp)
                    return True
                if not widened:
                    widened = widen(old, st, None if is_loop_call else cp.prec)
            elif old.may_goto_depth == st.may_goto_depth and states_equal(old, st, live, exact=True):
                raise Refusal(insn, f"infinite loop detected at insn {insn}",
                              "the loop comes back to the same state, so it never ends: make the loop "
                              "condition depend on a counter the loop changes, or use may_goto / "
                              "bpf_loop")
        if evict:
            # Like the kernel, forget verified states that keep failing to match (pruning less is safe).
            seen[:] = [cp for cp in seen if cp.branches or cp.misses <= 3 * cp.hits + 3]
        if not loops_ok and (self.jumps - self.cp_jumps < 2 or env.processed - self.cp_insns < 8):
            return False  # too close to the last checkpoint to be worth another (the kernel's rule)
        self.cp_jumps, self.cp_insns = self.jumps, env.processed
        cp = Checkpoint(st.copy(), st.parent if isinstance(st.parent, Checkpoint) else None, insn,
                        st.hist)  # type: ignore[arg-type]
        st.hist = []
        self.visited.setdefault(insn, seen).append(cp)
        st.parent = cp
        env.states += 1
        self._note_peak()
        return False

    # -- the loop -----------------------------------------------------------------------------------
    def run(self) -> Failure | None:
        env = self.env
        st = initial_state(env, self.gpl)
        insn = 0
        prune = env.prog.prune_points
        while True:
            try:
                self._run_path(insn, st, prune)
            except Refusal as ref:
                if ref.insn < 0:
                    ref.insn = env.insn
                return Failure(ref, self._failed_state)
            if not self.pending:
                return None
            insn, st = self.pending.pop()
            if self.on_branch is not None:
                src = st.path.edge.src if st.path is not None else -1
                self.on_branch(src, insn)

    _failed_state: State

    def _run_path(self, insn: int, st: State, prune: set[int]) -> None:
        env = self.env
        prog = env.prog
        while True:
            self._failed_state = st
            env.insn = insn
            if insn in prune and self._visit(insn, st):
                env.pruned += 1
                self._path_done(st)
                return
            env.processed += 1
            if env.processed > env.limit:
                raise Refusal(insn, f"BPF program is too large. Processed {env.processed} insn",
                              f"the verifier gave up after {env.limit} instructions over all paths: "
                              f"bound loops with small constants, or use bpf_loop")
            op = prog.op(insn)
            if self.log is not None:
                self.log(insn, op, None)
            depth = len(st.frames) - 1
            entry: HistEntry = (insn, depth, self._stack_key(op, st), self._linked(op, st))
            st.hist.append(entry)
            self.marks.clear()
            nxt = self._step(op, st)
            if self.marks:
                frame = st.frames[depth].regs if depth < len(st.frames) else None
                regs = {(depth, r) for r in self.marks if frame is None or frame[r].is_scalar}
                self.tracker.mark(st, entry, regs)
            if self.log is not None:
                self.log(insn, op, st)
            if nxt is None:
                self._path_done(st)
                return
            insn = nxt

    def _step(self, op: Op, st: State) -> int | None:
        """Execute one instruction on `st`; the next slot, or None when this path ends. Other
        feasible successors are pushed."""
        env = self.env
        kind = op.kind
        insn = op.insn
        if kind is Kind.ALU or kind is Kind.END:
            offset_reg = alu.check_alu(env, st, op)
            if offset_reg is not None:
                self.marks.append(offset_reg)
            return op.next
        if kind is Kind.LDX:
            alu.read_reg(st, insn.src)
            alu.check_writable(insn.dst)
            value = memory.check_access(env, st, insn.src, insn.off, insn.size.nbytes, write=False,
                                        signed=insn.mode == 0x80)
            assert value is not None
            st.regs[insn.dst] = value
            return op.next
        if kind is Kind.STX:
            alu.read_reg(st, insn.dst)
            value = alu.read_reg(st, insn.src)
            memory.check_access(env, st, insn.dst, insn.off, insn.size.nbytes, write=True, value=value)
            return op.next
        if kind is Kind.ST:
            alu.read_reg(st, insn.dst)
            memory.check_access(env, st, insn.dst, insn.off, insn.size.nbytes, write=True,
                                imm=insn.imm)
            return op.next
        if kind is Kind.LD_IMM64:
            alu.check_writable(insn.dst)
            st.regs[insn.dst] = self._ld_imm64(op)
            return op.next
        if kind is Kind.JA:
            assert op.target is not None
            self.jumps += 1
            st.add_edge(op.slot, op.target, "goto")
            return op.target
        if kind is Kind.JUMP:
            self.jumps += 1
            return self._cond(op, st)
        if kind is Kind.JCOND:
            self.jumps += 1
            assert op.target is not None
            other = self._fork(st)
            other.add_edge(op.slot, op.target, "may_goto taken")
            self._push(op.target, other)
            st.may_goto_depth += 1
            return op.next
        if kind is Kind.CALL:
            return self._call(op, st)
        if kind is Kind.EXIT:
            nxt = calls.check_exit(env, st, op, self.marks)
            if nxt is not None:
                st.add_edge(op.slot, nxt, "return")
            return nxt
        if kind is Kind.ATOMIC:
            self._atomic(op, st)
            return op.next
        if kind in (Kind.LD_ABS, Kind.LD_IND):
            self._ld_abs(op, st)
            return op.next
        raise Refusal(op.slot, "BPF_CALL uses reserved fields" if kind is Kind.CALLX else
                      f"unsupported instruction {kind.value}", "callx is not allowed in the kernel")

    def _stack_key(self, op: Op, st: State) -> int:
        """The stack slot a load or store at constant offset from a stack pointer touches, or -1."""
        kind, insn = op.kind, op.insn
        if kind is Kind.LDX or (kind is Kind.ATOMIC and insn.imm == AtomicOp.LOAD_ACQ):
            reg = st.regs[insn.src]
        elif kind in (Kind.STX, Kind.ST, Kind.ATOMIC):
            reg = st.regs[insn.dst]
        else:
            return -1
        if reg.type is not RegType.STACK or not reg.b.is_const:
            return -1
        total = reg.off + reg.b.value + insn.off
        if reg.b.value >> 63:
            total -= 1 << 64
        if not -512 <= total < 0:
            return -1
        return stack_key(reg.frameno, (-total - 1) // 8)

    @staticmethod
    def _linked(op: Op, st: State) -> Linked | None:
        """For a conditional jump, the scalars that share an id with its operands."""
        if op.kind is not Kind.JUMP:
            return None
        insn = op.insn
        ids = {st.regs[insn.dst].id}
        if insn.source == 0x08:
            ids.add(st.regs[insn.src].id)
        ids.discard(0)
        if not ids:
            return None
        regs: set[tuple[int, int]] = set()
        slots: set[int] = set()
        for depth, frame in enumerate(st.frames):
            for r, reg in enumerate(frame.regs):
                if reg.is_scalar and reg.id in ids:
                    regs.add((depth, r))
            for index, slot in frame.stack.items():
                if slot.spilled is not None and slot.spilled.is_scalar and slot.spilled.id in ids:
                    slots.add(stack_key(depth, index))
        return frozenset(regs), frozenset(slots)

    def _cond(self, op: Op, st: State) -> int | None:
        assert op.target is not None
        parent_before = st.parent
        taken, fall, used = branches.check_cond_jump(st, op)
        self.marks.extend(used)
        if taken is not None:
            taken.add_edge(op.slot, op.target, "taken")
        if fall is not None:
            fall.add_edge(op.slot, op.next, "not taken")
        if taken is not None and fall is not None:
            if isinstance(parent_before, Checkpoint):
                parent_before.branches += 1  # check_cond_jump forked the state
            if taken is st:
                _swap(st, fall)
                taken, fall = fall, st
            # Like the kernel: continue with the fall-through, explore the jump later.
            self._push(op.target, taken)
            return op.next
        if taken is not None:
            _swap_in(st, taken)
            return op.target
        assert fall is not None
        _swap_in(st, fall)
        return op.next

    def _call(self, op: Op, st: State) -> int | None:
        insn = op.insn
        if insn.src == PseudoCall.CALL:
            target = calls.enter_subprog(st, op)
            st.add_edge(op.slot, target, "call")
            return target
        if insn.src == PseudoCall.KFUNC:
            kfuncs.check_kfunc_call(self.env, st, op, self.gpl)
            return op.next
        callback = calls.check_helper_call(self.env, st, op, self.gpl, self.marks)
        if callback is None:
            return op.next
        done = self._fork(st)
        calls.loop_done(self.env, done, op)
        done.add_edge(op.slot, op.next, "loop done")
        self._push(op.next, done)
        entry = calls.enter_callback(st, op, callback)
        st.add_edge(op.slot, entry, "callback")
        return entry

    def _ld_imm64(self, op: Op) -> Reg:
        insn = op.insn
        src = insn.src
        if op.slot in self.env.kernel_refs or src == PseudoSrc.BTF_ID:
            return kfuncs.ksym_load(self.env, op)
        if src == PseudoSrc.NONE:
            return const(insn.imm)
        if src == PseudoSrc.FUNC:
            assert op.target is not None
            return pointer(RegType.FUNC, subprog=op.target)
        info = self.env.maps.get(op.slot)
        if info is None:
            raise Refusal(op.slot, f"the map loaded at insn {op.slot} is unknown",
                          "pass the program's maps to verify() (maps= and relocations=)")
        if info.type in (MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE):
            # check_map_prog_compatibility: a program has at most one cgroup storage of each type.
            seen = self.env.cgroup_storage.setdefault(info.type, info)
            if seen != info:
                raise Refusal(op.slot, "only one cgroup storage of each type is allowed",
                              f"use one {info.type.name} map per program ({seen.name} and {info.name})")
        if src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_IDX):
            return pointer(RegType.MAP_PTR, map=info)
        offset = (insn.imm >> 32) & 0xFFFFFFFF
        if info.type != MapType.ARRAY or info.max_entries != 1:
            raise Refusal(op.slot, "map does not support direct value access",
                          "direct value loads (global data) need an array map with one element")
        if offset >= info.value_size:
            raise Refusal(op.slot, f"invalid access to map value pointer, value_size={info.value_size} "
                                   f"off={offset}", "the offset must lie inside the map value")
        return pointer(RegType.MAP_VALUE, map=info, off=offset)

    def _atomic(self, op: Op, st: State) -> None:
        insn = op.insn
        size = insn.size.nbytes
        imm = insn.imm
        if imm == AtomicOp.LOAD_ACQ:
            alu.read_reg(st, insn.src)
            alu.check_writable(insn.dst)
            value = memory.check_access(self.env, st, insn.src, insn.off, size, write=False)
            assert value is not None
            st.regs[insn.dst] = value
            return
        addr = alu.read_reg(st, insn.dst)
        src = alu.read_reg(st, insn.src)
        if imm == AtomicOp.STORE_REL:
            memory.check_access(self.env, st, insn.dst, insn.off, size, write=True, value=src)
            return
        if addr.type not in (RegType.STACK, RegType.MAP_VALUE, RegType.MEM) or addr.maybe_null:
            raise Refusal(op.slot, f"BPF_ATOMIC stores into R{insn.dst} {addr.type_name()} is not allowed",
                          "atomic operations work on the stack and on map values")
        if not src.is_scalar:
            raise Refusal(op.slot, f"R{insn.src} leaks addr into mem", "atomic operands are numbers")
        if imm == AtomicOp.CMPXCHG:
            r0 = alu.read_reg(st, 0)
            if not r0.is_scalar:
                raise Refusal(op.slot, "R0 leaks addr into mem", "cmpxchg compares numbers")
        old = memory.check_access(self.env, st, insn.dst, insn.off, size, write=False)
        assert old is not None
        if addr.type is RegType.STACK and not old.is_scalar:
            raise Refusal(op.slot, f"BPF_ATOMIC on a spilled pointer at R{insn.dst}{insn.off:+d}",
                          "atomic operations work on numbers")
        memory.check_access(self.env, st, insn.dst, insn.off, size, write=True, value=scalar())
        fetched = scalar(of_size(size))
        if imm == AtomicOp.CMPXCHG:
            st.regs[0] = fetched
        elif imm & 1:  # BPF_FETCH
            alu.check_writable(insn.src)
            st.regs[insn.src] = fetched if size == 8 else scalar(zext32(fetched.b))

    def _ld_abs(self, op: Op, st: State) -> None:
        env = self.env
        if env.prog_type not in LD_ABS_TYPES:
            raise Refusal(op.slot, "BPF_LD_[ABS|IND] instructions not allowed for this program type",
                          "use direct packet access or bpf_skb_load_bytes")
        if len(env.prog.subprogs) > 1:
            raise Refusal(op.slot, "BPF_LD_[ABS|IND] instructions cannot be mixed with bpf-to-bpf calls",
                          "use bpf_skb_load_bytes in programs with functions")
        if st.refs:
            raise Refusal(op.slot, "BPF_LD_[ABS|IND] cannot be mixed with socket references",
                          "release references before LD_ABS")
        if st.rcu:
            raise Refusal(op.slot, "BPF_LD_[ABS|IND] cannot be used inside bpf_rcu_read_lock-ed region",
                          "call bpf_rcu_read_unlock before LD_ABS/LD_IND")
        r6 = alu.read_reg(st, 6)
        if r6.type is not RegType.CTX or r6.off:
            raise Refusal(op.slot, "at the time of BPF_LD_ABS|IND R6 != pointer to skb",
                          "keep the context (r1 at start) in r6 for LD_ABS/LD_IND")
        if op.kind is Kind.LD_IND:
            alu.read_reg(st, op.insn.src)
        for r in range(1, 6):
            st.regs[r] = NOT_INIT
        st.regs[0] = scalar()
