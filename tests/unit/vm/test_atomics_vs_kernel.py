"""Stack atomics with r0 as the operand, in both engines, against results recorded from the kernel
(Linux 6.18, BPF_PROG_TEST_RUN through tests/kernel/conformance_runner.py's harness, which returns the
whole 64-bit r0). Found by the VM-vs-kernel differential test: the fast engine lost the fetched value
when the fetch register was r0."""

from __future__ import annotations

import pytest

from bpfkit.isa import Builder, Instruction
from bpfkit.uapi.insn import AtomicOp, Reg
from bpfkit.vm import ENGINES, Vm

# (size, op, operand register, r0 the kernel returned)
KERNEL = [
    (4, AtomicOp.ADD, Reg.R0, 0xfffffffffffd3679),
    (4, AtomicOp.ADD, Reg.R2, 0xfffffffefffde8e8),
    (4, AtomicOp.FETCH_ADD, Reg.R0, 0x2ffff4db1),
    (4, AtomicOp.FETCH_ADD, Reg.R2, 0x5fffde8b7),
    (4, AtomicOp.FETCH_OR, Reg.R0, 0x30000001b),
    (4, AtomicOp.FETCH_OR, Reg.R2, 0x6fffde8b3),
    (4, AtomicOp.FETCH_AND, Reg.R0, 0x2ffff4db3),
    (4, AtomicOp.FETCH_AND, Reg.R2, 0x5fffde8b8),
    (4, AtomicOp.FETCH_XOR, Reg.R0, 0x20000b285),
    (4, AtomicOp.FETCH_XOR, Reg.R2, 0x6fffde8af),
    (4, AtomicOp.XCHG, Reg.R0, 0x2ffff4db3),
    (4, AtomicOp.XCHG, Reg.R2, 0x5fffde8b9),
    (4, AtomicOp.CMPXCHG, Reg.R0, 0x30000001b),
    (4, AtomicOp.CMPXCHG, Reg.R2, 0x30000001b),
    (8, AtomicOp.ADD, Reg.R0, 0xfffffffffffd3679),
    (8, AtomicOp.ADD, Reg.R2, 0xfffffffffffde8e8),
    (8, AtomicOp.FETCH_ADD, Reg.R0, 0xffffffffffff4db1),
    (8, AtomicOp.FETCH_ADD, Reg.R2, 0xfffffffffffde8b7),
    (8, AtomicOp.FETCH_OR, Reg.R0, 0x1b),
    (8, AtomicOp.FETCH_OR, Reg.R2, 0xfffffffffffde8b3),
    (8, AtomicOp.FETCH_AND, Reg.R0, 0xffffffffffff4db3),
    (8, AtomicOp.FETCH_AND, Reg.R2, 0xfffffffffffde8b8),
    (8, AtomicOp.FETCH_XOR, Reg.R0, 0xb285),
    (8, AtomicOp.FETCH_XOR, Reg.R2, 0xfffffffffffde8af),
    (8, AtomicOp.XCHG, Reg.R0, 0xffffffffffff4db3),
    (8, AtomicOp.XCHG, Reg.R2, 0xfffffffffffde8b9),
    (8, AtomicOp.CMPXCHG, Reg.R0, 0x1b),
    (8, AtomicOp.CMPXCHG, Reg.R2, 0x1b),
]


def program(size: int, op: AtomicOp, src: Reg) -> list[Instruction]:
    """[r10-8] = -2; r0 = -45674; r2 = 5; the atomic; r0 = 3*r0 + [r10-8] + 7*r2 (all three in r0)."""
    b = Builder().ld_imm64(Reg.R1, -2).stx(8, Reg.R10, -8, Reg.R1).mov(Reg.R0, -45674).mov(Reg.R2, 5)
    b.atomic(size, op, Reg.R10, -8, src)
    b.ldx(8, Reg.R1, Reg.R10, -8).alu("mul", Reg.R0, 3).add(Reg.R0, Reg.R1)
    b.alu("mul", Reg.R2, 7).add(Reg.R0, Reg.R2).exit()
    return b.build()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("size", "op", "src", "expected"), KERNEL,
                         ids=[f"{s * 8}-{op.name.lower()}-{r.name.lower()}" for s, op, r, _ in KERNEL])
def test_atomic_matches_kernel(size: int, op: AtomicOp, src: Reg, expected: int, engine: str) -> None:
    r = Vm(engine=engine).load(program(size, op, src)).test_run()  # type: ignore[arg-type]
    assert r.retval == expected
