"""Ring buffer output and tail calls: bpfkit's JIT with native helpers beside the kernel's JIT.

    python benchmarks/bench_jit_events.py [--runs N] [--no-kernel]

Per program, ns per run of: the kernel's JIT (BPF_PROG_TEST_RUN with `repeat`, its own duration),
bpfkit's JIT with the ring buffer helpers and bpf_tail_call in native code, bpfkit's JIT with every
helper going through the Python trampoline (`JitOptions(native_helpers=False)`), and the fast
(Python-translation) engine. Programs (XDP, verified by bpfkit's verifier):

  ringbuf reserve  reserve 16 bytes, fill them (one from the context), submit
  ringbuf output   bpf_ringbuf_output of 8 bytes from the stack
  tail call        a program tail-calls another, which returns
  tail call x33    a program tail-calls itself until MAX_TAIL_CALL_CNT stops it (34 runs of it)

Figures are the best of BATCHES batches; rings are drained between batches (not timed), so no
reservation fails for lack of room.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from _common import BATCHES, best_batch, jit_missing, kernel_unavailable, parse_args, wall

from bpfkit.isa import Instruction, assemble
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType, ProgType
from bpfkit.vm import Vm
from bpfkit.vm.jit import JitOptions, set_options
from bpfkit.vm.machine import VmProgram
from bpfkit.vm.maps import RingbufMap, VmMap

RING = 1 << 24
PACKET = bytes(64)
CTX = bytes(12) + (3).to_bytes(4, "little") + bytes(8)

RESERVE = """
    r6 = r1
    r1 = map[id:0]
    r2 = 16
    r3 = 0
    call bpf_ringbuf_reserve
    if r0 == 0 goto full
    r2 = *(u32 *)(r6 + 12)
    *(u64 *)(r0 + 0) = r2
    r2 = 0x1122
    *(u64 *)(r0 + 8) = r2
    r1 = r0
    r2 = 0
    call bpf_ringbuf_submit
    r0 = 2
    exit
full:
    r0 = 1
    exit
"""
OUTPUT = """
    r1 = 0x1122
    *(u64 *)(r10 - 8) = r1
    r1 = map[id:0]
    r2 = r10
    r2 += -8
    r3 = 8
    r4 = 0
    call bpf_ringbuf_output
    r1 = r0
    r0 = 2
    if r1 == 0 goto ok
    r0 = 1
ok:
    exit
"""
TAIL = """
    r2 = map[id:1]
    r3 = 1
    call bpf_tail_call
    r0 = 1
    exit
"""
TARGET = """
    r0 = 2
    exit
"""
LOOP = """
    r2 = map[id:1]
    r3 = 0
    call bpf_tail_call
    r0 = 2
    exit
