"""USDT argument fetching code, run in bpfkit's VM on a hand-made x86-64 ``struct pt_regs`` context.

The oracle is the spec's meaning computed in Python from the same register and memory bytes: the
register (or the memory at base + disp + index * scale) truncated to the size and sign- or
zero-extended. Memory operands point back into the context bytes, past the pt_regs part, which the
VM's bpf_probe_read_user reads like user memory.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfkit.errors import CompileError
from bpfkit.isa import Builder
from bpfkit.kernel.attach.usdt_args import X86_64_PT_REGS, parse_usdt_args
from bpfkit.obj.usdt import const_value, emit_usdt_arg
from bpfkit.uapi.enums import ProgType
from bpfkit.uapi.insn import Reg
from bpfkit.vm import Vm

PT_REGS_SIZE = 21 * 8
MEM = bytes(range(0x80, 0xC0))  # 64 bytes of "user memory" after pt_regs
MASK = (1 << 64) - 1


@pytest.fixture(scope="module")
def vm() -> Iterator[Vm]:
    with Vm() as v:
        yield v


@pytest.fixture(scope="module")
def ctx_base(vm: Vm) -> int:
    """Where the VM maps a tracing program's context (r1): memory operands point into it."""
    b = Builder()
    b.mov(Reg.R0, Reg.R1).exit()
    return vm.load(b.build(), prog_type=ProgType.KPROBE).test_run(ctx=bytes(PT_REGS_SIZE)).retval


def pt_regs(regs: dict[str, int]) -> bytes:
    out = bytearray(PT_REGS_SIZE)
    for name, value in regs.items():
        struct.pack_into("<Q", out, X86_64_PT_REGS[name], value & MASK)
    return bytes(out) + MEM


def fetch(vm: Vm, spec: str, index: int, regs: dict[str, int], *, dst: Reg = Reg.R7,
          ctx: Reg = Reg.R6) -> int:
    """Run code fetching argument `index` of `spec` and return it (as u64)."""
    b = Builder()
    b.mov(ctx, Reg.R1)
    emit_usdt_arg(b, dst, ctx, parse_usdt_args(spec), index)
    b.mov(Reg.R0, dst).exit()
    prog = vm.load(b.build(), prog_type=ProgType.KPROBE, verify=True)
    return prog.test_run(ctx=pt_regs(regs)).retval


def extend(value: int, size: int, signed: bool) -> int:
    bits = size * 8
    v = value & ((1 << bits) - 1)
    if signed and v >> (bits - 1):
        v -= 1 << bits
    return v & MASK


RAX = 0x1122_3344_DEAD_BEFE


@pytest.mark.parametrize("spec, expected", [
    ("8@%rax", RAX),
    ("4@%eax", 0xDEADBEFE),
    ("-4@%eax", extend(0xDEADBEFE, 4, True)),
    ("2@%ax", 0xBEFE),
    ("-2@%ax", extend(0xBEFE, 2, True)),
    ("1@%al", 0xFE),
    ("-1@%al", MASK - 1),  # -2
    ("1@%ah", 0xBE),
    ("-1@%ah", extend(0xBE, 1, True)),
])
def test_register_arguments(vm: Vm, spec: str, expected: int) -> None:
    assert fetch(vm, spec, 0, {"rax": RAX}) == expected


@pytest.mark.parametrize("spec, expected", [
    ("4@$5", 5), ("-4@$-5", MASK - 4), ("8@$0x123456789", 0x123456789), ("-1@$255", MASK),
    ("4@$-1", 0xFFFFFFFF), ("8@$-9223372036854775808", 1 << 63),
])
def test_constant_arguments(vm: Vm, spec: str, expected: int) -> None:
    assert fetch(vm, spec, 0, {}) == expected
    assert const_value(parse_usdt_args(spec)[0]) & MASK == expected


def mem(off: int, size: int, signed: bool) -> int:
    return extend(int.from_bytes(MEM[off:off + size], "little"), size, signed)


def test_memory_arguments(vm: Vm, ctx_base: int) -> None:
    user = ctx_base + PT_REGS_SIZE
    regs = {"rbp": user + 16, "rax": user, "rbx": 3, "rsi": user + 40, "rdi": user + 0x7FFF_0000}
    spec = "8@-8(%rbp) -4@8(%rax,%rbx,4) 2@(%rsi) -1@(%rsi) 4@-0x7fff0000(%rdi) -8@16(%rbp)"
    expected = [mem(8, 8, False), mem(20, 4, True), mem(40, 2, False), mem(40, 1, True), mem(0, 4, False),
                mem(32, 8, True)]
    assert [fetch(vm, spec, i, regs) for i in range(len(expected))] == expected
    # the index register's value counts scaled: rbx = 5 moves the same operand 8 bytes on
    assert fetch(vm, spec, 1, {**regs, "rbx": 5}) == mem(28, 4, True)


def test_memory_argument_with_context_in_a_helper_argument_register(vm: Vm, ctx_base: int) -> None:
    """The context may be in r1-r5 (the address is computed before the helper call clobbers them)."""
    user = ctx_base + PT_REGS_SIZE
    regs = {"rax": user, "rcx": 2}
    for ctx in (Reg.R1, Reg.R3):
        assert fetch(vm, "-4@4(%rax,%rcx,8)", 0, regs, ctx=ctx, dst=Reg.R3) == mem(20, 4, True)


def test_unreadable_memory_gives_zero(vm: Vm) -> None:
    assert fetch(vm, "8@8(%rbp)", 0, {"rbp": 0x1000}) == 0


@pytest.mark.parametrize("spec, index, message", [
    ("4@%eax", 1, "no argument 2 (the probe has 1)"),
    ("4@%eax", -1, "no argument 0"),
    ("8@counter(%rip)", 0, "symbol 'counter'"),
])
def test_what_cannot_be_fetched_is_a_compile_error(spec: str, index: int, message: str) -> None:
    with pytest.raises(CompileError, match=re.escape(message)):
        emit_usdt_arg(Builder(), Reg.R7, Reg.R6, parse_usdt_args(spec), index, where="p:q")


def test_register_misuse_is_a_compile_error() -> None:
    args = parse_usdt_args("8@-8(%rbp)")
    with pytest.raises(CompileError, match="r10"):
        emit_usdt_arg(Builder(), Reg.R10, Reg.R6, args, 0)
    with pytest.raises(CompileError, match="not r0"):
        emit_usdt_arg(Builder(), Reg.R7, Reg.R0, args, 0)
    with pytest.raises(CompileError, match="stack slot"):
        emit_usdt_arg(Builder(), Reg.R7, Reg.R6, args, 0, stack_off=-4)


REGS64 = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
          "r15"]


@settings(max_examples=60, deadline=None)
@given(reg=st.sampled_from(REGS64), size=st.sampled_from([1, 2, 4, 8]), signed=st.booleans(),
       value=st.integers(0, MASK))
def test_any_register_any_size(vm: Vm, reg: str, size: int, signed: bool, value: int) -> None:
    """Every register, every size, signed or not: the fetched value is the register's low bytes extended."""
    spec = f"{'-' if signed else ''}{size}@%{reg}"  # the full register name: the size says how much
    assert fetch(vm, spec, 0, {reg: value}) == extend(value, size, signed)
