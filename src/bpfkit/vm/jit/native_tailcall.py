"""bpf_tail_call in native code: a jump straight into the target program's JIT code.

The VM's semantics (`RunState.tail_call`, the interpreter's): the target runs from its first
instruction in the caller's frame (same call depth, frame zeroed by its prologue) with r1 = ctx and
r2-r5 = 0, counts against MAX_TAIL_CALL_CNT (33) tail calls per run, and its r0 is returned by the
calling function; a failed tail call (no program at the index, index out of range, count exhausted)
gives r0 = -ENOENT and execution continues.

Each prog array a compiled program refers to has a native table (per VM): 16 bytes per index, the
native address of the target's function and its number in the run's program list. 1 means "no
program" (-ENOENT natively), 0 "ask Python": a target that is not a VM program, that refuses this run's
context (`VmProgram.check_tail_call` raises the VM's error on the Python path) or that cannot be
compiled. The tables are filled when a native run starts (`begin_run`), for that run's context: the
targets are compiled then, for the same context variant (`native_ctx`), refreshed with the caller when
the host memory changes (`JitRun.linked`) and kept from being unmapped until the run ends.

Faults detected by native code name the program they happened in: the call site stores the target's
number in a per-VM cell that `JitRun` reads after a failed entry (`current_program`).
"""

from __future__ import annotations

import ctypes
import errno
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from bpfkit._records import field, record
from bpfkit.errors import BpfkitError
from bpfkit.uapi.enums import Helper
from bpfkit.uapi.insn import MAX_TAIL_CALL_CNT
from bpfkit.vm.jit.compile import Compiler, NativeHelper, block
from bpfkit.vm.jit.natives_common import imm64, program_maps
from bpfkit.vm.jit.x86 import Alu, Cond, Gp, Label, Mem, Shift
from bpfkit.vm.maps import ProgArrayMap
from bpfkit.vm.program import LoadedProgram, Step
from bpfkit.vm.runtime import RunState

if TYPE_CHECKING:
    from bpfkit.vm.jit.runner import JitProgram, JitRun, JitRuntime

ENTRY = 16
"""Bytes per table entry: u64 native address (0: Python decides, 1: no program), u64 program number."""
NO_PROGRAM = 1
ENOENT = -errno.ENOENT


@record(frozen=False, eq=False)
class _Table:
    """The native table of one prog array in one VM."""

    map: ProgArrayMap
    buf: ctypes.Array[ctypes.c_char]
    signature: object = None
    """What the table was last filled for (targets, context): a run with the same one reuses it."""

    @property
    def address(self) -> int:
        return ctypes.addressof(self.buf)


@record(frozen=False, eq=False)
class _Tables:
    """The tail-call state of one VM's JIT: tables by prog array, the current-program cell and the
    programs native code of the current run may be running."""

    tables: dict[int, _Table] = field(default_factory=dict)
    cell: ctypes.Array[ctypes.c_uint64] = field(default_factory=lambda: (ctypes.c_uint64 * 1)())
    programs: list[JitProgram] = field(default_factory=list)
    """Every program a table has named, numbered from 1 by position; kept (their code may be closed),
    so numbers and ids stay unique."""

    @property
    def cell_address(self) -> int:
        return ctypes.addressof(self.cell)


_STATE: weakref.WeakKeyDictionary[JitRuntime, _Tables] = weakref.WeakKeyDictionary()


def _state(runtime: JitRuntime) -> _Tables:
    state = _STATE.get(runtime)
    if state is None:
        state = _STATE[runtime] = _Tables()
    return state


def _table(runtime: JitRuntime, prog_array: ProgArrayMap) -> _Table:
    state = _state(runtime)
    table = state.tables.get(id(prog_array))
    if table is None or table.map is not prog_array:
        size = ENTRY * prog_array.max_entries
        table = state.tables[id(prog_array)] = _Table(prog_array, ctypes.create_string_buffer(size))
    return table


# -- code -------------------------------------------------------------------------------------------
def tailcall_helpers(loaded: LoadedProgram, runtime: JitRuntime,
                     keep: list[object]) -> dict[int, NativeHelper]:
    """The native bpf_tail_call for `loaded`, when it refers to prog arrays (else nothing)."""
    arrays = program_maps(loaded, runtime.host.mem, ProgArrayMap)
    if not arrays:
        return {}
    tables = [_table(runtime, m) for m in arrays]
    state = _state(runtime)
    keep.extend(tables)
    keep.append(state)

    def emit(c: Compiler, step: Step, slow: Label) -> bool:
        _emit(c, tables, state.cell_address, slow)
        return True

    return {int(Helper.TAIL_CALL): emit}


