"""Running JIT code: compiled programs, the callbacks native code makes into Python, and runs.

A `JitProgram` is a `LoadedProgram` compiled for one VM's memory: its code, data area and two ctypes
callbacks (helper calls; memory accesses native code cannot do itself). A `JitRun` is one `test_run`:
its `RunBlock`, its `RunState` (what helpers see) and the exception a callback left pending. Callbacks
find their run through a per-thread stack, so runs on different threads or VMs never mix.

The native entry is called through `ctypes.PYFUNCTYPE`, which keeps the GIL held: native code and the
Python it calls back are one thread of execution, and a VM's lock keeps two threads off one VM.
Callbacks never let an exception escape into ctypes: they park it in the run, tell native code to stop,
and the entry's caller raises it.
"""

from __future__ import annotations

import ctypes
import struct
import threading
from collections.abc import Collection, Mapping

from bpfkit._records import record
from bpfkit.errors import VmError, VmHelperError, VmLimitError, VmMemoryError
from bpfkit.isa.opcodes import Kind
from bpfkit.uapi.insn import MAX_BPF_STACK, MAX_CALL_FRAMES
from bpfkit.vm.alu import atomic_rmw
from bpfkit.vm.jit import native_tailcall
from bpfkit.vm.jit.compile import (
    DATA_CALLX,
    DATA_HELPER_CB,
    DATA_MEM_CB,
    CompiledCode,
    Compiler,
    instruction_of,
)
from bpfkit.vm.jit.fastcalls import fast_runtime
from bpfkit.vm.jit.hostmem import HostMemory
from bpfkit.vm.jit.layout import CACHE_ENTRY, HelperStatus, MemKind, MemStatus, RunBlock, Status, unpack_info
from bpfkit.vm.jit.map_values import proven_value_accesses
from bpfkit.vm.jit.native import CodeBuffer
from bpfkit.vm.jit.native_ctx import packet_pointer_loads, plain_ctx_loads
from bpfkit.vm.jit.natives import native_helpers
from bpfkit.vm.jit.value_origins import value_origins
from bpfkit.vm.memory import SLOT_SHIFT, STACK_SLOT0, AddressSpace
from bpfkit.vm.program import LoadedProgram, Step, code_address
from bpfkit.vm.runtime import U64, ProgramExit, RunState, TailCallDone, run_guarded

_HELPER_CB = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64,
                              ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64)
_MEM_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint64, ctypes.c_uint64)
_ENTRY = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p)

_local = threading.local()


def _runs() -> list[JitRun]:
    stack: list[JitRun] | None = getattr(_local, "runs", None)
    if stack is None:
        stack = _local.runs = []
    return stack


class JitRuntime:
    """The JIT side of one VM: host memory of its address space and the lock serialising its runs."""

    def __init__(self, mem: AddressSpace) -> None:
        self.host = HostMemory(mem)
        self.lock = threading.RLock()


def runtime_for(mem: AddressSpace) -> JitRuntime:
    """The (one) JIT runtime of an address space, kept on the address space itself so that the two
    live and die together."""
    runtime = getattr(mem, "_bpfkit_jit", None)
    if not isinstance(runtime, JitRuntime):
        runtime = JitRuntime(mem)
        mem._bpfkit_jit = runtime  # type: ignore[attr-defined]
    return runtime


