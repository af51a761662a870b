"""`verify`: check a program the way the kernel's verifier does, without a kernel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bpfkit._records import record
from bpfkit.btf.spec import Spec
from bpfkit.errors import AsmError, VerificationError
from bpfkit.isa.builder import Relocation
from bpfkit.isa.codec import decode
from bpfkit.isa.instruction import Instruction
from bpfkit.isa.opcodes import Kind
from bpfkit.obj.spec import ProgramSpec, RefKind
from bpfkit.uapi.enums import AttachType, ProgType
from bpfkit.uapi.insn import PseudoSrc
from bpfkit.vm.verifier import lsm
from bpfkit.vm.verifier.cfg import Program, check_stack_depth, check_structure
from bpfkit.vm.verifier.check import Explorer
from bpfkit.vm.verifier.ctxaccess import SUPPORTED
from bpfkit.vm.verifier.env import COMPLEXITY_LIMIT_INSNS, Env
from bpfkit.vm.verifier.errors import Refusal
from bpfkit.vm.verifier.liveness import live_in
from bpfkit.vm.verifier.lsm import CtxRange
from bpfkit.vm.verifier.report import LineInfo, Log, build_report
from bpfkit.vm.verifier.state import MapInfo, map_info

MapsArg = Mapping[str, Any] | Mapping[int, Any] | Sequence[Any] | None
"""Maps as `verify` takes them: by name (with `relocations`), by fd (the low 32 bits of a
BPF_PSEUDO_MAP_FD immediate) or as a sequence (the fd_array BPF_PSEUDO_MAP_IDX indexes). Each is a
`MapSpec`, or anything with a `spec` attribute holding one (a `VmMap`)."""

_MAP_SRCS = (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX, PseudoSrc.MAP_IDX_VALUE)
GPL_COMPATIBLE = frozenset({"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL",
                            "Dual MPL/GPL"})
"""Licenses the kernel treats as GPL-compatible (license_is_gpl_compatible)."""


@record
class VerifierResult:
    """A program bpfkit's verifier accepted, with the cost of proving it.

    `processed_insns` counts instructions checked over all paths (the kernel's "processed N insns"),
    `states` the states kept for pruning, `peak_states` the most states held at once (kept plus
    waiting branches), `pruned` the paths cut short by pruning, `max_stack` the deepest combined stack
    of a call chain (rounded as the JIT does) and `stack_depths` each function's own stack (function
    entry slot -> bytes).
    """

    processed_insns: int
    states: int
    peak_states: int
    pruned: int
    max_stack: int
    stack_depths: Mapping[int, int]
    subprograms: tuple[int, ...]
    log: str = ""
    proven_safe: frozenset[int] = frozenset()
    """Slots of loads, stores and atomics that every verified path proved in bounds of a region the
    JIT may access without a check (`memory.UNCHECKED_TYPES`: stack, map value, raw memory or ring
    buffer record, packet up to data_end; never the context or packet metadata). The contract with
    `bpfkit.vm.jit` (`JitOptions.proven_safe`): at such a slot the base register holds the real
    address of a host buffer that covers the access, PROVIDED the run matches what was verified: the
    same program type, and for raw memory at least `mem_size` bytes of data (the VM checks that
    before entering native code), and a context that keeps `ctx_ranges` (the VM refuses one that
    does not). Slots never reached are not listed."""
    mem_size: int = 0
    """The raw-memory size the program was verified for (`verify(mem_size=...)`)."""
    ctx_loads: frozenset[int] = frozenset()
    """Slots of loads that every verified path made from the context through the unmodified context
    pointer, at the instruction's offset and size (a field the program type may read). The JIT runs
    those that read plain bytes of the VM's context without a check (`bpfkit.vm.jit.native_ctx`)."""
    ctx_ranges: tuple[CtxRange, ...] = ()
    """Context values the proof may rely on because the kernel guarantees their range (an LSM int
    hook's return value so far: `lsm.ctx_ranges`). The kernel never passes a context that breaks
    them, so neither may a VM run: `VmProgram.test_run` refuses one (`VmError`)."""


