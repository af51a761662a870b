"""Speed of bpfkit's x86-64 JIT beside the VM's other engines and the kernel's JIT.

    python benchmarks/bench_jit.py [--runs N] [--no-kernel]

Per program: ns per run of the interpreter, the fast (Python-translation) engine, bpfkit's JIT
(`test_run(repeat=N)` loops in native code) and, as root with bpf(2), the kernel's JIT through
BPF_PROG_TEST_RUN with the same repeat count (`bpfkit.kernel.programs.Program`). Then JIT compile time
per 1000 instructions (code generation alone, and with mmap/mprotect), beside the kernel's load time
(verifier + JIT) for the same program. Run figures are the best of 20 batches (see `_common.BATCHES`), compile
figures the best of 3.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from _common import best_batch, best_of, jit_missing, kernel_unavailable, parse_args, timed_ms, wall

# The same two programs as bench_vm.py (a sibling script), so the figures of both scripts compare.
from bench_vm import PACKET, arithmetic_loop, xdp_parser

from bpfkit.isa import Builder, Instruction
from bpfkit.uapi.enums import ProgType
from bpfkit.uapi.insn import AtomicOp, Reg
from bpfkit.vm import Vm
from bpfkit.vm.jit import Compiler, JitProgram, runtime_for
from bpfkit.vm.translate import Translated

R = Reg


def thousand_instructions(seed: int = 1) -> list[Instruction]:
    """A 1000-instruction program of the usual mix: ALU on registers and immediates, stack loads and
    stores, atomics, forward branches. Verifiable: every register is set before use."""
    rng = random.Random(seed)
    b = Builder()
    for reg in range(10):
        b.mov(R(reg), rng.randrange(1, 1000))
    n = 10
    labels = 0
    while n < 995:
        k = rng.randrange(10)
        dst, src = R(rng.randrange(10)), R(rng.randrange(10))
        if k < 4:
            is64 = rng.random() < 0.7
            b.alu(rng.choice(["add", "sub", "mul", "or", "and", "xor", "lsh", "rsh", "arsh"]), dst,
                  rng.randrange(1, 64 if is64 else 32), is64=is64)
        elif k < 6:
            b.alu(rng.choice(["add", "sub", "mul", "or", "and", "xor", "mov"]), dst, src)
        elif k == 6:
            b.stx(8, R.R10, -8 * rng.randrange(1, 32), src)
        elif k == 7:
            b.ldx(8, dst, R.R10, -8 * rng.randrange(1, 32))
        elif k == 8:
            b.atomic(8, AtomicOp.ADD, R.R10, -8 * rng.randrange(1, 32), src)
        else:
            b.jmp(rng.choice(["jeq", "jgt", "jsgt", "jset"]), dst, rng.randrange(100), f"l{labels}")
            b.alu("add", dst, 1).label(f"l{labels}")
            labels += 1
            n += 1
        n += 1
    b.mov(R.R0, 0).exit()
    init = Builder()  # the stack slots used are written first, so the kernel's verifier accepts it
    for i in range(1, 32):
        init.st(8, R.R10, -8 * i, 0)
    return init.build() + b.build()


def vm_ns_per_run(insns: Sequence[Instruction], prog_type: ProgType | None, data: bytes, engine: str,
                  runs: int) -> tuple[float, int]:
    prog = Vm(budget=None).load(list(insns), prog_type=prog_type)
    retval = prog.test_run(data, engine=engine).retval  # type: ignore[arg-type]  # warm-up, compile
    run = wall(lambda n: prog.test_run(data, repeat=n, engine=engine))  # type: ignore[arg-type]
    ns = best_batch(run, runs)
    return ns, retval


def kernel_ns_per_run(insns: Sequence[Instruction], prog_type: ProgType | None, data: bytes,
                      runs: int) -> tuple[float, int]:
    from bpfkit.kernel.programs import Program

    packet = data or bytes(64)  # untyped programs run as XDP on a zeroed packet
    with Program.load(list(insns), prog_type or ProgType.XDP, name="bench") as prog:
        retval = prog.test_run(packet).retval
        return best_batch(lambda n: float(prog.test_run(packet, repeat=n).duration_ns), runs), retval


def kernel_load_ms(insns: Sequence[Instruction]) -> float:
    from bpfkit.kernel.programs import Program

    return best_of(lambda: timed_ms(lambda: Program.load(list(insns), ProgType.XDP, name="bench").close()))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, runs=100_000,
                      runs_help="runs per JIT and kernel measurement, in 20 batches (default 100000; the "
                                "Python engines run 1/500 and 1/50 of it)")
    if jit_missing():
        return
    why_no_kernel = kernel_unavailable(args.no_kernel)
    runs = {"interp": max(args.runs // 500, 5), "fast": max(args.runs // 50, 20), "jit": args.runs}
    cases = [("1000-op arithmetic loop", arithmetic_loop(), None, b""),
             ("XDP packet parser", xdp_parser(), ProgType.XDP, PACKET)]
    print(f"{'ns per run':<26}{'interp':>12}{'fast':>12}{'bpfkit jit':>12}{'kernel jit':>12}"
          f"{'jit/fast':>10}{'jit/kernel':>12}")
    for name, insns, prog_type, data in cases:
        figures: dict[str, float] = {}
        results = set()
        for engine in ("interp", "fast", "jit"):
            figures[engine], retval = vm_ns_per_run(insns, prog_type, data, engine, runs[engine])
            results.add(retval & 0xFFFFFFFF)  # BPF_PROG_TEST_RUN reports a 32-bit retval
        kernel = "n/a"
        ratio = "n/a"
        if why_no_kernel is None:
            ns, retval = kernel_ns_per_run(insns, prog_type, data, args.runs)
            results.add(retval)
            kernel = f"{ns:,.1f}"
            ratio = f"{figures['jit'] / ns:.1f}x" if ns else "n/a"
        assert len(results) == 1, f"engines disagree on {name}: {results}"
        print(f"{name:<26}{figures['interp']:>12,.0f}{figures['fast']:>12,.0f}{figures['jit']:>12,.1f}"
              f"{kernel:>12}{figures['fast'] / figures['jit']:>9.0f}x{ratio:>12}")
    if why_no_kernel is not None:
        print(f"kernel jit: n/a ({why_no_kernel})")

    program = thousand_instructions()
    vm = Vm()
    loaded = vm.load(program).loaded
    per_k = 1000 / len(program)
    codegen = best_of(lambda: timed_ms(lambda: Compiler(loaded).compile())) * per_k
    runtime = runtime_for(vm.mem)
    full = best_of(lambda: timed_ms(lambda: JitProgram(loaded, runtime).close())) * per_k
    size = len(Compiler(loaded).compile().code)
    translate = best_of(lambda: timed_ms(lambda: Translated(loaded))) * per_k
    print(f"\nJIT compile time per 1000 instructions ({len(program)}-instruction program, "
          f"{size:,} bytes of x86-64):")
    print(f"  bpfkit codegen        {codegen:8.2f} ms")
    print(f"  bpfkit codegen + load {full:8.2f} ms   (mmap, copy, mprotect, callbacks)")
    print(f"  fast engine translate {translate:8.2f} ms   (for comparison: Python source + compile())")
    if why_no_kernel is None:
        print(f"  kernel load           {kernel_load_ms(program) * per_k:8.2f} ms   "
              f"(BPF_PROG_LOAD: verifier + JIT)")
    else:
        print(f"  kernel load                n/a   ({why_no_kernel})")


if __name__ == "__main__":
    main()