def _emit(c: Compiler, tables: list[_Table], cell: int, slow: Label) -> None:
    """r1 = ctx (rdi), r2 = prog array (rsi), r3 = index (rdx)."""
    a = c.a
    fail = Label("tail.enoent")
    found = [Label(f"tail.map{i}") for i in range(len(tables))]
    for table, label in zip(tables, found, strict=True):
        a.mov(Gp.R11, imm64(table.map.address))
        a.alu(Alu.CMP, Gp.RSI, Gp.R11)
        a.jcc(Cond.E, label)
    a.jmp(slow)  # another map (or not a map): Python reports it
    entry = Label("tail.entry")
    for table, label in zip(tables, found, strict=True):
        a.bind(label)
        a.mov(Gp.R10, Gp.RDX, 32)  # the index is a u32
        a.alu(Alu.CMP, Gp.R10, table.map.max_entries)
        a.jcc(Cond.AE, fail)
        a.mov(Gp.R11, imm64(table.address))
        a.jmp(entry)
    a.bind(entry)
    a.shift(Shift.SHL, Gp.R10, 4)
    a.alu(Alu.ADD, Gp.R11, Gp.R10)
    a.mov(Gp.R10, Mem(Gp.R11, 8))  # the target's number
    a.mov(Gp.R11, Mem(Gp.R11))  # its native code
    a.test(Gp.R11, Gp.R11)
    a.jcc(Cond.E, slow)
    a.alu(Alu.CMP, Gp.R11, NO_PROGRAM)
    a.jcc(Cond.E, fail)
    a.alu(Alu.CMP, block("tail"), MAX_TAIL_CALL_CNT)
    a.jcc(Cond.AE, fail)
    a.inc(block("tail"))
    a.mov(Gp.R9, imm64(cell))
    a.push(Mem(Gp.R9))  # the caller's number, restored when the target returns
    a.mov(Mem(Gp.R9), Gp.R10)
    for reg in (Gp.RDI, Gp.RSI, Gp.RDX, Gp.RCX, Gp.R8):  # 48 bytes pushed: rsp stays 16-aligned
        a.push(reg)
    for reg in (Gp.RSI, Gp.RDX, Gp.RCX, Gp.R8):  # r1 = ctx, r2-r5 = 0
        a.alu(Alu.XOR, reg, reg, 32)
    a.dec(block("depth"))  # the target's prologue takes the caller's depth (and frame) again
    a.call(Gp.R11)
    a.inc(block("depth"))
    a.alu(Alu.ADD, Gp.RSP, 40)
    a.mov(Gp.R9, imm64(cell))
    a.pop(Mem(Gp.R9))
    a.jmp(c.epilogue)  # the calling function returns the target's r0
    a.bind(fail)
    a.mov(Gp.RAX, ENOENT)


# -- runs -------------------------------------------------------------------------------------------
ProgramFor = Callable[[LoadedProgram, "JitRuntime", RunState], "JitProgram"]


@record(frozen=False, eq=False)
class RunToken:
    """What `begin_run` changed, for `end_run` to undo."""

    runtime: JitRuntime
    pinned: list[JitProgram]
    saved: list[tuple[_Table, bytes, object]] | None


def begin_run(run: JitRun) -> RunToken:
    """Fill the tables of `run`'s VM for its context (compiling targets as needed), before native code
    runs. A nested run of the same VM (a helper running another program) restores the outer run's
    contents in `end_run`."""
    from bpfkit.vm.jit.runner import program_for

    runtime = run.runtime
    state = _state(runtime)
    nested = runtime.host.active > 1
    saved = [(t, bytes(t.buf), t.signature) for t in state.tables.values()] if nested else None
    live: dict[int, JitProgram] = {}
    done: set[int] = set()
    while True:  # compiling a target may add the tables of its own prog arrays
        pending = [t for t in list(state.tables.values()) if id(t) not in done]
        if not pending:
            break
        for table in pending:
            done.add(id(table))
            for jp in _fill(table, run, state, program_for):
                live[id(jp)] = jp
    token = RunToken(runtime, list(live.values()), saved)
    for jp in token.pinned:
        jp.refresh()
        jp.hold()  # closed meanwhile, it is unmapped when the run ends
        run.linked.append(jp)
    return token


def _fill(table: _Table, run: JitRun, state: _Tables, program_for: ProgramFor) -> list[JitProgram]:
    """Write `table` for `run` (unless it already holds the same); the programs it names."""
    rt = run.rt
    entries = [(index, _native_target(target, run, program_for))
               for index, target in sorted(table.map.programs.items())
               if 0 <= index < table.map.max_entries]
    named = [jp for _, jp in entries if jp is not None]
    for jp in named:
        if jp not in state.programs:
            state.programs.append(jp)  # numbers stay stable across runs
    signature = (tuple((i, id(jp)) for i, jp in entries), type(rt.context), id(rt.mem))
    if signature == table.signature:
        return named
    raw = bytearray((NO_PROGRAM.to_bytes(8, "little") + bytes(8)) * table.map.max_entries)
    for index, target in entries:
        value = bytes(ENTRY) if target is None else target.functions[0].to_bytes(8, "little") + \
            (state.programs.index(target) + 1).to_bytes(8, "little")
        raw[ENTRY * index:ENTRY * index + ENTRY] = value
    ctypes.memmove(table.buf, bytes(raw), len(raw))
    table.signature = signature
    return named


def _native_target(target: object, run: JitRun, program_for: ProgramFor) -> JitProgram | None:
    """The compiled target for this run, or None when the Python path must handle it."""
    loaded = getattr(target, "loaded", None)
    if not isinstance(loaded, LoadedProgram):
        return None
    guard = getattr(target, "check_tail_call", None)
    try:
        if guard is not None:
            guard(run.rt)
        jp = program_for(loaded, run.runtime, run.rt)
    except BpfkitError:
        return None
    return jp if 0 in jp.functions and not jp.closed else None


def end_run(token: RunToken) -> None:
    """Undo `begin_run`: unpin the targets, restore an outer run's tables."""
    for jp in token.pinned:
        jp.release()
    if token.saved is not None:
        for table, raw, signature in token.saved:
            ctypes.memmove(table.buf, raw, len(raw))
            table.signature = signature


def swap_current(runtime: JitRuntime, value: int) -> int:
    """Set the current-program cell (0: the program the entry was made into); the old value."""
    state = _STATE.get(runtime)
    if state is None:
        return 0
    old = int(state.cell[0])
    state.cell[0] = value
    return old


def current_program(runtime: JitRuntime) -> LoadedProgram | None:
    """The program native code was running in when it left (None: the one the entry was made into)."""
    state = _STATE.get(runtime)
    if state is None:
        return None
    number = int(state.cell[0])
    if 1 <= number <= len(state.programs):
        return state.programs[number - 1].loaded
    return None