class JitProgram:
    """A program compiled to native code for one VM. Close it (or drop it) to unmap the code."""

    def __init__(self, loaded: LoadedProgram, runtime: JitRuntime, *,
                 proven_safe: Collection[int] = (), unsafe: bool = False,
                 options: JitOptions | None = None, packet_loads: Mapping[int, bool] | None = None) -> None:
        self.loaded = loaded
        self.runtime = runtime
        self.unsafe = unsafe
        self._keep: list[object] = []
        natives = native_helpers(loaded, runtime, options or JitOptions(), self._keep)
        origins: dict[int, int] = {}
        dynamic: dict[int, tuple[int, int]] = {}
        if not unsafe:  # accesses inside map values the JIT proves itself (`map_values`), and those
            # that may leave the value their base points into (`value_origins`: never in a verified
            # program)
            proven_safe = frozenset(proven_safe) | proven_value_accesses(loaded, runtime.host.mem)
            if options is None or not options.verified:
                found = value_origins(loaded, runtime.host.mem)
                origins, dynamic = found.offsets, found.dynamic
        compiled = Compiler(loaded, imm64=self._imm64, proven_safe=proven_safe, unsafe=unsafe,
                            natives=natives, packet_loads=packet_loads, origins=origins,
                            dynamic=dynamic).compile()
        self.compiled: CompiledCode = compiled
        self.buffer = CodeBuffer(compiled.code, compiled.data_size)
        self._helper_cb = _HELPER_CB(self._on_helper)
        self._mem_cb = _MEM_CB(self._on_mem)
        base = self.buffer.address
        self.functions = {slot: base + off for slot, off in compiled.functions.items()}
        self.entry_address = base + compiled.entry
        pointers = struct.pack("<QQ", ctypes.cast(self._helper_cb, ctypes.c_void_p).value or 0,
                               ctypes.cast(self._mem_cb, ctypes.c_void_p).value or 0)
        self.buffer.write_data(DATA_HELPER_CB, pointers[:8])
        self.buffer.write_data(DATA_MEM_CB, pointers[8:])
        callx = b"".join(struct.pack("<QQ", code_address(slot), addr) for slot, addr in
                         sorted(self.functions.items()))
        self.buffer.write_data(DATA_CALLX, callx + bytes(16))
        self._entry = _ENTRY(self.entry_address)
        self.epoch = -1
        self._running = 0
        self._close_pending = False

    def _imm64(self, step: Step) -> int:
        """LD_IMM64 of a map value (global data) loads the host address of the value."""
        value = step.value or 0
        if step.insn.src in (2, 6):  # BPF_PSEUDO_MAP_VALUE, BPF_PSEUDO_MAP_IDX_VALUE
            region = self.runtime.host.mem.region_of(value)
            if region is not None:
                hr = self.runtime.host.host(region)
                self._keep.append(hr.keep)
                return (hr.addr + value - region.base) & U64
        return value

    @property
    def code(self) -> bytes:
        """The machine code (for disassembly)."""
        return self.compiled.code

    @property
    def closed(self) -> bool:
        return self.buffer.closed or self._close_pending

    def close(self) -> None:
        """Unmap the code (idempotent). Closed while it runs (from a helper), the code is unmapped when
        the run leaves it."""
        if self._running:
            self._close_pending = True
        else:
            self.buffer.close()

    def hold(self) -> None:
        """Keep the code mapped until `release` (native code may jump into it: tail calls)."""
        self._running += 1

    def release(self) -> None:
        self._running -= 1
        if self._close_pending and not self._running:
            self.buffer.close()

    def __enter__(self) -> JitProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self) -> None:
        """Clear the inline caches if the host memory changed since they were filled."""
        epoch = self.runtime.host.epoch
        if self.epoch != epoch:
            self.buffer.zero_data(self.compiled.caches, CACHE_ENTRY * len(self.compiled.sites))
            self.epoch = epoch

    def enter(self, run: JitRun) -> Status:
        """Call the entry stub with the run block as it has been set up."""
        if self.closed:
            raise VmError(f"the JIT code of {self.loaded.name} was closed")
        self.refresh()
        self._running += 1
        try:
            return Status(self._entry(ctypes.addressof(run.block)))
        finally:
            self._running -= 1
            if self._close_pending and not self._running:
                self.buffer.close()

    # -- callbacks (must never raise) -------------------------------------------------------------
    def _on_helper(self, r1: int, r2: int, r3: int, r4: int, r5: int, pc: int) -> int:
        run = _runs()[-1]
        try:
            return run.helper(self, pc, (r1, r2, r3, r4, r5))
        except BaseException as exc:
            run.pending = exc
            run.block.status = HelperStatus.PENDING
            return 0

    def _on_mem(self, info: int, addr: int) -> int:
        run = _runs()[-1]
        try:
            return run.memory(self, info, addr)
        except BaseException as exc:
            run.pending = exc
            return int(MemStatus.FAULT)