"""


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    ring: bool = False
    target: str | None = None
    """Program put at index 1 of the prog array (the program itself is at index 0)."""


CASES = (Case("ringbuf reserve", RESERVE, ring=True), Case("ringbuf output", OUTPUT, ring=True),
         Case("tail call", TAIL, target=TARGET), Case("tail call x33", LOOP))


def _with_fds(text: str, fds: Sequence[int]) -> list[Instruction]:
    return [i if i.opcode != 0x18 or i.src != 1 else Instruction(i.opcode, i.dst, i.src, i.off, fds[i.imm])
            for i in assemble(text)]


def vm_ns(case: Case, engine: str, runs: int, *, native: bool = True) -> tuple[float, int]:
    vm = Vm(budget=None)
    ring = vm.create_map(MapSpec(MapType.RINGBUF, 0, 0, RING, name="rb"))
    array = vm.create_map(MapSpec(MapType.PROG_ARRAY, 4, 4, 2, name="jmp"))
    maps: list[VmMap] = [ring, array]
    prog = vm.load(_with_fds(case.text, [m.fd for m in maps]), prog_type=ProgType.XDP, verify=True)
    prog.set_tail_call(array, 0)
    if case.target is not None:
        target = vm.load(_with_fds(case.target, [m.fd for m in maps]), prog_type=ProgType.XDP, verify=True)
        target.set_tail_call(array, 1)
    if not native:
        _trampoline(prog)
    retval = prog.test_run(PACKET, ctx=CTX, engine=engine).retval  # type: ignore[arg-type]
    assert isinstance(ring, RingbufMap)
    run = wall(lambda n: prog.test_run(PACKET, ctx=CTX, repeat=n, engine=engine),  # type: ignore[arg-type]
               before=ring.drain)
    return best_batch(run, runs), retval


def _trampoline(prog: VmProgram) -> None:
    result = prog.verification
    proven = result.proven_safe if result is not None else frozenset()
    ctx = result.ctx_loads if result is not None else frozenset()
    set_options(prog.loaded, JitOptions(proven_safe=proven, ctx_loads=ctx, verified=result is not None,
                                        native_helpers=False))


def kernel_ns(case: Case, runs: int) -> tuple[float, int]:
    from bpfkit.kernel.maps import Map
    from bpfkit.kernel.programs import Program
    from bpfkit.kernel.ringbuf import RingBuffer

    with Map.create(MapSpec(MapType.RINGBUF, 0, 0, RING, name="rb")) as ring, \
            Map.create(MapSpec(MapType.PROG_ARRAY, 4, 4, 2, name="jmp")) as array:
        fds = [ring.fileno(), array.fileno()]
        with Program.load(_with_fds(case.text, fds), ProgType.XDP, license="GPL") as prog, \
                Program.load(_with_fds(case.target or TARGET, fds), ProgType.XDP, license="GPL") as target, \
                RingBuffer(ring, lambda view: None) as reader:
            array.update((0).to_bytes(4, "little"), prog.fileno().to_bytes(4, "little"))
            array.update((1).to_bytes(4, "little"), target.fileno().to_bytes(4, "little"))
            retval = prog.test_run(PACKET, ctx_in=CTX).retval

            def measure(n: int) -> float:
                reader.consume()
                return float(prog.test_run(PACKET, ctx_in=CTX, repeat=n).duration_ns)
            try:
                return best_batch(measure, runs), retval
            finally:
                array.delete((0).to_bytes(4, "little"))  # the program array holds the programs
                array.delete((1).to_bytes(4, "little"))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, runs=200_000,
                      runs_help="runs per JIT and kernel measurement, in 20 batches (default 200000; the "
                                "trampoline and the fast engine run 1/20 and 1/200 of it)")
    if jit_missing():
        return
    kernel = None if args.no_kernel else kernel_unavailable()
    use_kernel = not args.no_kernel and kernel is None
    if kernel is not None:
        print(f"(kernel column left out: {kernel})")
    header = f"{'ns per run':<18}{'kernel JIT':>12}{'bpfkit native':>15}{'trampoline':>12}{'fast':>12}" \
             f"{'native/kernel':>15}"
    print(header)
    for case in CASES:
        native, r1 = vm_ns(case, "jit", args.runs)
        tramp, r2 = vm_ns(case, "jit", max(args.runs // 20, BATCHES), native=False)
        fast, r3 = vm_ns(case, "fast", max(args.runs // 200, BATCHES))
        if not r1 == r2 == r3:
            raise SystemExit(f"{case.name}: engines disagree: {r1} {r2} {r3}")
        kernel_figure, ratio = "-", "-"
        if use_kernel:
            kns, kr = kernel_ns(case, args.runs)
            if kr != r1:
                raise SystemExit(f"{case.name}: the kernel returned {kr}, bpfkit {r1}")
            kernel_figure = f"{kns:.0f}"
            ratio = f"{native / kns:.1f}x" if kns else "-"
        print(f"{case.name:<18}{kernel_figure:>12}{native:>15.0f}{tramp:>12.0f}{fast:>12.0f}{ratio:>15}")


if __name__ == "__main__":
    main()
