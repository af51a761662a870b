"""Compile a `LoadedProgram` to x86-64: one native function per eBPF subprogram, plus the routines every
program carries (the entry stub, the common exit, the memory-check slow path and the callx resolver).

Native conventions:
  * r12 points at the `RunBlock` during the whole run; its fields are addressed as [r12 + offset].
  * A subprogram is a native function. Its prologue saves r6-r9 and r10 (rbx, r13-r15, rbp), takes the
    next call depth and sets r10 to that depth's frame top (`RunBlock.frame_tops`); its epilogue undoes
    that. Call sites save r1-r5 around the call, because the VM gives a caller its r1-r5 back.
  * The native stack is 16-byte aligned at every call into C (helper and memory callbacks).
  * Errors leave through `exit_common`, which restores the rsp saved by the entry stub, so an error can
    be raised at any call depth. The status says what happened; `RunBlock.err_pc` where.
  * The instruction budget is counted per straight-line segment, exactly like the translated engine, so
    `instructions` and budget faults match the other engines.

Memory checks: every load, store and atomic whose address is not proven safe goes through an inline
cache of the last region that instruction touched (start, count). A miss calls `memslow`, which scans the
region table; it fills the cache for plain regions, answers loads of a hooked context's pointer fields
from the region's field list, and hands everything else (stores to hooked regions, faults) to Python.
Accesses through r10 at a constant offset inside the frame are proven safe by construction (r10 is
read-only and always points at the current frame), as are the slots the caller lists in `proven_safe`:
the caller promises that at those slots the base register always holds the real address of a plain
(unhooked) host buffer covering the access, which is what `VerifierResult.proven_safe` proves (or, for
a program not verified, `map_values.proven_value_accesses`). A region check cannot tell one map value
from the next (array elements are contiguous in host memory; hash values may be), while the interpreter
gives each value a region of its own. So, in a program not verified, accesses known to leave the value
their base points into (`origins`, from `value_origins`: through copies, adds and stack spills) skip
the cache and go to Python, which rebuilds the interpreter's address from the value's start. Accesses
at an unknown offset from a lookup's value (`dynamic`) first compare the address with that value's
bounds (the lookup stores its result in a data word) and go to Python the same way if outside.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from bpfkit._records import field, record, replace
from bpfkit.errors import VmError
from bpfkit.isa.instruction import Instruction
from bpfkit.isa.opcodes import Kind
from bpfkit.uapi.insn import ATOMIC_FETCH, MAX_BPF_STACK, MAX_CALL_FRAMES, AtomicOp, Mode, PseudoCall
from bpfkit.vm import runtime
from bpfkit.vm.jit import ops
from bpfkit.vm.jit.cfg import Function, function_graphs
from bpfkit.vm.jit.layout import (
    CACHE_ENTRY,
    FORCED,
    REGION_ENTRY,
    SIGNED,
    HelperStatus,
    MemKind,
    MemStatus,
    RegionFlag,
    Status,
    arg_offset,
    frame_tops_offset,
    mem_info,
    offset,
)
from bpfkit.vm.jit.x86 import Alu, Asm, Cond, DataRef, Gp, Label, Mem, Shift, rip
from bpfkit.vm.program import SEGMENT_ENDS, LoadedProgram, Step

REG = ops.REG
R12 = Gp.R12
_SIZE = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}
_ARG_REGS = (Gp.RDI, Gp.RSI, Gp.RDX, Gp.RCX, Gp.R8)
_CALLEE_SAVED = (Gp.RBX, Gp.R13, Gp.R14, Gp.R15, Gp.RBP)

DATA_HELPER_CB = 0
DATA_MEM_CB = 8
DATA_CALLX = 16


def block(name: str) -> Mem:
    """The `RunBlock` field `name` as a memory operand."""
    return Mem(R12, offset(name))


@record
class MemSite:
    """A checked memory instruction: its cache index is its position in `CompiledCode.sites`."""

    slot: int
    kind: MemKind
    size: int
    signed: bool = False
    atomic: int | None = None
    origin: int | None = None
    """For a site that runs out of the map value its base points into (`value_origins`): the access's
    offset from that value's start. Such a site always goes to Python, which rebuilds the address."""
    shadow: int | None = None
    """For a site at an unknown offset from a lookup's value: the data-area offset of the word holding
    that lookup's last result (an access that leaves the value goes to Python, forced)."""


