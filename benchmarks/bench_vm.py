"""Speed of the VM's engines: ns per run of a 1000-op dependent arithmetic loop and of a small XDP
packet parser, in the interpreter and the translated ("fast") engine.

    python benchmarks/bench_vm.py [--runs N]

The kernel column is BPF_PROG_TEST_RUN with `repeat` (`kernel_runner`, on `bpfkit.kernel`): printed when
bpf(2) is usable here (root), unless `--no-kernel`. The kernel times its runs itself (mean ns per run,
JIT-compiled, no syscall cost); the VM figures are wall time per run. `KERNEL_RUNNER` may be set by a
caller to another function (instructions, prog_type, data, repeat) -> mean ns per run. The VM package
never imports the kernel; this script bridges the two.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from _common import kernel_unavailable, parse_args

from bpfkit.isa import Builder, Instruction
from bpfkit.uapi.enums import ProgType, XdpAction
from bpfkit.uapi.insn import Reg
from bpfkit.vm import ENGINES, Vm

KernelRunner = Callable[[Sequence[Instruction], ProgType | None, bytes, int], float]
KERNEL_RUNNER: KernelRunner | None = None
"""Set to measure the same programs with the kernel (mean ns per run over `repeat` runs)."""

R = Reg
PACKET = (bytes(6) + bytes([2] * 6) + b"\x08\x00"
          + bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
          + b"\x30\x39\x00\x35\x00\x08\x00\x00" + bytes(18))


def arithmetic_loop() -> list[Instruction]:
    """1000 dependent ALU ops: 250 iterations of (mul, add, xor, rsh) on r0 with a counter."""
    b = Builder().mov(R.R0, 1).mov(R.R1, 250).label("loop")
    b.alu("mul", R.R0, 0x9E3779B1).add(R.R0, R.R1).alu("xor", R.R0, 0x5BD1E995).alu("rsh", R.R0, 1)
    b.sub(R.R1, 1).jmp("jne", R.R1, 0, "loop").exit()
    return b.build()


def xdp_parser() -> list[Instruction]:
    """Ethernet -> IPv4 -> UDP port 53 with bounds checks, as a verified XDP program would do it."""
    b = Builder()
    b.ldx(4, R.R2, R.R1, 0).ldx(4, R.R3, R.R1, 4)
    b.mov(R.R4, R.R2).add(R.R4, 14).jmp("jgt", R.R4, R.R3, "drop")
    b.ldx(2, R.R5, R.R2, 12).jmp("jne", R.R5, 0x0008, "pass")
    b.mov(R.R4, R.R2).add(R.R4, 34).jmp("jgt", R.R4, R.R3, "drop")
    b.ldx(1, R.R5, R.R2, 14).alu("and", R.R5, 0x0F).alu("lsh", R.R5, 2)
    b.jmp("jlt", R.R5, 20, "drop")
    b.ldx(1, R.R6, R.R2, 23).jmp("jne", R.R6, 17, "pass")
    b.mov(R.R4, R.R2).add(R.R4, R.R5).add(R.R4, 14)
    b.mov(R.R7, R.R4).add(R.R7, 8).jmp("jgt", R.R7, R.R3, "drop")
    b.ldx(2, R.R6, R.R4, 2).endian(R.R6, 16, "be").jmp("jeq", R.R6, 53, "drop")
    b.label("pass").mov(R.R0, int(XdpAction.PASS)).exit()
    b.label("drop").mov(R.R0, int(XdpAction.DROP)).exit()
    return b.build()


def measure(insns: Sequence[Instruction], prog_type: ProgType | None, data: bytes, engine: str,
            runs: int) -> tuple[float, int]:
    prog = Vm().load(list(insns), prog_type=prog_type)
    prog.test_run(data, engine=engine)  # type: ignore[arg-type]  # warm-up (and translation)
    best = float("inf")
    retval = 0
    for _ in range(3):
        start = time.perf_counter_ns()
        r = prog.test_run(data, repeat=runs, engine=engine)  # type: ignore[arg-type]
        best = min(best, (time.perf_counter_ns() - start) / runs)
        retval = r.retval
    return best, retval


def kernel_runner(insns: Sequence[Instruction], prog_type: ProgType | None, data: bytes,
                  repeat: int) -> float:
    """Mean ns per run in the kernel (BPF_PROG_TEST_RUN, best of 3). A program without a type runs as XDP
    on a zeroed 64-byte packet (test runs need a packet of at least an Ethernet header)."""
    from bpfkit.kernel.programs import Program

    with Program.load(list(insns), prog_type or ProgType.XDP, name="bench") as prog:
        packet = data or bytes(64)
        prog.test_run(packet)
        return float(min(prog.test_run(packet, repeat=repeat).duration_ns for _ in range(3)))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, runs=200, runs_help="runs per measurement (default 200)")
    runner = KERNEL_RUNNER
    if runner is None and kernel_unavailable(args.no_kernel) is None:
        runner = kernel_runner
    cases = [("1000-op arithmetic loop", arithmetic_loop(), None, b""),
             ("XDP packet parser", xdp_parser(), ProgType.XDP, PACKET)]
    header = f"{'program':<26}" + "".join(f"{e + ' ns/run':>16}" for e in ENGINES) + f"{'speed-up':>10}"
    if runner is not None:
        header += f"{'kernel ns/run':>16}"
    print(header)
    for name, insns, prog_type, data in cases:
        figures = {}
        results = set()
        for engine in ENGINES:
            ns, retval = measure(insns, prog_type, data, engine, args.runs)
            figures[engine] = ns
            results.add(retval)
        assert len(results) == 1, f"engines disagree on {name}: {results}"
        line = f"{name:<26}" + "".join(f"{figures[e]:>16,.0f}" for e in ENGINES)
        line += f"{figures['interp'] / figures['fast']:>9.1f}x"
        if runner is not None:
            line += f"{runner(insns, prog_type, data, args.runs):>16,.0f}"
        print(line)


if __name__ == "__main__":
    main()
