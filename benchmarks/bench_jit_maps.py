"""Helper-heavy programs: bpfkit's JIT with native helpers, the same JIT calling every helper through
its Python trampoline, the fast engine, and the kernel's JIT.

    python benchmarks/bench_jit_maps.py [--runs N] [--no-kernel]

Each program is an XDP program looping LOOP times: a hash map lookup and increment (inserting missing
keys), an array lookup and increment, and a mix of bpf_get_prandom_u32, bpf_ktime_get_ns and
bpf_get_smp_processor_id. Figures are ns per run (one run = LOOP iterations), the best of `_common.BATCHES`
batches of `test_run(repeat=...)`; the kernel column is BPF_PROG_TEST_RUN with the same repeat count on
maps made by `bpfkit.kernel.maps.Map` (as root with bpf(2)). Every engine must give the same r0 (and,
for the map programs, the same map contents) after one run on fresh maps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from _common import best_batch, jit_missing, kernel_unavailable, parse_args, wall

from bpfkit._records import replace
from bpfkit.isa import Builder, Instruction
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import Helper, MapType, ProgType
from bpfkit.uapi.insn import AtomicOp, PseudoSrc, Reg
from bpfkit.vm import Vm
from bpfkit.vm.jit import JitOptions, set_options

R = Reg
LOOP = 64
PACKET = bytes(64)
HASH = MapSpec(MapType.HASH, 4, 8, 64, name="counts")
ARRAY = MapSpec(MapType.ARRAY, 4, 8, 16, name="slots")

MapFds = dict[str, int]
"""Map name -> the fd its LD_IMM64 loads (a VM map's fake fd or a kernel map's fd)."""


def _loop(body: Callable[[Builder], None]) -> Callable[[MapFds], list[Instruction]]:
    """r6 = 0..LOOP-1 around `body` (which may use r1-r5 and r0, and adds into r7); r0 = r7."""
    def build(fds: MapFds) -> list[Instruction]:
        b = Builder().mov(R.R6, 0).mov(R.R7, 0).label("loop")
        body(b)
        b.add(R.R6, 1).jmp("jlt", R.R6, LOOP, "loop").mov(R.R0, R.R7).exit()
        return [_patch(insn, fds) for insn in b.build()]
    return build


def _map(b: Builder, reg: Reg, name: str) -> None:
    b.ld_imm64(reg, _FD_MARK[name], PseudoSrc.MAP_FD)


_FD_MARK = {"counts": 0x7FFF0001, "slots": 0x7FFF0002}


def _patch(insn: Instruction, fds: MapFds) -> Instruction:
    """Put the real map fds into the LD_IMM64s that carry a marker."""
    for name, mark in _FD_MARK.items():
        if insn.width == 2 and insn.src == PseudoSrc.MAP_FD and insn.imm & 0xFFFFFFFF == mark:
            return replace(insn, imm=fds[name])
    return insn


def _hash_body(b: Builder) -> None:
    """counts[i & 15] += 1 (insert 1 when missing); r7 += the old count."""
    b.mov(R.R1, R.R6).alu("and", R.R1, 15).stx(4, R.R10, -4, R.R1)
    _map(b, R.R1, "counts")
    b.mov(R.R2, R.R10).add(R.R2, -4).call(Helper.MAP_LOOKUP_ELEM)
    b.jmp("jeq", R.R0, 0, "insert").ldx(8, R.R1, R.R0, 0).add(R.R7, R.R1).mov(R.R1, 1)
    b.atomic(8, AtomicOp.ADD, R.R0, 0, R.R1).ja("next")
    b.label("insert").st(8, R.R10, -16, 1)
    _map(b, R.R1, "counts")
    b.mov(R.R2, R.R10).add(R.R2, -4).mov(R.R3, R.R10).add(R.R3, -16).mov(R.R4, 0)
    b.call(Helper.MAP_UPDATE_ELEM).label("next")


def _array_body(b: Builder) -> None:
    """slots[i & 7] += i; r7 += the old value."""
    b.mov(R.R1, R.R6).alu("and", R.R1, 7).stx(4, R.R10, -4, R.R1)
    _map(b, R.R1, "slots")
    b.mov(R.R2, R.R10).add(R.R2, -4).call(Helper.MAP_LOOKUP_ELEM)
    b.jmp("jeq", R.R0, 0, "next").ldx(8, R.R1, R.R0, 0).add(R.R7, R.R1)
    b.atomic(8, AtomicOp.ADD, R.R0, 0, R.R6).label("next")


def _misc_body(b: Builder) -> None:
    """r7 += prandom & 1; ktime and the cpu id are called, their values dropped (they differ)."""
    b.call(Helper.GET_PRANDOM_U32).alu("and", R.R0, 1).add(R.R7, R.R0)
    b.call(Helper.KTIME_GET_NS).call(Helper.GET_SMP_PROCESSOR_ID)


CASES: list[tuple[str, Callable[[MapFds], list[Instruction]], bool]] = [
    ("hash lookup + increment", _loop(_hash_body), True),
    ("array lookup + increment", _loop(_array_body), True),
    ("prandom + ktime + cpu id", _loop(_misc_body), False),
]


def vm_case(build: Callable[[MapFds], list[Instruction]], engine: str, runs: int, *, native: bool = True
            ) -> tuple[float, int, list[Any]]:
    """ns per run in the VM, and r0 and the map contents after one run on fresh maps."""
    vm = Vm(budget=None, seed=1)
    maps = {spec.name: vm.create_map(spec) for spec in (HASH, ARRAY)}
    prog = vm.load(build({name: m.fd for name, m in maps.items()}), prog_type=ProgType.XDP)
    retval = prog.test_run(PACKET, engine=engine).retval  # type: ignore[arg-type]
    contents = [sorted(m.items()) for m in maps.values()]
    if engine == "jit" and not native:
        options = prog.loaded.cache.get("jit_options")
        base = options if isinstance(options, JitOptions) else JitOptions()
        set_options(prog.loaded, replace(base, native_helpers=False))
        prog.test_run(PACKET, engine=engine)  # type: ignore[arg-type]  # recompile outside the timing
    run = wall(lambda n: prog.test_run(PACKET, repeat=n, engine=engine))  # type: ignore[arg-type]
    ns = best_batch(run, runs)
    return ns, retval, contents


def kernel_case(build: Callable[[MapFds], list[Instruction]], runs: int) -> tuple[float, int, list[Any]]:
    from bpfkit.kernel.maps import Map
    from bpfkit.kernel.programs import Program

    with Map.create(HASH) as h, Map.create(ARRAY) as arr:
        maps = {"counts": h, "slots": arr}
        with Program.load(build({n: m.fileno() for n, m in maps.items()}), ProgType.XDP,
                          name="bench") as prog:
            retval = prog.test_run(PACKET).retval
            contents = [sorted((bytes(k), bytes(v)) for k, v in m.items()) for m in maps.values()]
            ns = best_batch(lambda n: float(prog.test_run(PACKET, repeat=n).duration_ns), runs)
    return ns, retval, contents


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, runs=20_000,
                      runs_help="runs per JIT and kernel measurement, in 20 batches (default 20000; the "
                                "trampoline JIT runs 1/10 of it, the fast engine 1/100)")
    if jit_missing():
        return
    why_no_kernel = kernel_unavailable(args.no_kernel)
    print(f"ns per run ({LOOP} iterations)  {'fast':>12}{'jit python':>12}{'jit native':>12}"
          f"{'kernel jit':>12}{'native/py':>11}{'native/kernel':>15}")
    for name, build, maps_compared in CASES:
        fast, r_fast, c_fast = vm_case(build, "fast", max(args.runs // 100, 20))
        slow, r_slow, c_slow = vm_case(build, "jit", max(args.runs // 10, 20), native=False)
        native, r_native, c_native = vm_case(build, "jit", args.runs)
        results = {r & 0xFFFFFFFF for r in (r_fast, r_slow, r_native)}  # the kernel's r0 is 32-bit
        contents = [c_fast, c_slow, c_native]
        kernel, ratio = "n/a", "n/a"
        if why_no_kernel is None:
            ns, r_kernel, c_kernel = kernel_case(build, args.runs)
            if maps_compared:  # (random numbers and clocks differ from the kernel's)
                results.add(r_kernel)
                contents.append(c_kernel)
            kernel = f"{ns:,.0f}"
            ratio = f"{native / ns:.2f}x" if ns else "n/a"
        assert all(c == contents[0] for c in contents), f"engines disagree on the maps of {name}"
        assert len(results) == 1, f"engines disagree on {name}: {results}"
        print(f"{name:<31}{fast:>12,.0f}{slow:>12,.0f}{native:>12,.0f}{kernel:>12}"
              f"{slow / native:>10.1f}x{ratio:>15}")
    if why_no_kernel is not None:
        print(f"kernel jit: n/a ({why_no_kernel})")


if __name__ == "__main__":
    main()
