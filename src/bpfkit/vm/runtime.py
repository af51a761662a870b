"""State shared by the engines during one run: memory, stack frames, counters, helpers, tail calls.

Both engines (the interpreter and the translated code) drive the same `RunState`, so frames, budgets
and helpers behave identically in each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from bpfkit._records import record
from bpfkit.errors import BpfkitError, VmError, VmLimitError, VmMemoryError
from bpfkit.uapi.insn import MAX_BPF_STACK, MAX_CALL_FRAMES, MAX_TAIL_CALL_CNT
from bpfkit.vm.memory import SLOT_SHIFT, STACK_SLOT0, AddressSpace, RegionKind

if TYPE_CHECKING:
    from bpfkit.vm.program import LoadedProgram

BPF_MAX_LOOPS = 8 * 1024 * 1024
"""`BPF_MAX_LOOPS` (include/linux/bpf.h): the may_goto budget each subprogram invocation starts with.
The kernel stores it in a hidden stack slot in the subprogram's prologue (verifier.c do_misc_fixups);
may_goto jumps when the count is 0 and otherwise decrements it and falls through."""

DEFAULT_BUDGET = 50_000_000
"""Instructions one run may execute before `VmLimitError` (None in the API lifts the limit)."""

U64 = 0xFFFFFFFFFFFFFFFF
_ZERO_STACK = bytes(MAX_BPF_STACK)

HelperFn = Callable[["RunState", int, int, int, int, int], int]
"""A helper: (run state, r1..r5) -> r0."""


class ProgramExit(Exception):
    """Raised by a helper to end the whole run at once with r0 = `value` (not a BpfkitError: it never
    leaves the VM)."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value & U64


def run_guarded(run: Callable[[], int]) -> int:
    """r0 of `run()` (one engine run), or a BpfkitError: a ProgramExit gives its value, Python's
    recursion limit is a VmLimitError, and anything else escaping an engine is a bug of the VM,
    reported as VmError (never the program's fault)."""
    try:
        return run()
    except ProgramExit as stop:
        return stop.value
    except BpfkitError:
        raise
    except RecursionError:
        raise VmLimitError("Python recursion limit reached (calls, callbacks and tail calls "
                           "nested too deeply)") from None
    except Exception as exc:  # pragma: no cover - a bug in the VM
        raise VmError(f"internal error in the VM: {exc!r}") from exc


class TailCallDone(int):
    """A helper result meaning "this function is over: return this value" (a tail call that
    succeeded). An int subclass so helpers keep the plain `-> int` signature."""

    @property
    def value(self) -> int:
        return int(self) & U64


class Engine(Protocol):
    """What the run state needs from an engine: run a function of a program to its exit."""

    def call(self, rt: RunState, program: LoadedProgram, entry: int, args: tuple[int, ...]) -> int:
        """Run the function starting at slot `entry` with r1..r5 = args (new frame); return r0."""
        ...


@record(frozen=False)
class Packet:
    """The packet of a networking run: `frame` holds headroom + data; [meta, data, end) are offsets."""

    frame: bytearray
    meta: int
    data: int
    end: int
    region: object = None  # the mapped Region of [meta, end)

    @property
    def payload(self) -> bytes:
        return bytes(self.frame[self.data:self.end])


def map_stacks(mem: AddressSpace) -> list[bytearray]:
    """The stack frames of an address space (made on first use): one 512-byte region per depth."""
    stacks = []
    for depth in range(MAX_CALL_FRAMES):
        region = mem.regions.get(STACK_SLOT0 + depth)
        if region is None or not isinstance(region.buf, bytearray):
            region = mem.map_at(STACK_SLOT0 + depth, bytearray(MAX_BPF_STACK), RegionKind.STACK,
                                name=f"frame {depth}")
        assert isinstance(region.buf, bytearray)
        stacks.append(region.buf)
    return stacks