@record(frozen=False)
class CompiledCode:
    """Machine code and what the loader needs to place it."""

    code: bytes
    data_size: int
    entry: int
    """Offset of the entry stub: int entry(RunBlock *)."""
    functions: dict[int, int]
    """Entry slot of each subprogram -> offset of its native function."""
    sites: list[MemSite]
    caches: int
    """Offset in the data area of the inline caches (CACHE_ENTRY bytes per site)."""
    checked: int = 0
    """Memory instructions compiled with a bounds check."""
    unchecked: int = 0
    """Memory instructions compiled without one (proven safe, or unsafe mode)."""
    marks: list[CodeMark] = field(default_factory=list)
    """Where each piece of the code starts, in code order (for listings such as `vm jit-dump`)."""


@record
class CodeMark:
    """The start of a piece of native code: the eBPF instruction at `slot`, or (slot None) a routine
    named `name` (entry stub, a function's prologue, epilogue or out-of-line stubs, memslow...). A piece
    runs up to the next mark; pieces may be empty (a jump to the next instruction)."""

    offset: int
    slot: int | None
    name: str = ""


Imm64Resolver = Callable[[Step], int]
"""Value an LD_IMM64 loads natively (map value addresses become host addresses)."""

NativeHelper = Callable[["Compiler", Step, Label], bool]
"""Emits a helper call natively: `(compiler, call step, slow)` emits code that leaves r0 and r1-r5 as the
VM's helper would (or jumps to `slow`, where the Python helper call is emitted) and returns True; False
means it emitted nothing and the call goes to Python."""


