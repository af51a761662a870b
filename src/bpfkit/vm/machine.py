"""`Vm` and `VmProgram`: the userspace runtime's public face, shaped like the kernel layer.

    vm = Vm()
    counts = vm.create_map(MapSpec(MapType.ARRAY, 4, 8, 1, name="counts"))
    prog = vm.load(insns, prog_type=ProgType.XDP, maps={"counts": counts})
    result = prog.test_run(data=packet)          # TestRunResult(retval, data_out, ctx_out, ...)

Three engines give identical results: "fast" (translated to Python, the default), "interp" (the
interpreter, which can `trace` every instruction and single-step through `debug()`) and "jit" (native
x86-64 code, `bpfkit.vm.jit`; pointers are host addresses there, and on other machines it falls back to
"fast" with a warning).

Programs are verified by bpfkit's own verifier before they run, as the kernel would (`Vm.load`); the
fast engine and the JIT then drop the bounds checks of the accesses it proved safe. `verify=False` is
the opt-out for trusted code: nothing is verified and every access keeps its run-time check.

Programs whose verification needs the target kernel's BTF (BTF-typed contexts: fentry/fexit, tp_btf,
iterators; kfunc calls, typed `__ksym`s) get the caller's (`btf=`, `target_btf=`), else the running
kernel's (`bpfkit.vm.objects.default_target_btf`, the one place that reads it), else none and the
verifier's refusal says what is missing: `TargetBtf`. Other programs never cause that 5 MB to be read.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from bpfkit._records import record, replace
from bpfkit.errors import VerificationError, VmError, VmHelperError
from bpfkit.isa.builder import Relocation
from bpfkit.isa.instruction import LD_IMM64, Instruction
from bpfkit.obj.spec import MapSpec, ProgramSpec
from bpfkit.uapi.enums import ProgType
from bpfkit.uapi.insn import InsnClass, JmpOp, PseudoCall, PseudoSrc
from bpfkit.vm.context import Context, RawContext, RawMemory, SkbContext, XdpContext
from bpfkit.vm.helpers import HelperRegistry, default_helpers
from bpfkit.vm.interp import Interpreter, InterpreterEngine, TraceFn, TraceStep
from bpfkit.vm.maps import ProgArrayMap, RingbufMap, VmMap, create_map
from bpfkit.vm.memory import DATA_SLOT0, AddressSpace
from bpfkit.vm.prandom import Prandom
from bpfkit.vm.program import LoadedProgram
from bpfkit.vm.runtime import DEFAULT_BUDGET, HelperFn, RunState, map_stacks, run_guarded
from bpfkit.vm.translate import TranslatedEngine, translated

if TYPE_CHECKING:
    from bpfkit.btf import Spec
    from bpfkit.obj.object import ObjectSpec
    from bpfkit.vm.objects import VmCollection
    from bpfkit.vm.verifier import VerifierResult

BtfArg: TypeAlias = "Spec | str | os.PathLike[str] | Literal[False] | TargetBtf | None"
"""A target BTF as `Vm.load(btf=)` and `Vm.load_object(target_btf=)` take it: a `bpfkit.btf.Spec`, a
path to raw BTF, None for the default (the running kernel's when readable) or False for none."""

EngineName = Literal["fast", "interp", "jit"]
ENGINES: tuple[EngineName, ...] = ("fast", "interp", "jit")

_SKB_L2 = {ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.LWT_XMIT}
_SKB_L3 = {ProgType.SOCKET_FILTER, ProgType.CGROUP_SKB, ProgType.LWT_IN, ProgType.LWT_OUT}


@record
class TestRunResult:
    """What one `test_run` gives back, like BPF_PROG_TEST_RUN: r0 of the last run, the packet and
    context after it, and the mean wall time per run. `instructions` counts the last run's steps."""

    __test__ = False  # not a pytest test class

    retval: int
    data_out: bytes = b""
    ctx_out: bytes = b""
    duration_ns: int = 0
    instructions: int = 0


@record
class Task:
    """The "current task" the task helpers report (get_current_pid_tgid, _uid_gid, _comm)."""

    pid: int
    tgid: int
    uid: int
    gid: int
    comm: str

    @staticmethod
    def this_process() -> Task:
        return Task(os.getpid(), os.getpid(), os.getuid(), os.getgid(), "python")


class Vm:
    """A userspace eBPF machine: maps, helpers, and programs that run against them.

    `ncpus` simulated CPUs back the per-CPU maps (`cpu` picks the one runs execute on); `seed` makes
    bpf_get_prandom_u32 reproducible; `clock` (ns) replaces the monotonic clock for ktime helpers.
    """

    def __init__(self, *, helpers: HelperRegistry | None = None, ncpus: int = 2,
                 budget: int | None = DEFAULT_BUDGET, engine: EngineName = "fast",
                 seed: int | None = None, clock: Callable[[], int] | None = None,
                 task: Task | None = None) -> None:
        if ncpus < 1:
            raise VmError("a VM needs at least one CPU")
        if engine not in ENGINES:
            raise VmError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
        engine = _available(engine)
        self.helpers = helpers.copy() if helpers is not None else default_helpers()
        self.ncpus = ncpus
        self.cpu = 0
        self.budget = budget
        self.engine: EngineName = engine
        self.prandom = Prandom(seed)
        """bpf_get_prandom_u32's generator (its state is shared with the JIT's native code)."""
        self._clock = clock or time.monotonic_ns
        self.task = task or Task.this_process()
        self.mem = AddressSpace()
        self.stacks = map_stacks(self.mem)
        self.maps: list[VmMap] = []
        self._maps_by_addr: dict[int, VmMap] = {}
        self.trace_output: list[str] = []
        """Lines written by bpf_trace_printk, oldest first."""

    def __enter__(self) -> Vm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release (no kernel objects); present for symmetry with the kernel layer."""

    def clock_ns(self) -> int:
        return self._clock()

    @property
    def real_clock(self) -> bool:
        """Whether the ktime helpers read the host's CLOCK_MONOTONIC (no `clock` was given), which
        the JIT may then read natively."""
        return self._clock is time.monotonic_ns

    # -- maps -------------------------------------------------------------------------------------
    def create_map(self, spec: MapSpec) -> VmMap:
        """Create a map from a `MapSpec` (its `contents` are written in)."""
        vm_map = create_map(spec, self.mem, len(self.maps), ncpus=self.ncpus)
        if spec.freeze:
            vm_map.frozen = True
        self.maps.append(vm_map)
        self._maps_by_addr[vm_map.address] = vm_map
        return vm_map

    def map_at(self, addr: int) -> VmMap | None:
        """The map whose `struct bpf_map` address is `addr`."""
        return self._maps_by_addr.get(addr)

    def map_by_fd(self, fd: int) -> VmMap | None:
        index = fd - 1000
        return self.maps[index] if 0 <= index < len(self.maps) else None

    # -- helpers ----------------------------------------------------------------------------------
    def register_helper(self, helper_id: int, fn: HelperFn, name: str | None = None) -> None:
        """Add a helper `fn(rt, r1, r2, r3, r4, r5) -> r0` for programs loaded from now on."""
        self.helpers.register(helper_id, fn, name)

    # -- programs ---------------------------------------------------------------------------------
    def load(self, program: Sequence[Instruction] | bytes | ProgramSpec, *,
             prog_type: ProgType | None = None, name: str = "",
             maps: Mapping[str, VmMap] | Sequence[VmMap] | None = None,
             relocations: Sequence[Relocation] = (), verify: bool = True,
             mem_size: int | None = None, btf: BtfArg = None) -> VmProgram:
        """Load instructions, bytecode or a `ProgramSpec`; bpfkit's verifier checks it first.

        Verification (`bpfkit.vm.verifier.verify`) raises `VerificationError` when the kernel's rules
        would refuse the program, before it can run; the result is kept in `VmProgram.verification`,
        and the fast engine and the JIT then run the accesses it proved in bounds
        (`VerifierResult.proven_safe`) without a check. A `ProgramSpec` is verified with its license,
        attach type and source lines (reports name the line). `verify=False` is for trusted code
        (or programs outside what the verifier models): nothing is checked at load, and every access
        keeps its run-time check in every engine.

        `btf` is the target kernel's BTF for programs whose verification needs one (BTF-typed
        contexts such as fentry/fexit, tp_btf and iterators; kfunc calls): a `bpfkit.btf.Spec` or a
        path (read now); None (the default): the running kernel's (/sys/kernel/btf/vmlinux, read
        only when a program needs it); False: none, and such programs are refused saying so.

        Raw-memory programs (no `prog_type`: r1 points to the run's data, r2 holds its length) have
        no memory size until a run passes data, and the verifier takes r2 as that exact size: such a
        program is verified at its first run for the size of that run's data, and again for each
        other size a run passes (once per size, results cached; a size it refuses raises
        `VerificationError` from `test_run`). `mem_size` verifies it now for that size as well, and
        makes runs with less data an error (`VmError`).

        Map references: BPF_PSEUDO_MAP_FD/MAP_VALUE immediates are `VmMap.fd`s; MAP_IDX/MAP_IDX_VALUE
        index `maps` (a sequence, like the kernel's fd_array); `relocations` (from `Builder`) name maps
        in `maps` (a mapping by name) and patch the LD_IMM64 at their slot.
        """
        pspec: ProgramSpec | None = None
        if isinstance(program, ProgramSpec):
            from bpfkit.vm.objects import check_standalone

            check_standalone(program)
            pspec = program
            prog_type = program.type if prog_type is None else prog_type
            name = name or program.name
            insns: Sequence[Instruction] | bytes = program.insns if isinstance(program.insns, bytes) \
                else list(program.insns)
        else:
            insns = program
        by_slot: dict[int, VmMap] = {}
        if relocations:
            if not isinstance(maps, Mapping):
                raise VmError("relocations name maps: pass `maps` as a mapping of name -> VmMap")
            for reloc in relocations:
                if reloc.symbol not in maps:
                    raise VmError(f"relocation at slot {reloc.slot}: no map named {reloc.symbol!r}")
                by_slot[reloc.slot] = maps[reloc.symbol]
        fd_array = list(maps) if isinstance(maps, Sequence) else []

        def resolve(slot: int, insn: Instruction) -> int:
            lo, hi = insn.imm & 0xFFFFFFFF, (insn.imm >> 32) & 0xFFFFFFFF
            vm_map = by_slot.get(slot)
            if vm_map is None:
                if insn.src in (PseudoSrc.MAP_IDX, PseudoSrc.MAP_IDX_VALUE):
                    vm_map = fd_array[lo] if lo < len(fd_array) else None
                else:
                    vm_map = self.map_by_fd(lo)
            if vm_map is None:
                raise VmError(f"LD_IMM64 refers to map {lo}, which this VM does not have", slot, insn)
            if insn.src in (PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX_VALUE):
                return vm_map.value_address(hi)
            return vm_map.address

        loaded = LoadedProgram(insns, helpers=self.helpers.table(), resolve_pseudo=resolve,
                               name=name or "prog")
        checker = _checker(self, insns, prog_type, maps, relocations, pspec, btf) if verify else None
        vm_program = VmProgram(self, loaded, prog_type, checker=checker, mem_size=mem_size)
        if checker is not None and (prog_type is not None or mem_size is not None):
            vm_program.verified_for(mem_size or 0)
        return vm_program

    def load_object(self, spec: ObjectSpec, *, target_btf: BtfArg = None,
                    kconfig: Mapping[str, str | int | bool] | None = None,
                    verify: bool = True, programs: Iterable[str] | None = None) -> VmCollection:
        """Create every map and load every program of an object (`bpfkit.obj.load_object`), applying
        CO-RE against `target_btf` (default: /sys/kernel/btf/vmlinux when readable; False: none) and
        filling `.kconfig` from `kconfig` (default: the running kernel's config). Each program is
        verified as `load` does, on its instructions as relocated and with the `.kconfig` values
        filled in, with the same `target_btf` for what its verification needs (fentry/fexit,
        tp_btf, iterator contexts); `verify=False` loads trusted code unverified. `programs` (names)
        loads only those and what they need: their maps, and the programs their program arrays hold
        initially (`bpfkit.vm.objects.select_programs`). See `bpfkit.vm.objects`."""
        from bpfkit.vm.objects import load_collection

        return load_collection(self, spec, target_btf=target_btf, kconfig=kconfig, verify=verify,
                               programs=programs)

    def _context(self, prog_type: ProgType | None, data: bytes, ctx: bytes | None) -> Context:
        if prog_type is None:
            return RawMemory(data, ctx)
        if prog_type == ProgType.XDP:
            return XdpContext(data, ctx)
        if prog_type in _SKB_L2:
            return SkbContext(data, ctx, l2=True)
        if prog_type in _SKB_L3:
            return SkbContext(data, ctx, l2=False)
        return RawContext(data, ctx, writable=prog_type == ProgType.SYSCALL)

    def _state(self, loaded: LoadedProgram, engine: EngineName, trace: TraceFn | None,
               budget: int | None) -> RunState:
        if engine == "jit":
            from bpfkit.vm.jit import JitEngine, runtime_for

            eng: object = JitEngine(runtime_for(self.mem))
        else:
            eng = TranslatedEngine() if engine == "fast" else InterpreterEngine(trace)
        rt = RunState(self.mem, eng, loaded, helpers=loaded.helpers, budget=budget,  # type: ignore[arg-type]
                      host=self)
        rt.cpu = self.cpu
        return rt

    def _end_run(self) -> None:
        for vm_map in self.maps:
            if isinstance(vm_map, RingbufMap):
                vm_map.release_all()


class VmProgram:
    """A program loaded into a `Vm` (by `Vm.load`, which says when it is verified)."""

    def __init__(self, vm: Vm, loaded: LoadedProgram, prog_type: ProgType | None, *,
                 checker: Checker | None = None, mem_size: int | None = None) -> None:
        self.vm = vm
        self.loaded = loaded
        self.prog_type = prog_type
        self.verification: VerifierResult | None = None
        """What bpfkit's verifier found: for a raw-memory program, for the data size of the latest
        run (None before the first run unless `mem_size` was given); None when loaded unverified."""
        self._checker = checker
        self._mem_size = mem_size
        self._by_size: dict[int, VerifierResult] = {}
        self._jit_options: object = None  # the JitOptions this program set (a caller's own win)

    @property
    def verified(self) -> bool:
        """Whether runs are verified (False: loaded with `verify=False`, every access checked)."""
        return self._checker is not None

    def verified_for(self, size: int, what: str = "this run passes") -> VerifierResult | None:
        """The verification a run with `size` bytes of data relies on, made now if it is the first
        run of that size (a raw-memory program; other types were verified at load), and made the
        one the engines use (`proven_safe`). None for a program loaded unverified.

        Raises `VerificationError` when the verifier refuses the program for that size, `VmError`
        when `size` is below the `mem_size` given at load."""
        if self._checker is None:
            return None
        if self.prog_type is not None:
            if self.verification is None:
                self.verification = self._checker(0)
                self.loaded.proven_safe = self.verification.proven_safe
            return self.verification
        if self._mem_size is not None and size < self._mem_size:
            raise VmError(f"program {self.name!r} was verified for {self._mem_size} bytes of data; "
                          f"{what} {size}: pass at least {self._mem_size} bytes")
        result = self._by_size.get(size)
        if result is None:
            result = self._by_size[size] = self._checker(size)
        self.verification = result
        self.loaded.proven_safe = result.proven_safe
        return result

    def prepare_jit(self) -> None:
        """Make the JIT compile this program with the accesses of `verification.proven_safe`
        unchecked (what `test_run` does before a JIT run; `bpfkit vm jit-dump` shows that code).
        No effect on a program without a verification."""
        if self.verification is not None:
            self._use_jit_options(self.verification)

    def _use_jit_options(self, result: VerifierResult) -> None:
        """Compile for the JIT with `result.proven_safe` unchecked, unless the caller set options of
        its own with `bpfkit.vm.jit.set_options` (those win)."""
        from bpfkit.vm.jit import JitOptions, set_options

        current = self.loaded.cache.get("jit_options")
        if current is not None and current is not self._jit_options:
            return
        options = JitOptions(proven_safe=result.proven_safe, ctx_loads=result.ctx_loads, verified=True)
        if current == options:
            return
        set_options(self.loaded, options)  # drops native code compiled for another data size
        self._jit_options = options

    def __enter__(self) -> VmProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the program's native code, if the JIT compiled it (idempotent)."""
        if "jit" in self.loaded.cache:
            from bpfkit.vm.jit import close_programs

            close_programs(self.loaded)

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def python_source(self) -> str:
        """The Python the fast engine runs for this program."""
        return translated(self.loaded).source

    def test_run(self, data: bytes = b"", ctx: bytes | None = None, repeat: int = 1, *,
                 engine: EngineName | None = None, trace: TraceFn | list[TraceStep] | None = None,
                 budget: int | Literal["default"] | None = "default", cpu: int | None = None
                 ) -> TestRunResult:
        """Run the program `repeat` times on `data` / `ctx` (as BPF_PROG_TEST_RUN does).

        `trace` (a callback or a list to append to) receives every executed instruction with the
        registers after it; it forces the interpreter. Faults raise `VmError` subclasses naming the
        instruction. A context that breaks a range the kernel guarantees and the verification assumes
        (`VerifierResult.ctx_ranges`: an LSM hook's return value so far) is refused with `VmError`
        before the run.
        """
        vm = self.vm
        if isinstance(trace, list):
            trace = trace.append
        chosen: EngineName = "interp" if trace is not None else (engine or vm.engine)
        if chosen not in ENGINES:
            raise VmError(f"unknown engine {chosen!r} (choose from {', '.join(ENGINES)})")
        chosen = _available(chosen)
        limit = vm.budget if budget == "default" else budget
        verified = self.verified_for(len(data))  # outside the timed loop, like translation
        _check_ctx_ranges(self.name, verified, ctx)
        if repeat < 1:
            repeat = 1
        context = vm._context(self.prog_type, bytes(data), ctx)
        setup = context.setup(vm.mem, DATA_SLOT0)
        rt = vm._state(self.loaded, chosen, trace, limit)
        if cpu is not None:
            if not 0 <= cpu < vm.ncpus:
                raise VmError(f"cpu {cpu} out of range (the VM has {vm.ncpus})")
            rt.cpu = cpu
        rt.packet = setup.packet
        rt.context = context
        rt.ctx = setup.args[0]
        if chosen == "fast":
            translated(self.loaded)  # translate outside the timed loop
        retval = 0
        start = time.perf_counter_ns()
        try:
            if chosen == "jit":
                from bpfkit.vm.jit import run_native

                if verified is not None:
                    # Accesses the verifier proved in bounds run unchecked (its `proven_safe` contract).
                    self._use_jit_options(verified)
                retval = run_native(rt, self.loaded, setup.args, repeat)
            for _ in range(repeat if chosen != "jit" else 0):
                rt.n = 0
                rt.depth = -1
                rt.tail_calls = 0
                retval = _execute(rt, self.loaded, setup.args)
        finally:
            vm._end_run()
        elapsed = time.perf_counter_ns() - start
        return TestRunResult(retval, context.data_out(), context.ctx_out(), elapsed // repeat, rt.n)

    def debug(self, data: bytes = b"", ctx: bytes | None = None, *,
              trace: TraceFn | None = None) -> Interpreter:
        """An interpreter stopped before the first instruction: call `step()` to advance, read `pc`
        and `regs` between steps; `retval` is set once it has finished."""
        vm = self.vm
        _check_ctx_ranges(self.name, self.verified_for(len(data)), ctx)
        context = vm._context(self.prog_type, bytes(data), ctx)
        setup = context.setup(vm.mem, DATA_SLOT0)
        rt = vm._state(self.loaded, "interp", trace, vm.budget)
        rt.packet = setup.packet
        rt.context = context
        rt.ctx = setup.args[0]
        return Interpreter(rt, self.loaded, 0, setup.args, trace)

    def check_tail_call(self, rt: RunState) -> None:
        """Refuse a tail call into this program from a run it was not verified for: another kind of
        context (the kernel refuses programs of another type in a prog array), or, for raw memory, a
        data size below the `mem_size` given at load or one the verifier refuses. Otherwise make the
        verification for this run's size the one the engines use (the fast engine and the JIT rely
        on it for the accesses they run unchecked)."""
        if not self.verified:
            return
        context = rt.context
        expected = type(self.vm._context(self.prog_type, bytes(64), None))
        if type(context) is not expected:
            raise VmHelperError(f"bpf_tail_call: program {self.name!r} was verified as "
                                f"{self.prog_type.name if self.prog_type is not None else 'raw memory'} "
                                f"and cannot run on this run's {type(context).__name__}")
        size = len(getattr(context, "buf", b""))
        try:
            result = self.verified_for(size, "this run has")
        except VmError as err:
            raise VmHelperError(f"bpf_tail_call: {err.message}") from None
        except VerificationError as err:
            raise VmHelperError(f"bpf_tail_call: bpfkit's verifier refuses program {self.name!r} for "
                                f"{size} bytes of data: {err.report.message}") from None
        try:
            _check_ctx_ranges(self.name, result, getattr(context, "buf", None))
        except VmError as err:
            raise VmHelperError(f"bpf_tail_call: {err.message}") from None
        if result is not None and sys.modules.get("bpfkit.vm.jit") is not None:
            self._use_jit_options(result)  # only the JIT can be running natively

    def set_tail_call(self, prog_array: VmMap, index: int) -> None:
        """Put this program in `prog_array` at `index`."""
        if not isinstance(prog_array, ProgArrayMap):
            raise VmError(f"map {prog_array.name!r} is not a program array")
        prog_array.set(index, self)


Checker = Callable[[int], "VerifierResult"]
"""Verifies a loaded program for a raw-memory size (ignored for typed programs)."""


def _checker(vm: Vm, insns: Sequence[Instruction] | bytes, prog_type: ProgType | None,
             maps: Mapping[str, VmMap] | Sequence[VmMap] | None, relocations: Sequence[Relocation],
             pspec: ProgramSpec | None, btf: BtfArg) -> Checker:
    """How `Vm.load` verifies a program: its maps (by name with `relocations`, by fd, or the fd_array
    sequence), for a `ProgramSpec` its license, attach type, attach target and source lines, and the
    target BTF (`btf`, see `TargetBtf`) when its verification needs one."""
    from bpfkit.vm.verifier import verify

    known: Any
    if isinstance(maps, Sequence):
        known = list(maps)
    else:
        known = {m.fd: m for m in vm.maps}
        if maps:
            known.update(maps)
    extra: dict[str, Any] = {}
    if pspec is not None:
        extra = {"license": pspec.license, "expected_attach_type": pspec.expected_attach_type,
                 "line_info": {rec.index: (rec.file, rec.line, rec.text) for rec in pspec.lines},
                 "attach_to": pspec.attach_to or ""}
    target = TargetBtf.of(btf)  # a path given is read now: its errors belong to this call

    def check(mem_size: int) -> VerifierResult:
        try:
            return target.verify(prog_type, insns, lambda spec: verify(
                insns, prog_type=prog_type, maps=known, relocations=relocations, mem_size=mem_size,
                btf=spec, **extra))
        except VerificationError as err:
            raise _with_opt_out(err, prog_type) from None

    return check


class TargetBtf:
    """The target kernel BTF of one load, for CO-RE (`bpfkit.vm.objects`) and the verifier: the
    caller's (a `Spec`, or a path, read when this is made), else the running kernel's, read on the
    first `get()` only (`bpfkit.vm.objects.default_target_btf`: 5 MB, parsed once per process), else
    none (`False` given, or no readable /sys/kernel/btf/vmlinux). One `Vm.load_object` shares one."""

    __slots__ = ("_done", "_spec", "given")

    def __init__(self, given: Spec | str | os.PathLike[str] | Literal[False] | None = None) -> None:
        from bpfkit.btf import Spec, load_btf

        self.given = given
        self._spec: Spec | None = None
        self._done = given is False
        if isinstance(given, Spec):
            self._spec, self._done = given, True
        elif given is not None and given is not False:
            self._spec, self._done = load_btf(given), True  # a bad path is an error of this call

    @classmethod
    def of(cls, btf: BtfArg) -> TargetBtf:
        """`btf` itself when it is a `TargetBtf`, else one made from it."""
        return btf if isinstance(btf, TargetBtf) else cls(btf)

    def get(self) -> Spec | None:
        """The target BTF, or None when there is none."""
        if not self._done:
            from bpfkit.vm.objects import default_target_btf

            self._spec, self._done = default_target_btf(), True
        return self._spec

    def verify(self, prog_type: ProgType | None, insns: Sequence[Instruction] | bytes,
               run: Callable[[Spec | None], VerifierResult]) -> VerifierResult:
        """`run(btf)`, a verification of the program (`prog_type`, `insns`), with this target BTF when
        its verification needs one (`needs_target_btf`; the kernel's is read only then), else None.
        The one place that ties the two together: the verifier's refusal for want of it
        (`Report.needs_btf`) gets a hint saying why there is none and how to give one."""
        needed = needs_target_btf(prog_type, insns)
        spec = self.get() if needed else None
        try:
            return run(spec)
        except VerificationError as err:
            if spec is not None or not err.report.needs_btf:
                raise
            if not needed and self.get() is not None:  # a need the cheap test missed: verify again with it
                return run(self.get())
            hint = (f"{self.missing()}: pass one (a bpfkit.btf.Spec or a path to raw BTF) as btf= to "
                    "Vm.load, target_btf= to Vm.load_object, or --btf PATH to `bpfkit vm run` / "
                    "`bpfkit vm verify`")
            raise VerificationError(replace(err.report, hint=hint)) from None

    def missing(self) -> str:
        """Why `get()` is None."""
        if self.given is False:
            return "no target BTF was given (btf=False)"
        from bpfkit.vm.objects import VMLINUX_BTF

        return f"no target BTF was given and the running kernel's ({VMLINUX_BTF}) is not readable"


def needs_target_btf(prog_type: ProgType | None, insns: Sequence[Instruction] | bytes) -> bool:
    """Whether verifying the program needs the target kernel's BTF: a BTF-typed context (the
    verifier's `BTF_CTX_TYPES`: fentry/fexit, tp_btf, iterators, LSM hooks), a kfunc call or a typed
    `__ksym` load (LD_IMM64 of a BTF id). Decides whether the kernel's BTF is read at all."""
    from bpfkit.vm.verifier.memory import BTF_CTX_TYPES

    if prog_type in BTF_CTX_TYPES:
        return True
    call = InsnClass.JMP | JmpOp.CALL
    if isinstance(insns, (bytes, bytearray, memoryview)):
        code = bytes(insns)
        # The second slot of an LD_IMM64 has opcode 0, so a slot-by-slot scan sees only real opcodes.
        pairs: Iterable[tuple[int, int]] = ((code[i], code[i + 1] >> 4) for i in range(0, len(code) - 1, 8))
    else:
        pairs = ((i.opcode, i.src) for i in insns)
    return any((op == call and src == PseudoCall.KFUNC) or (op == LD_IMM64 and src == PseudoSrc.BTF_ID)
               for op, src in pairs)


def _check_ctx_ranges(name: str, verified: VerifierResult | None, ctx: bytes | bytearray | None) -> None:
    """Refuse a run's context that breaks a value range the verifier relied on because the kernel
    guarantees it (`VerifierResult.ctx_ranges`: an LSM hook's return value so far), before anything
    runs: the verified program's unchecked accesses may depend on it. A context too short to hold the
    value is left to the run (reading it faults, as every context access is checked)."""
    if verified is None or not ctx:
        return
    for rng in verified.ctx_ranges:
        end = rng.offset + rng.size
        if len(ctx) < end:
            continue
        value = int.from_bytes(ctx[rng.offset:end], "little", signed=True)
        if not rng.lo <= value <= rng.hi:
            raise VmError(f"program {name!r}: ctx bytes {rng.offset}..{end} (u64 slot {rng.offset // 8}: "
                          f"{rng.what}) hold {value}, outside [{rng.lo}, {rng.hi}]: the kernel never "
                          "passes such a value there, and the verification assumes it; pass one in range")


def _with_opt_out(err: VerificationError, prog_type: ProgType | None) -> VerificationError:
    """`err`, with the VM's way out added to the hint when the verifier does not model the program
    type at all (nothing is wrong with the program; bpfkit cannot tell)."""
    from bpfkit.vm.verifier.ctxaccess import SUPPORTED

    report = err.report
    if prog_type is None or prog_type in SUPPORTED or getattr(report, "insn", 0) != -1:
        return err
    hint = (f"{report.hint}; or, for trusted code, load it with verify=False (Vm.load, "
            "Vm.load_object; `bpfkit vm run --no-verify`): it then runs with every run-time check on")
    return VerificationError(replace(report, hint=hint))


def _available(engine: EngineName) -> EngineName:
    """`engine`, or "fast" (with a warning) when it is the JIT and this machine cannot run it."""
    if engine != "jit":
        return engine
    from bpfkit.vm.jit import jit_supported

    reason = jit_supported()
    if reason is None:
        return engine
    warnings.warn(f"bpfkit JIT unavailable ({reason}); using the fast engine", RuntimeWarning,
                  stacklevel=3)
    return "fast"


def _execute(rt: RunState, loaded: LoadedProgram, args: tuple[int, ...]) -> int:
    """One run: r0, or a BpfkitError (see `run_guarded`)."""
    return run_guarded(lambda: rt.engine.call(rt, loaded, 0, args))