class RunState:
    """Everything one run of a program sees besides its registers."""

    def __init__(self, mem: AddressSpace, engine: Engine, program: LoadedProgram, *,
                 helpers: Mapping[int, HelperFn], budget: int | None = DEFAULT_BUDGET,
                 host: object = None) -> None:
        self.mem = mem
        self.rb = mem.readable
        self.wb = mem.writable
        self.engine = engine
        self.program = program
        self.helpers = helpers
        self.budget = budget if budget is not None else 1 << 62
        self.n = 0
        self.depth = -1
        self.tail_calls = 0
        self.ctx = 0
        self.packet: Packet | None = None
        self.host = host  # the Vm (maps, programs, clock, output), for helpers
        self.cpu = 0
        self.context: object = None  # the bpfkit.vm.context.Context of the run
        self.stacks = map_stacks(mem)

    # -- frames -----------------------------------------------------------------------------------
    def push_frame(self) -> int:
        """Enter a new function: a zeroed 512-byte stack frame; returns its r10 (the frame's top)."""
        depth = self.depth + 1
        if depth >= MAX_CALL_FRAMES:
            raise VmLimitError(f"call depth exceeds {MAX_CALL_FRAMES} frames (MAX_CALL_FRAMES)")
        self.depth = depth
        self.stacks[depth][:] = _ZERO_STACK
        return ((STACK_SLOT0 + depth) << SLOT_SHIFT) + MAX_BPF_STACK

    def pop_frame(self) -> None:
        self.depth -= 1

    def over_budget(self) -> VmLimitError:
        return VmLimitError(f"the instruction budget of {self.budget} was exhausted")

    # -- calls from helpers -----------------------------------------------------------------------
    def call_function(self, addr: int, *args: int) -> int:
        """Call the subprogram whose code address is `addr` (a callback) with r1.. = args."""
        entry = self.program.function_of(addr)
        if entry is None:
            raise VmError(f"{addr:#x} is not the address of a function of {self.program.name}")
        padded = ((*tuple(a & U64 for a in args), 0, 0, 0, 0, 0))[:5]
        return self.engine.call(self, self.program, entry, padded)

    def tail_call(self, ctx: int, target: LoadedProgram | None) -> int | None:
        """Run `target` in place of the current function; None if the tail call fails (no program,
        or MAX_TAIL_CALL_CNT tail calls already made), in which case execution continues."""
        if target is None or self.tail_calls >= MAX_TAIL_CALL_CNT:
            return None
        self.tail_calls += 1
        caller = self.program
        self.program = target
        self.depth -= 1  # the target reuses the current frame
        try:
            return self.engine.call(self, target, 0, (ctx & U64, 0, 0, 0, 0))
        finally:
            self.depth += 1
            self.program = caller

    # -- slow paths of the translated engine ------------------------------------------------------
    def at(self, err: VmError, pc: int) -> VmError:
        """`err` with the pc and instruction of the current program attached (if it has none)."""
        if err.pc is not None:
            return err
        step = self.program.steps[pc] if 0 <= pc < self.program.nslots else None
        return type(err)(err.message, pc, step.insn if step is not None else None)

    def slow_load(self, addr: int, size: int, signed: bool, pc: int) -> int:
        """A load the fast path could not do: a hooked region (the context) or a fault."""
        try:
            return self.mem.load(addr & U64, size, signed)
        except VmError as err:
            raise self.at(err, pc) from None

    def slow_store(self, addr: int, size: int, value: int, pc: int) -> None:
        try:
            self.mem.store(addr & U64, size, value)
        except VmError as err:
            raise self.at(err, pc) from None

    def atomic(self, pc: int, imm: int, size: int, addr: int, src: int, r0: int) -> tuple[int, int]:
        """A read-modify-write atomic; returns the new (src, r0)."""
        from bpfkit.vm.alu import atomic_rmw

        addr &= U64
        try:
            old = self.mem.load(addr, size)
            new, src_out, r0_out = atomic_rmw(imm, old, src, r0, size)
            self.mem.store(addr, size, new)
        except VmError as err:
            raise self.at(err, pc) from None
        return (src if src_out is None else src_out), (r0 if r0_out is None else r0_out)

    def over(self, before: int, slot: int) -> VmLimitError:
        """The budget ran out inside the straight-line segment starting at `slot`, entered with
        `before` instructions executed: name the instruction the interpreter would stop at."""
        program = self.program
        for _ in range(max(0, self.budget - before)):
            step = program.steps[slot]
            if step is None:
                break
            slot = step.next
        self.n = self.budget + 1
        return self.at(self.over_budget(), slot)  # type: ignore[return-value]

    def callx_target(self, value: int) -> int | HelperFn:
        """What `callx` with `value` calls: a subprogram's entry slot (its code address) or a helper
        (a small value is a helper id: the conformance suite's convention)."""
        entry = self.program.function_of(value)
        if entry is not None:
            return entry
        fn = self.helpers.get(value) if value < 1 << 32 else None
        if fn is None:
            raise VmError(f"callx to {value:#x}: neither a function of this program nor a helper")
        return fn

    def fell_off(self, pc: int) -> VmError:
        return VmError("execution fell off the end of the program", pc)

    # -- packet access for LD_ABS / LD_IND ----------------------------------------------------------
    def load_packet(self, offset: int, size: int) -> int | None:
        """Big-endian load of `size` bytes at `offset` from the packet data; None when out of range
        (the kernel's rewrite of LD_ABS/LD_IND then returns 0 from the program)."""
        pkt = self.packet
        if pkt is None:
            raise VmMemoryError("LD_ABS/LD_IND used without packet data")
        offset &= 0xFFFFFFFF
        if offset >= 0x80000000:  # negative offsets (SKF_* ancillary areas) are not emulated
            return None
        start = pkt.data + offset
        if start + size > pkt.end:
            return None
        return int.from_bytes(pkt.frame[start:start + size], "big")
