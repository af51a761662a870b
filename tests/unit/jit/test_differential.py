"""Differential tests: random programs run in the JIT and in the interpreter must agree exactly.

Safe programs (every access in bounds) run in this process. Programs with out-of-bounds and wild
accesses run in a subprocess (`python test_differential.py risky N`), so that a JIT bug that crashes
the process fails the test instead of killing pytest; there the JIT must raise the interpreter's
`VmMemoryError` at the same instruction.

Registers: r1 points to the 64 bytes of run data and r9 into the middle of the stack frame; neither is
ever overwritten, stored or returned, so pointer values (host addresses in the JIT, fake ones in the
interpreter) never reach r0. r0 and r2..r8 hold scalars.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.errors import BpfkitError, VmMemoryError
from bpfkit.isa import Builder, Instruction
from bpfkit.uapi.enums import Helper
from bpfkit.uapi.insn import AtomicOp, Reg
from bpfkit.vm import Vm

DATA = bytes(range(7, 7 + 64 * 3, 3))
DATA_LEN = len(DATA)
SCALARS = [Reg.R0, Reg.R2, Reg.R3, Reg.R4, Reg.R5, Reg.R6, Reg.R7, Reg.R8]
ALU_OPS = ["add", "sub", "mul", "div", "sdiv", "mod", "smod", "or", "and", "xor", "lsh", "rsh", "arsh",
           "mov"]
JUMPS = ["jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset"]
RMW = [AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR, AtomicOp.FETCH_ADD, AtomicOp.FETCH_OR,
       AtomicOp.FETCH_AND, AtomicOp.FETCH_XOR, AtomicOp.XCHG, AtomicOp.CMPXCHG]
SPECIAL_IMMS = [0, 1, -1, 2, 7, 31, 32, 33, 63, 64, 0x7FFFFFFF, -0x80000000, 0xFF, 0xFFFF, -2]

Op = Callable[[Builder], object]

imm32 = st.one_of(st.sampled_from(SPECIAL_IMMS), st.integers(-(1 << 31), (1 << 31) - 1))
imm64 = st.one_of(imm32, st.integers(-(1 << 63), (1 << 63) - 1))
scalar = st.sampled_from(SCALARS)
size = st.sampled_from([1, 2, 4, 8])


@st.composite
def alu_op(draw: st.DrawFn) -> Op:
    op = draw(st.sampled_from([*ALU_OPS, "neg", "movsx", "end", "ld_imm64"]))
    dst = draw(scalar)
    is64 = draw(st.booleans())
    if op == "neg":
        return lambda b: b.neg(dst, is64=is64)
    if op == "movsx":
        bits = draw(st.sampled_from([8, 16, 32] if is64 else [8, 16]))
        src = draw(scalar)
        return lambda b: b.movsx(dst, src, bits, is64=is64)
    if op == "end":
        bits = draw(st.sampled_from([16, 32, 64]))
        order = draw(st.sampled_from(["le", "be", "swap"]))
        return lambda b: b.endian(dst, bits, order)  # type: ignore[arg-type]
    if op == "ld_imm64":
        value = draw(imm64)
        return lambda b: b.ld_imm64(dst, value)
    operand: Reg | int = draw(st.one_of(scalar, imm32))
    return lambda b: b.alu(op, dst, operand, is64=is64)


@st.composite
def safe_access(draw: st.DrawFn) -> Op:
    """An in-bounds load, store or atomic on the stack (through r10 or r9) or the data (r1)."""
    n = draw(size)
    where = draw(st.sampled_from(["r10", "r9", "r1"]))
    if where == "r10":  # r10 - 512 .. r10 - 505 is kept for saving r1 around bpf_loop
        base, off = Reg.R10, -n * draw(st.integers(1, 504 // n))
    elif where == "r9":
        base, off = Reg.R9, n * draw(st.integers(-248 // n, 256 // n - 1))
    else:
        base, off = Reg.R1, n * draw(st.integers(0, DATA_LEN // n - 1))
    return _access(draw, base, off, n)


def _access(draw: st.DrawFn, base: Reg, off: int, n: int) -> Op:
    kind = draw(st.sampled_from(["ldx", "ldsx", "stx", "st", "atomic", "load_acq", "store_rel"]))
    reg = draw(scalar)
    if kind == "load_acq":  # dst = *(src + off): the base is the src register
        return lambda b: b.atomic(n, AtomicOp.LOAD_ACQ, reg, off, base)
    if kind == "store_rel":
        return lambda b: b.atomic(n, AtomicOp.STORE_REL, base, off, reg)
    if kind == "ldx":
        return lambda b: b.ldx(n, reg, base, off)
    if kind == "ldsx" and n != 8:
        return lambda b: b.ldx(n, reg, base, off, signed=True)
    if kind == "st":
        value = draw(imm32)
        return lambda b: b.st(n, base, off, value)
    if kind == "atomic" and n in (4, 8):
        op = draw(st.sampled_from(RMW))
        return lambda b: b.atomic(n, op, base, off, reg)
    return lambda b: b.stx(n, base, off, reg)


@st.composite
def packet_load(draw: st.DrawFn) -> Op:
    """LD_ABS / LD_IND, mostly in range (out of range ends the program with r0 = 0)."""
    n = draw(st.sampled_from([1, 2, 4]))
    off = draw(st.one_of(st.integers(0, DATA_LEN - n), st.integers(0, DATA_LEN - n),
                         st.integers(-8, DATA_LEN + 8)))
    if draw(st.booleans()):
        return lambda b: b.ld_abs(n, off)
    src = draw(scalar)
    mask = draw(st.sampled_from([15, 31, 0x7FFFFFFF]))
    return lambda b: b.alu("and", src, mask).ld_ind(n, src, off // 2)


@st.composite
def call_op(draw: st.DrawFn) -> Op:
    kind = draw(st.sampled_from(["prandom", "cpu", "ktime", "local", "loop"]))
    if kind == "loop":  # bpf_loop(n, cb, 0, 0): a native entry from Python per iteration
        count = draw(st.integers(0, 5))

        def loop(b: Builder) -> None:
            b.stx(8, Reg.R10, -512, Reg.R1).mov(Reg.R1, count).ld_func(Reg.R2, "cb").mov(Reg.R3, 0)
            b.mov(Reg.R4, 0).call(Helper.LOOP).ldx(8, Reg.R1, Reg.R10, -512)
        return loop
    if kind == "prandom":
        return lambda b: b.call(Helper.GET_PRANDOM_U32)
    if kind == "cpu":
        return lambda b: b.call(Helper.GET_SMP_PROCESSOR_ID)
    if kind == "ktime":
        return lambda b: b.call(Helper.KTIME_GET_NS)
    return lambda b: b.call_local("sub")


@st.composite
def wild_access(draw: st.DrawFn) -> Op:
    """An access that faults in the interpreter: wild constants, NULL, pointers moved far away, r10 at
    a constant offset outside the frame, data read past its end."""
    n = draw(size)
    kind = draw(st.sampled_from(["const", "far", "r10", "data", "data"]))
    reg = Reg.R3
    if kind == "const":
        value = draw(st.one_of(st.integers(0, 4095), st.integers(1 << 63, 0xFFFF7FFFFFFFFFFF)))
        off = draw(st.integers(-64, 64))
        return _then(lambda b: b.ld_imm64(reg, value), _access(draw, reg, off, n))
    if kind == "far":
        base = draw(st.sampled_from([Reg.R1, Reg.R9]))
        delta = draw(st.sampled_from([1 << 32, -(1 << 32), 1 << 40, -(1 << 44), 1 << 62, -(1 << 63)]))
        return _then(lambda b: b.ld_imm64(reg, delta).add(reg, base), _access(draw, reg, 0, n))
    if kind == "r10":
        off = draw(st.one_of(st.integers(-n + 1, 8), st.integers(-512 - n, -513), st.integers(9, 4096),
                             st.integers(-0x8000, -513)))
        return _access(draw, Reg.R10, off, n)
    # Around the data's bounds: straddling the end, just before the start, a little past the end.
    off = draw(st.one_of(st.integers(DATA_LEN - n + 1, DATA_LEN), st.integers(-n, -1),
                         st.integers(DATA_LEN, DATA_LEN + 64)))
    return _access(draw, Reg.R1, off, n)


def _then(first: Op, second: Op) -> Op:
    def both(b: Builder) -> None:
        first(b)
        second(b)
    return both


@st.composite
def program(draw: st.DrawFn, risky: bool = False) -> list[Instruction]:
    kinds: list[Any] = [alu_op(), alu_op(), alu_op(), safe_access(), safe_access(), packet_load(),
                        call_op()]
    if risky:
        kinds.append(wild_access())
    ops = draw(st.lists(st.one_of(*kinds), min_size=1, max_size=60))
    jumps = draw(st.lists(st.tuples(st.integers(0, len(ops) - 1), st.integers(1, 6),
                                    st.sampled_from(JUMPS), scalar, st.one_of(scalar, imm32),
                                    st.booleans()), max_size=6))
    b = Builder()
    b.mov(Reg.R9, Reg.R10).add(Reg.R9, -256)
    for i, reg in enumerate(SCALARS):
        if reg is not Reg.R2:
            b.mov(reg, draw(imm32) if i % 2 else (i * 0x10001))
    jump_at: dict[int, list[tuple[str, int, str, Reg, Reg | int, bool]]] = {}
    for n, (at, skip, op, dst, src, is64) in enumerate(jumps):
        label = f"j{n}"
        jump_at.setdefault(at, []).append((label, min(at + skip, len(ops)), op, dst, src, is64))
    targets: dict[int, list[str]] = {}
    for i, op_fn in enumerate(ops):
        for label in targets.pop(i, []):
            b.label(label)
        for label, target, op, dst, src, is64 in jump_at.get(i, []):
            b.jmp(op, dst, src, label, is64=is64)
            targets.setdefault(target, []).append(label)
        op_fn(b)
    for label in targets.pop(len(ops), []):
        b.label(label)
    for reg in SCALARS[1:]:
        b.alu("xor", Reg.R0, reg)
    b.exit()
    # The local subprogram: works on its arguments and its own frame, reads the data through r1.
    b.label("sub").mov(Reg.R0, Reg.R2).alu("mul", Reg.R0, 3).add(Reg.R0, Reg.R3)
    b.stx(8, Reg.R10, -8, Reg.R0).ldx(1, Reg.R4, Reg.R1, 5).ldx(8, Reg.R5, Reg.R10, -8)
    b.alu("xor", Reg.R0, Reg.R4).add(Reg.R0, Reg.R5).exit()
    # The bpf_loop callback (index, ctx): its own frame, a helper call, stops when prandom is odd.
    b.label("cb").stx(8, Reg.R10, -16, Reg.R1).call(Helper.GET_PRANDOM_U32).ldx(8, Reg.R2, Reg.R10, -16)
    b.add(Reg.R0, Reg.R2).alu("and", Reg.R0, 1).exit()
    return b.build()


def outcome(insns: list[Instruction], engine: str) -> tuple[object, ...]:
    vm = Vm(seed=7, clock=lambda: 123_456_789, budget=100_000)
    try:
        with vm.load(insns, verify=False) as prog:  # random programs: the opt-out
            r = prog.test_run(DATA, engine=engine)  # type: ignore[arg-type]
    except BpfkitError as err:
        pc = getattr(err, "pc", None)
        return ("error", type(err).__name__, pc, str(err))
    return ("ok", r.retval, r.data_out, r.instructions)


def listing(insns: list[Instruction]) -> str:
    return "\n".join(f"{i:3} {insn}" for i, insn in enumerate(insns))


def check_same(insns: list[Instruction]) -> None:
    slow = outcome(insns, "interp")
    fast = outcome(insns, "jit")
    if slow[0] == "error" and slow[1] == VmMemoryError.__name__:
        # Faults: same class at the same instruction (the JIT's text can name another address).
        assert fast[:3] == slow[:3], f"interp {slow}\njit    {fast}\n{listing(insns)}"
    else:
        assert fast == slow, f"interp {slow}\njit    {fast}\n{listing(insns)}"


EXAMPLES = int(os.environ.get("BPFKIT_JIT_EXAMPLES", "500"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(program())
def test_jit_agrees_with_the_interpreter_on_safe_programs(insns: list[Instruction]) -> None:
    check_same(insns)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(program(risky=True))
def _risky(insns: list[Instruction]) -> None:
    check_same(insns)


def test_out_of_bounds_programs_fault_like_the_interpreter_in_a_subprocess() -> None:
    """Wild and out-of-bounds accesses: run in a child process, so a crash is a failure, not an exit."""
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    proc = subprocess.run([sys.executable, str(Path(__file__)), "risky"], capture_output=True, text=True,
                          env=env, timeout=900, check=False)
    assert proc.returncode == 0, (f"child exited with {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
                                  f"\n--- stderr\n{proc.stderr[-8000:]}")
    assert "risky: ok" in proc.stdout


if __name__ == "__main__" and sys.argv[1:] == ["risky"]:
    _risky()
    print("risky: ok")