@record
class JitOptions:
    """How a program is compiled: `proven_safe` slots skip their bounds check; `unsafe` skips all.
    `ctx_loads` (`VerifierResult.ctx_loads`) are context loads that run unchecked where they read plain
    context bytes of the run (`native_ctx`); `verified` says the verifier accepted the program, so
    helpers whose pointer arguments it proved (ring buffer records) may run natively;
    `native_helpers=False` sends every helper call through the Python trampoline."""

    proven_safe: frozenset[int] = frozenset()
    unsafe: bool = False
    ctx_loads: frozenset[int] = frozenset()
    verified: bool = False
    native_helpers: bool = True


def set_options(loaded: LoadedProgram, options: JitOptions) -> None:
    """Compile `loaded` with `options` from now on (drops compilations made with other options)."""
    close_programs(loaded)
    loaded.cache["jit_options"] = options


def program_for(loaded: LoadedProgram, runtime: JitRuntime, rt: RunState | None = None) -> JitProgram:
    """The JIT compilation of `loaded` for `runtime`'s VM (compiled once, cached on the program).
    With `rt`, the variant for that run's context (which verified context loads run unchecked);
    without, the variant used last."""
    cache: dict[object, JitProgram] = loaded.cache.setdefault("jit", {})  # type: ignore[assignment]
    options = loaded.cache.get("jit_options")
    if not isinstance(options, JitOptions):
        options = JitOptions()
    if rt is None:
        last = cache.get(id(runtime))
        if last is not None and not last.closed and last.runtime is runtime:
            return last
    ctx = plain_ctx_loads(loaded, options.ctx_loads, rt)
    packet = packet_pointer_loads(loaded, options.ctx_loads, rt)
    key = (id(runtime), ctx, frozenset(packet.items()))
    jp = cache.get(key)
    if jp is None or jp.closed or jp.runtime is not runtime:
        jp = cache[key] = JitProgram(loaded, runtime, proven_safe=options.proven_safe | ctx,
                                     unsafe=options.unsafe, options=options, packet_loads=packet)
    cache[id(runtime)] = jp
    return jp


def close_programs(loaded: LoadedProgram) -> None:
    """Unmap every JIT compilation of `loaded`."""
    cache = loaded.cache.pop("jit", None)
    if isinstance(cache, dict):
        for jp in cache.values():
            jp.close()


def _with_pc(err: VmError, program: LoadedProgram, pc: int) -> VmError:
    if err.pc is not None:
        return err
    return type(err)(err.message, pc, instruction_of(program, pc))


