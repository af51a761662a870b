"""Differential test of the VM against the kernel: random programs (tests/kernel/vm_kernel_diff.py: every
ALU op 32/64-bit, byte swaps, forward jumps, stack loads/stores of every size, sign-extending loads,
stack atomics, packet loads/stores) must leave r0, every register, the stack and the packet the same in
both VM engines as in the kernel (BPF_PROG_TEST_RUN). Fixed seed and size here; for long runs use
`tools/difftest_vm_kernel.py --examples N`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings

from bpfkit.vm import ENGINES


def _load(name: str, path: Path) -> ModuleType:
    """Import a support module by file (the suite runs with --import-mode=importlib)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


d = _load("vm_kernel_diff", Path(__file__).with_name("vm_kernel_diff.py"))
pytestmark = pytest.mark.kernel

EXAMPLES = 1000


def test_random_programs_agree() -> None:
    stats = d.Stats()
    seen: set[tuple[int, int, int]] = set()

    @settings(derandomize=True, max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(d.programs())
    def check(gen: Any) -> None:
        kernel = d.run_kernel(gen)
        if isinstance(kernel, str):
            stats.rejected += 1
            stats.reasons[kernel] += 1
            assume(False)
        stats.compared += 1
        seen.update(d.signature(insn) for insn in gen.insns)
        for engine in ENGINES:
            vm = d.run_vm(gen, engine)
            assert vm == kernel, d.explain(gen, kernel, vm, engine)

    check()
    print(stats.summary())
    # Generation is meant to be verifier-friendly: nearly every program must be compared.
    assert stats.compared >= EXAMPLES * 9 // 10, stats.summary()
    # ...and together the compared programs use every operation the generator knows.
    missing = d.universe() - seen
    assert not missing, f"operations never compared: {sorted(missing)}"


def test_the_comparison_sees_registers_stack_and_packet() -> None:
    """The epilogue really exports state: a program's packet output holds its registers and stack."""
    from bpfkit.isa import Builder
    from bpfkit.uapi.enums import XdpAction
    from bpfkit.uapi.insn import Reg

    b = Builder()
    b.ldx(4, Reg.R2, Reg.R1, 0).ldx(4, Reg.R3, Reg.R1, 4).mov(Reg.R6, Reg.R2)
    b.add(Reg.R2, d.PACKET_LEN).jmp("jgt", Reg.R2, Reg.R3, "short")
    b.ld_imm64(Reg.R0, 0x1122334455667788).mov(Reg.R9, -3).st(8, Reg.R10, -8, 77)
    for i, r in enumerate(d.SCALARS):
        if r in (Reg.R0, Reg.R9):
            b.stx(8, Reg.R6, d.REGS_OFF + 8 * i, r)
    b.ldx(8, Reg.R1, Reg.R10, -8).stx(8, Reg.R6, d.STACK_OFF, Reg.R1)
    b.mov(Reg.R0, int(XdpAction.PASS)).exit().label("short").mov(Reg.R0, 0).exit()
    gen = d.Generated(tuple(b.build()), bytes(d.PACKET_LEN))
    kernel = d.run_kernel(gen)
    assert not isinstance(kernel, str), kernel
    out = kernel[1]
    assert int.from_bytes(out[0:8], "little") == 0x1122334455667788
    assert int.from_bytes(out[64:72], "little") == (1 << 64) - 3
    assert int.from_bytes(out[d.STACK_OFF:d.STACK_OFF + 8], "little") == 77
    for engine in ENGINES:
        assert d.run_vm(gen, engine) == kernel


def test_recorded_atomic_results_still_hold() -> None:
    """The kernel still gives the r0 values tests/unit/vm/test_atomics_vs_kernel.py records."""
    cr = _load("conformance_runner", Path(__file__).with_name("conformance_runner.py"))
    table = _load("atomics_table", Path(__file__).parents[1] / "unit" / "vm" / "test_atomics_vs_kernel.py")
    from bpfkit.isa import encode
    from bpfkit.isa.conformance import Vector

    for size, op, src, expected in table.KERNEL:
        code = encode(table.program(size, op, src))
        words = tuple(int.from_bytes(code[i:i + 8], "little") for i in range(0, len(code), 8))
        got = cr.run_in_kernel(Vector(name=f"{op.name}-{size}-{src.name}", raw=words, result=expected))
        assert (got.verdict, got.r0) == (cr.PASS, expected), got