def _map_info(obj: Any, where: str) -> MapInfo:
    try:
        return map_info(obj, where)
    except ValueError:
        raise Refusal(-1, f"{where}: {obj!r} is not a map description",
                      "pass MapSpec objects (or VmMaps) in `maps`") from None


def _resolve_maps(prog: Program, maps: MapsArg, relocations: Sequence[Relocation]) -> dict[int, MapInfo]:
    by_slot = {r.slot: r.symbol for r in relocations if r.kind == "map"}
    out: dict[int, MapInfo] = {}
    for op in prog.ops:
        if op is None or op.kind is not Kind.LD_IMM64 or op.insn.src not in _MAP_SRCS:
            continue
        lo = op.insn.imm & 0xFFFFFFFF
        found: Any = None
        if op.slot in by_slot:
            name = by_slot[op.slot]
            if isinstance(maps, Mapping):
                found = maps.get(name)  # type: ignore[call-overload]
            if found is None:
                raise Refusal(op.slot, f"relocation at insn {op.slot} names map {name!r}, which is not "
                                       f"in `maps`", "pass every map the program uses in `maps`")
        elif op.insn.src in (PseudoSrc.MAP_IDX, PseudoSrc.MAP_IDX_VALUE):
            if isinstance(maps, Sequence) and lo < len(maps):
                found = maps[lo]
        elif isinstance(maps, Mapping):
            found = maps.get(lo)  # type: ignore[call-overload]
            if found is None:
                found = next((m for m in maps.values() if getattr(m, "fd", None) == lo), None)
        elif isinstance(maps, Sequence):
            found = next((m for m in maps if getattr(m, "fd", None) == lo), None)
        if found is None:
            raise Refusal(op.slot, f"fd {lo} is not pointing to valid bpf_map",
                          "pass the program's maps to verify() (maps= and relocations=)")
        out[op.slot] = _map_info(found, f"map at insn {op.slot}")
    return out