class JitRun:
    """One run (`test_run`) of native code: its block, its run state, a pending exception."""

    def __init__(self, runtime: JitRuntime, rt: RunState) -> None:
        self.runtime = runtime
        self.host = runtime.host
        self.rt = rt
        self.block = RunBlock()
        self.block.budget = rt.budget & U64
        self.pending: BaseException | None = None
        self.linked: list[JitProgram] = []
        """Programs native code enters directly (tail calls): their caches are refreshed with resyncs."""
        self.faulted: LoadedProgram | None = None
        """The program a failed native entry left from, when not the one it was made into."""

    # -- native code calls these ------------------------------------------------------------------
    def helper(self, jp: JitProgram, pc: int, args: tuple[int, ...]) -> int:
        """A helper call from native code (r1..r5 in `args`, host addresses); returns r0 for native
        code. The hot path of every helper that runs in Python: the cheap checks are inlined."""
        block, rt, host = self.block, self.rt, self.host
        block.status = 0  # HelperStatus.OK
        program = jp.loaded
        step = program.steps[pc] if 0 <= pc < program.nslots else None
        if step is None:
            raise VmError(f"helper call from slot {pc}, which is not an instruction")
        depth = block.depth
        rt.depth = depth
        rt.tail_calls = block.tail
        rt.n = (block.budget - block.remain) & U64
        caller, rt.program = rt.program, program
        try:
            if step.kind is Kind.CALLX:
                target = rt.callx_target(block.store_val)
                if isinstance(target, int):
                    raise VmError(f"callx to {block.store_val:#x}: not resolved natively")
                fn = target
            else:
                helper = program.helpers.get(step.insn.imm)
                if helper is None:
                    raise VmHelperError(f"unknown helper function {step.insn.imm}")
                fn = helper
            result = fn(rt, *host.fake_args(args))
        except VmError as err:
            raise _with_pc(err, program, pc) from None
        finally:
            rt.program = caller
            block.depth = depth
            block.tail = rt.tail_calls
        if type(result) is int:  # the common case: a scalar, or a fake address to translate
            value = result & U64
            if (value >> SLOT_SHIFT) in host.mem.regions:
                value = host.to_real(value)
        elif isinstance(result, TailCallDone):
            block.status = HelperStatus.TAIL_CALL_DONE
            value = result.value
        else:
            value = host.to_real(int(result) & U64)
        if host.mem.version != host.version:
            self.resync()
        if jp.epoch != host.epoch:
            jp.refresh()
        return value

    def memory(self, jp: JitProgram, info: int, addr: int) -> int:
        """An access native code could not do: a hooked region, or a fault (raised here)."""
        block, host, mem = self.block, self.host, self.host.mem
        index, kind, size, forced = unpack_info(info)
        program = jp.loaded
        site = jp.compiled.sites[index]
        if site.origin is not None or (forced and site.shadow is not None):
            # out of a map value: the interpreter's address, from the value's start
            if site.origin is not None:
                origin = site.origin
            else:
                assert site.shadow is not None
                origin = addr - ctypes.c_uint64.from_address(jp.buffer.data + site.shadow).value
            fake_or_none = host.origin_fake(addr, origin)
            if fake_or_none is None:
                raise _with_pc(mem.fault(addr & U64, size, kind is not MemKind.LOAD), program, site.slot)
            fake = fake_or_none
        elif forced:  # r10 + a constant outside the frame: the address in the frame's own slot
            depth = int(block.depth)
            top = ((STACK_SLOT0 + depth) << SLOT_SHIFT) + MAX_BPF_STACK
            fake = (top + addr - int(block.frame_tops[depth])) & U64
        else:
            fake = host.describe(addr)
        try:
            if kind is MemKind.LOAD:
                region = mem.region_of(fake)
                value = mem.load(fake, size, site.signed)
                if region is not None and region.load_hook is not None:
                    value = host.to_real(value)
                block.value = value & U64
            elif kind is MemKind.STORE:
                mem.store(fake, size, block.store_val)
            else:
                assert site.atomic is not None
                old = mem.load(fake, size)
                new, src_out, r0_out = atomic_rmw(site.atomic, old, block.store_val, block.store_r0, size)
                mem.store(fake, size, new)
                out = src_out if src_out is not None else r0_out
                block.value = (out or 0) & U64
        except VmError as err:
            raise _with_pc(err, program, site.slot) from None
        self.resync()
        jp.refresh()
        return int(MemStatus.VALUE)

    def resync(self) -> None:
        """Rebuild the region table if a helper or hook changed the mapping."""
        if self.host.sync(self.block, self.rt.packet):
            for jp in self.linked:
                jp.refresh()

    # -- entering native code ---------------------------------------------------------------------
    def call(self, jp: JitProgram, entry: int, args: tuple[int, ...], *, repeat: int = 1,
             nested: bool) -> Status:
        block = self.block
        self.resync()  # a helper calling back may have just mapped a region (a key, a record)
        target = jp.functions.get(entry)
        if target is None:
            raise VmError(f"slot {entry} is not a function of {jp.loaded.name}")
        block.target = target
        for i in range(5):
            block.args[i] = self.host.to_real(args[i] if i < len(args) else 0)
        block.repeat = repeat
        block.nested = 1 if nested else 0
        block.status = HelperStatus.OK
        outer = native_tailcall.swap_current(self.runtime, 0)
        try:
            status = jp.enter(self)
            self.faulted = native_tailcall.current_program(self.runtime) if status else None
        finally:
            native_tailcall.swap_current(self.runtime, outer)
        return status

    def take_pending(self) -> BaseException:
        exc, self.pending = self.pending, None
        if exc is None:
            return VmError("native code reported a pending exception, but none was recorded")
        return exc

    def error(self, status: Status, program: LoadedProgram) -> BaseException:
        """The exception for a non-OK status of a native entry into `program`."""
        block = self.block
        program = self.faulted or program  # a fault in a program entered by a native tail call
        pc = int(block.err_pc)
        insn = instruction_of(program, pc)
        if status is Status.PENDING:
            return self.take_pending()
        if status is Status.BUDGET:
            slot = pc
            for _ in range(block.remain):
                step = program.steps[slot] if slot < program.nslots else None
                if step is None:
                    break
                slot = step.next
            self.rt.n = self.rt.budget + 1
            return VmLimitError(f"the instruction budget of {self.rt.budget} was exhausted", slot,
                                instruction_of(program, slot))
        if status is Status.DEPTH:
            return VmLimitError(f"call depth exceeds {MAX_CALL_FRAMES} frames (MAX_CALL_FRAMES)", pc, insn)
        if status is Status.FELL_OFF:
            return VmError("execution fell off the end of the program", pc)
        if status is Status.NO_PACKET:
            return VmMemoryError("LD_ABS/LD_IND used without packet data", pc, insn)
        return VmError(f"native code returned an unknown status {status}")