class Compiler:
    """Compiles one program. `proven_safe` lists slots whose memory access needs no check; `unsafe`
    drops every check (only for programs a verifier has accepted)."""

    def __init__(self, program: LoadedProgram, *, imm64: Imm64Resolver | None = None,
                 proven_safe: Collection[int] = (), unsafe: bool = False,
                 natives: Mapping[int, NativeHelper] | None = None,
                 packet_loads: Mapping[int, bool] | None = None,
                 origins: Mapping[int, int] | None = None,
                 dynamic: Mapping[int, tuple[int, int]] | None = None) -> None:
        self.program = program
        self.origins = origins or {}
        """Slot -> offset from its map value's start of an access that leaves the value: to Python."""
        self.dynamic = dynamic or {}
        """Slot -> (lookup slot, value size) of an access at an unknown offset from that lookup's value."""
        self.natives = natives or {}
        """Helper id -> emitter of a native version of the call (`NativeHelper`)."""
        self.packet_loads = packet_loads or {}
        """Slot -> load of the context's packet data pointer (False) or data_end (True), answered from
        the run block's packet window (`native_ctx.packet_pointer_loads`)."""
        self.imm64 = imm64 or (lambda step: step.value or 0)
        self.proven_safe = frozenset(proven_safe)
        self.unsafe = unsafe
        self.a = Asm()
        self.sites: list[MemSite] = []
        self.stubs: list[Callable[[], None]] = []
        self.exit_common = Label("exit_common")
        self.memslow = Label("memslow")
        self.memforce = Label("memforce")
        self.callx_resolve = Label("callx_resolve")
        self.function_labels: dict[int, Label] = {e: Label(f"F_{e}") for e in program.functions}
        self.checked = 0
        self.unchecked = 0
        self._errors: dict[tuple[Status, int], Label] = {}
        shadows = DATA_CALLX + 16 * (len(program.functions) + 1)
        self.shadows = {seed: shadows + 8 * i for i, seed in
                        enumerate(sorted({seed for seed, _ in self.dynamic.values()}))}
        """Lookup slot -> data-area offset of the word native code stores its result in."""
        self.caches = shadows + 16 * ((len(self.shadows) + 1) // 2)
        """Offset of the inline caches in the data area (after the callbacks and the callx table)."""
        self._marks: list[tuple[Label, int | None, str]] = []
        """Labels starting each piece of code (slot or routine name), turned into `CodeMark`s."""

    # -- driver -----------------------------------------------------------------------------------
    def compile(self) -> CompiledCode:
        a = self.a
        entry = Label("entry")
        a.bind(entry)
        self._entry_stub()
        for fn in function_graphs(self.program).values():
            self._function(fn)
        self._memslow()
        self._callx_resolver()
        code = a.assemble()
        data_size = self.caches + CACHE_ENTRY * len(self.sites)
        assert entry.offset is not None
        functions = {slot: lbl.offset for slot, lbl in self.function_labels.items()
                     if lbl.offset is not None}
        return CompiledCode(code, data_size, entry.offset, functions, self.sites, self.caches,
                            self.checked, self.unchecked, self._code_marks(entry))

    def _code_marks(self, entry: Label) -> list[CodeMark]:
        routines = ((entry, "entry stub"), (self.exit_common, "common exit"),
                    (self.memforce, "memory fault path"), (self.memslow, "memory slow path"),
                    (self.callx_resolve, "callx resolver"))
        pairs = [(lbl, None, name) for lbl, name in routines] + self._marks
        marks = [CodeMark(lbl.offset, slot, name) for lbl, slot, name in pairs if lbl.offset is not None]
        marks.sort(key=lambda m: m.offset)  # stable: a routine bound at the same offset stays first
        return marks

    def _error(self, status: Status, pc: int) -> Label:
        """A stub that leaves the run with `status` at `pc` (one per status and pc)."""
        key = (status, pc)
        label = self._errors.get(key)
        if label is None:
            label = self._errors[key] = Label(f"err.{status.name}.{pc}")

            def stub(label: Label = label) -> None:
                self.a.bind(label)
                self.a.mov(block("err_pc"), pc)
                self.a.mov(Gp.RAX, int(status), 32)
                self.a.jmp(self.exit_common)
            self.stubs.append(stub)
        return label

    def _flush_stubs(self) -> None:
        while self.stubs:
            pending, self.stubs = self.stubs, []
            for stub in pending:
                stub()

    # -- the entry stub and the common exit -------------------------------------------------------
    def _entry_stub(self) -> None:
        """int entry(RunBlock *rb): run `rb->target` `rb->repeat` times with r1..r5 = rb->args."""
        a = self.a
        for reg in (Gp.RBP, Gp.RBX, Gp.R12, Gp.R13, Gp.R14, Gp.R15):
            a.push(reg)
        a.mov(R12, Gp.RDI)
        a.push(block("entry_rsp"))  # nested entries (callbacks, tail calls) restore the outer one
        a.mov(block("entry_rsp"), Gp.RSP)
        again, skip = Label("entry.again"), Label("entry.nested")
        a.bind(again)
        a.alu(Alu.CMP, block("nested"), 0)
        a.jcc(Cond.NE, skip)
        a.mov(Gp.RAX, block("budget"))
        a.mov(block("remain"), Gp.RAX)
        a.mov(block("depth"), -1)
        a.mov(block("tail"), 0)
        a.bind(skip)
        for i, reg in enumerate(_ARG_REGS):
            a.mov(reg, Mem(R12, arg_offset(i)))
        for reg in (Gp.RAX, Gp.RBX, Gp.R13, Gp.R14, Gp.R15, Gp.RBP):
            a.alu(Alu.XOR, reg, reg, 32)
        a.call(block("target"))
        a.mov(block("retval"), Gp.RAX)
        a.dec(block("repeat"))
        a.jcc(Cond.NE, again)
        a.alu(Alu.XOR, Gp.RAX, Gp.RAX, 32)
        a.bind(self.exit_common)
        a.mov(Gp.RSP, block("entry_rsp"))
        a.pop(block("entry_rsp"))
        for reg in (Gp.R15, Gp.R14, Gp.R13, Gp.R12, Gp.RBX, Gp.RBP):
            a.pop(reg)
        a.ret()

    # -- functions --------------------------------------------------------------------------------
    def _function(self, fn: Function) -> None:
        a = self.a
        program = self.program
        self.fn = fn
        self.labels = {slot: Label(f"{fn.entry}:{slot}") for slot in fn.order}
        self.epilogue = Label(f"F_{fn.entry}.exit")
        a.bind(self.function_labels[fn.entry])
        self._marks.append((self.function_labels[fn.entry], None, f"function {fn.entry}: prologue"))
        for reg in _CALLEE_SAVED:
            a.push(reg)
        if fn.may_goto:
            a.alu(Alu.SUB, Gp.RSP, 16)  # [rsp]: the may_goto counter (plus 8 bytes of alignment)
            a.mov(Mem(Gp.RSP), runtime.BPF_MAX_LOOPS)
        a.mov(Gp.R11, block("depth"))
        a.inc(Gp.R11)
        a.alu(Alu.CMP, Gp.R11, MAX_CALL_FRAMES)  # a safety net: call sites check before this
        a.jcc(Cond.AE, self._error(Status.DEPTH, fn.entry))
        a.mov(block("depth"), Gp.R11)
        a.mov(Gp.RBP, Mem(R12, frame_tops_offset(), Gp.R11, 8))
        if fn.uses_stack:  # the VM zeroes a frame when it is pushed
            a.mov(Gp.R9, Gp.RDI)
            a.mov(Gp.R10, Gp.RCX)
            a.mov(Gp.R11, Gp.RAX)
            a.lea(Gp.RDI, Mem(Gp.RBP, -MAX_BPF_STACK))
            a.alu(Alu.XOR, Gp.RAX, Gp.RAX, 32)
            a.mov(Gp.RCX, MAX_BPF_STACK // 8)
            a.rep_stosq()
            a.mov(Gp.RDI, Gp.R9)
            a.mov(Gp.RCX, Gp.R10)
            a.mov(Gp.RAX, Gp.R11)
        segment_open = False
        for i, slot in enumerate(fn.order):
            step = program.steps[slot]
            assert step is not None
            a.bind(self.labels[slot])
            self._marks.append((self.labels[slot], slot, ""))
            if slot in fn.leaders or not segment_open:
                count = self.program.segment_length(slot, fn.leaders)
                a.alu(Alu.SUB, block("remain"), count)
                a.jcc(Cond.B, self._budget_stub(slot, count))
                segment_open = True
            following = fn.order[i + 1] if i + 1 < len(fn.order) else None
            self._instruction(step, following)
            if step.kind in SEGMENT_ENDS:
                segment_open = False
        a.bind(self.epilogue)
        self._marks.append((self.epilogue, None, f"function {fn.entry}: epilogue"))
        a.dec(block("depth"))
        if fn.may_goto:
            a.alu(Alu.ADD, Gp.RSP, 16)
        for reg in reversed(_CALLEE_SAVED):
            a.pop(reg)
        a.ret()
        if self.stubs:
            stubs = Label(f"F_{fn.entry}.stubs")
            a.bind(stubs)
            self._marks.append((stubs, None, f"function {fn.entry}: out-of-line paths"))
        self._flush_stubs()


    def _budget_stub(self, slot: int, count: int) -> Label:
        label = Label(f"budget.{slot}")

        def stub() -> None:
            self.a.bind(label)
            self.a.alu(Alu.ADD, block("remain"), count)  # give back: Python walks the segment
            self.a.mov(block("err_pc"), slot)
            self.a.mov(Gp.RAX, int(Status.BUDGET), 32)
            self.a.jmp(self.exit_common)
        self.stubs.append(stub)
        return label

    def _goto(self, target: int, following: int | None) -> None:
        """Continue at `target` (nothing to emit when it is the next slot laid out)."""
        if target >= self.program.nslots:
            self.a.jmp(self._error(Status.FELL_OFF, target))
        elif target != following:
            self.a.jmp(self.labels[target])

    # -- instructions -----------------------------------------------------------------------------
    def _instruction(self, step: Step, following: int | None) -> None:
        a = self.a
        insn, kind = step.insn, step.kind
        op = insn.opcode
        if kind is Kind.EXIT:
            a.jmp(self.epilogue)
            return
        if kind is Kind.JA:
            assert step.target is not None
            self._goto(step.target, following)
            return
        if kind is Kind.JUMP:
            assert step.target is not None
            cond = ops.condition(a, op, insn.dst, insn.src, insn.imm)
            a.jcc(cond, self.labels[step.target])
            self._goto(step.next, following)
            return
        if kind is Kind.JCOND:  # may_goto: jump once the counter is 0, else count down
            assert step.target is not None
            a.alu(Alu.CMP, Mem(Gp.RSP), 0)
            a.jcc(Cond.E, self.labels[step.target])
            a.dec(Mem(Gp.RSP))
            self._goto(step.next, following)
            return
        if kind is Kind.ALU:
            ops.alu(a, op, insn.dst, insn.src, insn.off, insn.imm)
        elif kind is Kind.END:
            ops.end(a, op, insn.dst, insn.imm)
        elif kind is Kind.LD_IMM64:
            value = self.imm64(step)
            a.mov(REG[insn.dst], value - (1 << 64) if value >> 63 else value)
        elif kind is Kind.LDX and step.slot in self.packet_loads:
            self.unchecked += 1
            a.mov(REG[insn.dst], block("pkt_data"))
            if self.packet_loads[step.slot]:
                a.alu(Alu.ADD, REG[insn.dst], block("pkt_len"))
        elif kind is Kind.LDX:
            self._load(step, insn.dst, insn.src, insn.off, _SIZE[op & 0x18], (op & 0xE0) == Mode.MEMSX)
        elif kind is Kind.ST:
            self._store(step, insn.dst, insn.off, _SIZE[op & 0x18], None, insn.imm)
        elif kind is Kind.STX:
            self._store(step, insn.dst, insn.off, _SIZE[op & 0x18], insn.src, 0)
        elif kind is Kind.ATOMIC:
            self._atomic(step)
        elif kind in (Kind.LD_ABS, Kind.LD_IND):
            self._ld_packet(step)
        elif kind is Kind.CALL:
            if insn.src == PseudoCall.CALL:
                assert step.target is not None
                self._bpf_call(step.slot, self.function_labels[step.target])
            else:
                self._native_or_helper_call(step)
                if step.slot in self.shadows:  # a lookup whose result some access checks against
                    a.mov(rip(DataRef(self.shadows[step.slot])), Gp.RAX)
        elif kind is Kind.CALLX:
            self._callx(step)
        else:  # pragma: no cover - every kind is handled
            raise VmError(f"the JIT cannot compile {kind}", step.slot, insn)
        self._goto(step.next, following)

    # -- calls ------------------------------------------------------------------------------------
    def _bpf_call(self, pc: int, target: Label | Gp) -> None:
        a = self.a
        a.alu(Alu.CMP, block("depth"), MAX_CALL_FRAMES - 2)
        a.jcc(Cond.G, self._error(Status.DEPTH, pc))
        for reg in _ARG_REGS:
            a.push(reg)
        a.alu(Alu.SUB, Gp.RSP, 8)
        a.call(target)
        a.alu(Alu.ADD, Gp.RSP, 8)
        for reg in reversed(_ARG_REGS):
            a.pop(reg)

    def _native_or_helper_call(self, step: Step) -> None:
        """A helper call: native code from `natives` where it applies, else the Python helper."""
        native = self.natives.get(step.insn.imm)
        if native is not None:
            slow, done = Label("native.slow"), Label("native.done")
            if native(self, step, slow):
                self.a.jmp(done)
                self.a.bind(slow)
                self._helper_call(step.slot)
                self.a.bind(done)
                return
        self._helper_call(step.slot)

    def _helper_call(self, pc: int) -> None:
        """Call the Python helper dispatcher: (r1..r5, pc) -> r0; then honour `RunBlock.status`."""
        a = self.a
        a.mov(Gp.R9, pc)
        for reg in _ARG_REGS:
            a.push(reg)
        a.alu(Alu.SUB, Gp.RSP, 8)
        a.call(rip(DataRef(DATA_HELPER_CB)))
        a.alu(Alu.ADD, Gp.RSP, 8)
        for reg in reversed(_ARG_REGS):
            a.pop(reg)
        a.alu(Alu.CMP, block("status"), 0)
        a.jcc(Cond.NE, self._helper_status_stub())

    def _helper_status_stub(self) -> Label:
        label = Label("helper.status")
        epilogue = self.epilogue

        def stub() -> None:
            a = self.a
            a.bind(label)
            pending = Label("helper.pending")
            a.alu(Alu.CMP, block("status"), int(HelperStatus.TAIL_CALL_DONE))
            a.jcc(Cond.NE, pending)
            a.mov(block("status"), 0)
            a.jmp(epilogue)  # r0 (rax) is the tail-called program's result
            a.bind(pending)
            a.mov(Gp.RAX, int(Status.PENDING), 32)
            a.jmp(self.exit_common)
        self.stubs.append(stub)
        return label

    def _callx(self, step: Step) -> None:
        """callx: a subprogram by its code address (natively), else a helper by id (in Python)."""
        a = self.a
        helper, done = Label("callx.helper"), Label("callx.done")
        reg = REG[step.insn.dst]
        a.mov(Gp.R11, reg)
        a.call(self.callx_resolve)
        a.test(Gp.R11, Gp.R11)
        a.jcc(Cond.E, helper)
        self._bpf_call(step.slot, Gp.R11)
        a.jmp(done)
        a.bind(helper)
        a.mov(block("store_val"), reg)
        self._helper_call(step.slot)
        a.bind(done)

    def _callx_resolver(self) -> None:
        """r11 = native address of the function whose code address is r11, or 0 (clobbers r10)."""
        a = self.a
        loop, found, missing = Label("callx.loop"), Label("callx.found"), Label("callx.missing")
        a.bind(self.callx_resolve)
        a.lea(Gp.R10, rip(DataRef(DATA_CALLX)))
        a.bind(loop)
        a.alu(Alu.CMP, Mem(Gp.R10, 8), 0)
        a.jcc(Cond.E, missing)
        a.alu(Alu.CMP, Gp.R11, Mem(Gp.R10))
        a.jcc(Cond.E, found)
        a.alu(Alu.ADD, Gp.R10, 16)
        a.jmp(loop)
        a.bind(found)
        a.mov(Gp.R11, Mem(Gp.R10, 8))
        a.ret()
        a.bind(missing)
        a.alu(Alu.XOR, Gp.R11, Gp.R11, 32)
        a.ret()

    # -- packet loads -----------------------------------------------------------------------------
    def _ld_packet(self, step: Step) -> None:
        """LD_ABS / LD_IND: a big-endian load from the packet data; out of range returns 0 from the
        function (the kernel's rewrite of these instructions)."""
        a = self.a
        insn = step.insn
        size = _SIZE[insn.opcode & 0x18]
        a.alu(Alu.CMP, block("pkt_present"), 0)
        a.jcc(Cond.E, self._error(Status.NO_PACKET, step.slot))
        if step.kind is Kind.LD_ABS:
            a.mov(Gp.R11, insn.imm & 0xFFFFFFFF, 32)
        else:
            a.mov(Gp.R11, REG[insn.src], 32)
            a.alu(Alu.ADD, Gp.R11, insn.imm & 0xFFFFFFFF, 32)
        out = Label("ld_packet.out")
        a.alu(Alu.CMP, Gp.R11, 0x7FFFFFFF)
        a.jcc(Cond.A, out)  # negative offsets (SKF_* areas) are not emulated
        a.lea(Gp.R10, Mem(Gp.R11, size))
        a.alu(Alu.CMP, Gp.R10, block("pkt_len"))
        a.jcc(Cond.A, out)
        a.alu(Alu.ADD, Gp.R11, block("pkt_data"))
        if size == 1:
            a.movzx(Gp.RAX, Mem(Gp.R11), 8)
        elif size == 2:
            a.movzx(Gp.RAX, Mem(Gp.R11), 16)
            a.shift(Shift.ROR, Gp.RAX, 8, 16)
            a.movzx(Gp.RAX, Gp.RAX, 16)
        else:
            a.mov(Gp.RAX, Mem(Gp.R11), 32)
            a.bswap(Gp.RAX, 32)
        epilogue = self.epilogue

        def stub() -> None:
            self.a.bind(out)
            self.a.alu(Alu.XOR, Gp.RAX, Gp.RAX, 32)
            self.a.jmp(epilogue)
        self.stubs.append(stub)

    # -- memory -----------------------------------------------------------------------------------
    def _checked(self, step: Step, base: int, off: int, site: MemSite,
                 access: Callable[[Mem], None], before_miss: Callable[[], None] | None = None,
                 after_value: Callable[[], None] | None = None) -> None:
        """Emit `access` on [base + off], behind a bounds check unless the access is proven safe.
        `before_miss` saves what the Python fallback needs; `after_value` consumes a value it (or a
        context field) produced in r11."""
        a = self.a
        size = site.size
        in_frame = -MAX_BPF_STACK <= off and off + size <= 0
        if self.unsafe or step.slot in self.proven_safe or (base == 10 and in_frame):
            self.unchecked += 1
            access(Mem(REG[base], off))
            return
        self.checked += 1
        index = len(self.sites)
        origin, dynamic = self.origins.get(step.slot), self.dynamic.get(step.slot)
        limit = 0 if dynamic is None else dynamic[1] - size + 1  # addr - value start < limit: inside
        if base != 10 and origin is not None:
            site = replace(site, origin=origin)
        elif base != 10 and dynamic is not None and limit < 1 << 31:
            site = replace(site, shadow=self.shadows[dynamic[0]])
        self.sites.append(site)
        cache = self.caches + CACHE_ENTRY * index
        forced = base == 10 or site.origin is not None  # out of the frame or of a map value: Python
        resume, after, miss, leave = (Label("mem.resume"), Label("mem.after"), Label("mem.miss"),
                                      Label("mem.leave"))
        a.lea(Gp.R11, Mem(REG[base], off))
        if forced:
            a.jmp(miss)
        else:
            if site.shadow is not None:  # out of the lookup's last value: to Python, forced
                a.mov(Gp.R10, Gp.R11)
                a.alu(Alu.SUB, Gp.R10, rip(DataRef(site.shadow)))
                a.alu(Alu.CMP, Gp.R10, max(limit, 0))
                a.jcc(Cond.AE, leave)
            a.mov(Gp.R10, Gp.R11)
            a.alu(Alu.SUB, Gp.R10, rip(DataRef(cache)))
            a.alu(Alu.CMP, Gp.R10, rip(DataRef(cache + 8)))
            a.jcc(Cond.AE, miss)
        a.bind(resume)
        access(Mem(Gp.R11))
        a.bind(after)
        info = mem_info(index, site.kind, size, forced=forced, signed=site.signed)

        def stub() -> None:
            for label, to_python in ((miss, forced), (leave, True))[:2 if site.shadow is not None else 1]:
                a.bind(label)
                if before_miss is not None:
                    before_miss()
                a.mov(Gp.R10, info | (FORCED if to_python else 0), 32)
                a.call(self.memforce if to_python else self.memslow)
                a.test(Gp.R10, Gp.R10, 32)
                a.jcc(Cond.E, resume)
                if after_value is not None:
                    after_value()
                a.jmp(after)
        self.stubs.append(stub)

    def _load(self, step: Step, dst: int, base: int, off: int, size: int, signed: bool) -> None:
        a = self.a
        d = REG[dst]

        def access(m: Mem) -> None:
            if size == 8:
                a.mov(d, m)
            elif signed:
                a.movsx(d, m, size * 8)
            elif size == 4:
                a.mov(d, m, 32)
            else:
                a.movzx(d, m, size * 8)

        self._checked(step, base, off, MemSite(step.slot, MemKind.LOAD, size, signed), access,
                      after_value=lambda: a.mov(d, Gp.R11))

    def _store(self, step: Step, base: int, off: int, size: int, src: int | None, imm: int) -> None:
        a = self.a
        bits = size * 8

        def access(m: Mem) -> None:
            if src is None:
                a.mov(m, imm if size == 8 else imm & ((1 << bits) - 1), bits)
            else:
                a.mov(m, REG[src], bits)

        def save() -> None:
            a.mov(block("store_val"), imm if src is None else REG[src])

        self._checked(step, base, off, MemSite(step.slot, MemKind.STORE, size), access, save)

    def _atomic(self, step: Step) -> None:
        a = self.a
        insn = step.insn
        size = _SIZE[insn.opcode & 0x18]
        bits = size * 8
        op = insn.imm
        if op == AtomicOp.LOAD_ACQ:  # x86 is TSO: plain loads and stores are acquire/release
            self._load(step, insn.dst, insn.src, insn.off, size, False)
            return
        if op == AtomicOp.STORE_REL:
            self._store(step, insn.dst, insn.off, size, insn.src, 0)
            return
        s = REG[insn.src]

        def access(m: Mem) -> None:
            ops.atomic_rmw(a, op, m, s, bits)

        def save() -> None:
            a.mov(block("store_val"), s)
            a.mov(block("store_r0"), Gp.RAX)

        def result() -> None:
            if op == AtomicOp.CMPXCHG:
                a.mov(Gp.RAX, Gp.R11)
            elif op & ATOMIC_FETCH:
                a.mov(s, Gp.R11)

        self._checked(step, insn.dst, insn.off, MemSite(step.slot, MemKind.ATOMIC, size, atomic=op),
                      access, save, result)

    # -- the memory slow path ---------------------------------------------------------------------
    def _memslow(self) -> None:
        """In: r11 = address, r10 = info (site << 8 | kind << 4 | size). Out: r10 = 0 and r11 = the
        address to access (the site's cache filled for plain regions), or r10 = 1 and r11 = a value
        (a load answered from a field list or by Python; a store or atomic done by Python)."""
        a = self.a
        saved = (Gp.RAX, Gp.RCX, Gp.RDX, Gp.RSI, Gp.RDI, Gp.R8)
        scan, nxt, special, python, done = (Label("ms.scan"), Label("ms.next"), Label("ms.special"),
                                            Label("ms.python"), Label("ms.done"))
        hit, fields, fnext, fend, fail = (Label("ms.hit"), Label("ms.fields"), Label("ms.fnext"),
                                          Label("ms.fend"), Label("ms.fail"))
        a.bind(self.memforce)  # straight to Python (which raises the fault)
        for reg in saved:
            a.push(reg)
        a.jmp(python)
        a.bind(self.memslow)
        for reg in saved:
            a.push(reg)
        a.mov(Gp.RSI, block("table"))
        a.mov(Gp.RCX, block("table_len"))
        a.mov(Gp.RDX, Gp.R10, 32)
        a.alu(Alu.AND, Gp.RDX, 15, 32)  # size
        a.bind(scan)
        a.test(Gp.RCX, Gp.RCX)
        a.jcc(Cond.E, python)
        a.mov(Gp.RAX, Gp.R11)
        a.alu(Alu.SUB, Gp.RAX, Mem(Gp.RSI))  # t = addr - start (huge when addr < start)
        a.alu(Alu.CMP, Gp.RAX, Mem(Gp.RSI, 8))
        a.jcc(Cond.AE, nxt)  # t >= length
        a.mov(Gp.RDI, Mem(Gp.RSI, 8))
        a.alu(Alu.SUB, Gp.RDI, Gp.RAX)
        a.alu(Alu.CMP, Gp.RDI, Gp.RDX)
        a.jcc(Cond.B, nxt)  # length - t < size: the access runs past the end
        a.mov(Gp.RDI, Mem(Gp.RSI, 16))  # flags
        a.test(Gp.RDI, int(RegionFlag.SPECIAL), 32)
        a.jcc(Cond.NE, special)
        a.test(Gp.R10, 0x20, 32)  # stores and atomics need a writable region
        a.jcc(Cond.E, hit)
        a.test(Gp.RDI, int(RegionFlag.WRITABLE), 32)
        a.jcc(Cond.E, python)  # read-only: Python raises the fault
        a.bind(hit)
        a.mov(Gp.RAX, Mem(Gp.RSI))  # cache = (start, length - size + 1)
        a.mov(Gp.RDI, Mem(Gp.RSI, 8))
        a.alu(Alu.SUB, Gp.RDI, Gp.RDX)
        a.inc(Gp.RDI)
        a.mov(Gp.RCX, Gp.R10, 32)
        a.shift(Shift.SHR, Gp.RCX, 8, 32)
        a.shift(Shift.SHL, Gp.RCX, 4)
        a.lea(Gp.RDX, rip(DataRef(self.caches)))
        a.mov(Mem(Gp.RDX, 0, Gp.RCX), Gp.RAX)
        a.mov(Mem(Gp.RDX, 8, Gp.RCX), Gp.RDI)
        a.alu(Alu.XOR, Gp.R10, Gp.R10, 32)
        a.jmp(done)
        a.bind(nxt)
        a.alu(Alu.ADD, Gp.RSI, REGION_ENTRY)
        a.dec(Gp.RCX)
        a.jmp(scan)
        # A hooked region (a context): loads of its pointer fields come from its field list.
        a.bind(special)
        a.test(Gp.R10, 0x20 | SIGNED, 32)  # stores, atomics and sign-extending loads: Python
        a.jcc(Cond.NE, python)
        a.mov(Gp.RSI, Mem(Gp.RSI, 24))
        a.test(Gp.RSI, Gp.RSI)
        a.jcc(Cond.E, fend)
        a.bind(fields)
        a.mov(Gp.RCX, Mem(Gp.RSI, 4), 32)  # field size; 0 ends the list
        a.test(Gp.RCX, Gp.RCX, 32)
        a.jcc(Cond.E, fend)
        a.alu(Alu.CMP, Gp.RAX, Mem(Gp.RSI), 32)
        a.jcc(Cond.NE, fnext)
        a.alu(Alu.CMP, Gp.RCX, Gp.RDX, 32)
        a.jcc(Cond.NE, python)  # a field read with another size: Python decides
        a.mov(Gp.R11, Mem(Gp.RSI, 8))
        a.mov(Gp.R10, 1, 32)
        a.jmp(done)
        a.bind(fnext)
        a.alu(Alu.ADD, Gp.RSI, 16)
        a.jmp(fields)
        a.bind(fend)
        a.test(Gp.RDI, int(RegionFlag.PLAIN_LOADS), 32)
        a.jcc(Cond.E, python)
        a.alu(Alu.XOR, Gp.R10, Gp.R10, 32)  # plain bytes of the context (never cached)
        a.jmp(done)
        a.bind(python)
        a.alu(Alu.SUB, Gp.RSP, 8)
        a.mov(Gp.RDI, Gp.R10)
        a.mov(Gp.RSI, Gp.R11)
        a.call(rip(DataRef(DATA_MEM_CB)))
        a.alu(Alu.ADD, Gp.RSP, 8)
        a.alu(Alu.CMP, Gp.RAX, int(MemStatus.VALUE), 32)
        a.jcc(Cond.NE, fail)
        a.mov(Gp.R11, block("value"))
        a.mov(Gp.R10, 1, 32)
        a.bind(done)
        for reg in reversed(saved):
            a.pop(reg)
        a.ret()
        a.bind(fail)
        a.mov(Gp.RAX, int(Status.PENDING), 32)
        a.jmp(self.exit_common)


def instruction_of(program: LoadedProgram, pc: int) -> Instruction | None:
    step = program.steps[pc] if 0 <= pc < program.nslots else None
    return step.insn if step is not None else None