def verify(program: Sequence[Instruction] | bytes | bytearray | memoryview, *,
           prog_type: ProgType | None = None, maps: MapsArg = None,
           relocations: Sequence[Relocation] = (), expected_attach_type: AttachType | None = None,
           mem_size: int = 0, license: str = "GPL", line_info: LineInfo | None = None,
           log_level: int = 0, limit: int = COMPLEXITY_LIMIT_INSNS, jit: bool = True,
           btf: Spec | None = None, attach_to: str = "", kernel_refs: Mapping[int, str] | None = None,
           ) -> VerifierResult:
    """Verify `program` as the kernel would load it as `prog_type`; raise `VerificationError` if not.

    `btf` is the target kernel's BTF (a `bpfkit.btf.Spec`): kfunc prototypes, BTF-typed contexts
    (TRACING programs: iterators, fentry/fexit, whose target `attach_to` names; LSM programs, whose
    hook it names) and kernel objects come from it. `kernel_refs` (slot -> symbol) names the kfunc
    calls and `__ksym` loads a loader has not patched yet (`verify_program` fills it from the object's
    references).

    `prog_type` None is the VM's raw-memory mode: r1 points to `mem_size` bytes (r1 is 0 when
    `mem_size` is 0) and r2 holds `mem_size`. `line_info` (slot -> (file, line, text)) puts source
    lines in reports; `log_level` 1 or 2 keeps a kernel-style log (in the result, or in the report's
    `log`). `limit` is the number of instructions checked over all paths before giving up (the
    kernel's 1,000,000). `jit` selects the kernel's stack rounding (16 bytes with the JIT, else 32).
    """
    if isinstance(program, (bytes, bytearray, memoryview)):
        try:
            program = decode(program)
        except AsmError as err:
            raise VerificationError(build_report(Program([]), err.index if err.index is not None else -1,
                                                 err.message, "pass valid bytecode", None, None)) from None
    log = Log(log_level) if log_level > 0 else None
    prog: Program | None = None
    if prog_type is not None and prog_type not in SUPPORTED:
        names = ", ".join(sorted(t.name for t in SUPPORTED))
        raise VerificationError(build_report(
            Program([]), -1, f"bpfkit's verifier does not model {prog_type.name} programs",
            f"it knows the contexts and rules of: {names}, and raw memory (no prog_type); load the "
            f"program in the kernel to verify it", None, None))
    explorer: Explorer | None = None
    try:
        prog = Program.layout(program)
        check_structure(prog)
        env = Env(prog, prog_type, expected_attach_type, _resolve_maps(prog, maps, relocations),
                  mem_size, limit, jit, btf, dict(kernel_refs or {}), attach_to)
        env.live = live_in(prog)
        explorer = Explorer(env, gpl=license in GPL_COMPATIBLE, log=log.insn if log else None)
        if log is not None:
            explorer.on_branch = log.branch
        failure = explorer.run()
        if failure is not None:
            if log is not None:
                log.lines.append(failure.refusal.message)
            raise _refused(prog, failure.refusal, failure.state, line_info, log)
        max_stack = check_stack_depth(prog, env.stack_depth, jit)
    except Refusal as ref:
        raise _refused(prog, ref, None, line_info, log) from None
    if log is not None:
        log.lines.append(f"processed {env.processed} insns (limit {limit}) total_states {env.states} "
                         f"peak_states {env.peak_states}")
    return VerifierResult(env.processed, env.states, env.peak_states, env.pruned, max_stack,
                          dict(env.stack_depth), tuple(prog.subprogs), log.text() if log else "",
                          frozenset(slot for slot, safe in env.access_safe.items() if safe),
                          mem_size if prog_type is None else 0,
                          frozenset(slot for slot, ctx in env.ctx_load.items() if ctx),
                          lsm.ctx_ranges(env.ctx_proto, env.attach_to) if prog_type == ProgType.LSM
                          else ())


def verify_program(spec: ProgramSpec, maps: Mapping[str, Any], *, log_level: int = 0,
                   limit: int = COMPLEXITY_LIMIT_INSNS, mem_size: int = 0,
                   btf: Spec | None = None) -> VerifierResult:
    """Verify a `ProgramSpec` from an object (`bpfkit.obj.load_object`) with the object's maps
    (name -> `MapSpec`): its map references, license, attach type and source lines are used.

    CO-RE relocations are not applied (field offsets are checked as compiled). kfunc calls and
    `__ksym` loads are checked against `btf`, the target kernel's BTF (refused without it).
    """
    relocations = []
    kernel_refs: dict[int, str] = {}
    for ref in spec.references:
        if ref.kind in (RefKind.MAP, RefKind.MAP_VALUE):
            relocations.append(Relocation(ref.index, ref.target))
        else:
            kernel_refs[ref.index] = ref.target
    lines = {rec.index: (rec.file, rec.line, rec.text) for rec in spec.lines}
    return verify(spec.insns, prog_type=spec.type, maps=maps, relocations=relocations,
                  expected_attach_type=spec.expected_attach_type, license=spec.license,
                  line_info=lines, log_level=log_level, limit=limit, mem_size=mem_size, btf=btf,
                  attach_to=spec.attach_to or "", kernel_refs=kernel_refs)


def _refused(prog: Program | None, ref: Refusal, st: Any, line_info: LineInfo | None,
             log: Log | None) -> VerificationError:
    text = log.text() if log is not None else ""
    if prog is None:
        prog = Program([])
    return VerificationError(build_report(prog, ref.insn, ref.message, ref.hint, st, line_info, text,
                                          needs_btf=ref.needs_btf))