class JitEngine:
    """The JIT as an `Engine` for calls made from Python during a run (callbacks, tail calls)."""

    def __init__(self, runtime: JitRuntime) -> None:
        self.runtime = runtime

    def call(self, rt: RunState, program: LoadedProgram, entry: int, args: tuple[int, ...]) -> int:
        run = _runs()[-1] if _runs() else None
        if run is None or run.rt is not rt:
            raise VmError("the JIT engine was called outside a native run of this VM")
        if rt.depth + 1 >= MAX_CALL_FRAMES:
            raise VmLimitError(f"call depth exceeds {MAX_CALL_FRAMES} frames (MAX_CALL_FRAMES)")
        jp = program_for(program, self.runtime, rt)
        block = run.block
        saved = (block.target, tuple(block.args), block.repeat, block.nested, block.depth, block.status)
        depth = rt.depth
        block.depth = depth
        block.tail = rt.tail_calls
        try:
            status = run.call(jp, entry, args, nested=True)
            if status is not Status.OK:
                raise run.error(status, program)
            return int(block.retval)
        finally:
            rt.depth = depth  # the nested run's helper calls moved it
            block.target, args_saved, block.repeat, block.nested, block.depth, block.status = saved
            for i, value in enumerate(args_saved):
                block.args[i] = value


def run_native(rt: RunState, loaded: LoadedProgram, args: tuple[int, ...], repeat: int) -> int:
    """Run `loaded` from slot 0 `repeat` times in native code (the native repeat loop); return r0 of
    the last run and leave the instruction count of the last run in `rt.n`. Raises BpfkitErrors."""
    runtime = runtime_for(rt.mem)
    with runtime.lock:
        jp = program_for(loaded, runtime, rt)
        run = JitRun(runtime, rt)
        runs = _runs()
        runs.append(run)
        runtime.host.active += 1
        token: native_tailcall.RunToken | None = None
        fast = fast_runtime(runtime)
        outer = fast.prepare(rt)  # cpu, PRNG and clock of the native helpers (saving a nested run's)

        def native() -> int:
            nonlocal token
            run.host.sync(run.block, rt.packet, force=True)
            token = native_tailcall.begin_run(run)
            return _repeat(run, jp, args, repeat)

        try:
            return run_guarded(native)
        finally:
            fast.restore(outer)
            if token is not None:
                native_tailcall.end_run(token)
            runs.pop()
            runtime.host.active -= 1
            runtime.host.release()


def _repeat(run: JitRun, jp: JitProgram, args: tuple[int, ...], repeat: int) -> int:
    block, rt = run.block, run.rt
    retval = 0
    left = max(repeat, 1)
    while left:
        status = run.call(jp, 0, args, repeat=left, nested=False)
        if status is Status.OK:
            retval = int(block.retval)
            break
        exc = run.error(status, jp.loaded)
        if isinstance(exc, ProgramExit):  # bpf "unwind": this run ends with r0 = value
            retval = exc.value
            left = int(block.repeat) - 1
            continue
        raise exc
    rt.n = (block.budget - block.remain) & U64
    return retval
