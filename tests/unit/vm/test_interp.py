"""Control flow in both engines (calls, frames, may_goto, budgets) and the interpreter's tracing and
single-stepping."""

from __future__ import annotations

import pytest

from bpfkit.errors import VmError, VmLimitError
from bpfkit.isa import Builder, Instruction
from bpfkit.uapi.insn import MAX_CALL_FRAMES, Reg
from bpfkit.vm import TraceStep, Vm, runtime

from .conftest import run_both

R = Reg


def test_local_calls_pass_arguments_and_keep_callee_saved_registers() -> None:
    b = Builder()
    for i in range(1, 10):
        b.mov(Reg(i), i * 11)
    b.call_local("f")
    # r0 = f(...) + r6 + r7 + r8 + r9 (callee zeroes r6-r9 and uses its own stack)
    b.add(R.R0, R.R6).add(R.R0, R.R7).add(R.R0, R.R8).add(R.R0, R.R9).exit()
    b.label("f").mov(R.R0, R.R1).add(R.R0, R.R5)
    b.stx(8, R.R10, -8, R.R0).mov(R.R6, 0).mov(R.R7, 0).mov(R.R8, 0).mov(R.R9, 0)
    b.ldx(8, R.R0, R.R10, -8).exit()
    assert run_both(b).retval == 11 + 55 + 66 + 77 + 88 + 99


def test_each_frame_has_its_own_stack_and_callers_stack_is_reachable() -> None:
    # Opt-out (verify=False): the callee returns a stack pointer into its caller's frame on purpose (the
    # kernel refuses that).
    b = Builder().st(8, R.R10, -8, 5).mov(R.R1, R.R10).add(R.R1, -8).call_local("f")
    b.ldx(8, R.R0, R.R10, -8).exit()
    b.label("f").ldx(8, R.R2, R.R1, 0).add(R.R2, 1).stx(8, R.R1, 0, R.R2)  # writes the caller's slot
    b.mov(R.R0, R.R10).exit()
    assert run_both(b, verify=False).retval == 6


def test_call_depth_limit_is_max_call_frames() -> None:
    # Opt-out (verify=False): the frame limit at run time is under test (the verifier refuses a 9-frame
    # chain first).
    def chain(depth: int) -> Builder:
        b = Builder()
        for i in range(depth - 1):
            b.call_local(f"f{i}").exit().label(f"f{i}")
        return b.mov(R.R0, 7).exit()
    assert run_both(chain(MAX_CALL_FRAMES), verify=False).retval == 7
    with pytest.raises(VmLimitError, match="MAX_CALL_FRAMES") as info:
        run_both(chain(MAX_CALL_FRAMES + 1), verify=False)
    assert info.value.pc == 2 * (MAX_CALL_FRAMES - 1)


def test_recursion_hits_the_frame_limit() -> None:
    # Opt-out (verify=False): recursion is refused by the verifier; the run-time frame limit is under test.
    b = Builder().label("f").call_local("f").exit()
    with pytest.raises(VmLimitError):
        run_both(b, verify=False)


def test_callx_calls_a_function_pointer() -> None:
    # Opt-out (verify=False): callx is outside what the kernel (and bpfkit's verifier) accept; the ISA
    # semantics are under test.
    b = Builder().ld_func(R.R3, "f").mov(R.R1, 20).callx(R.R3).add(R.R0, 1).exit()
    b.label("f").mov(R.R0, R.R1).exit()
    assert run_both(b, verify=False).retval == 21
    bad = Builder().ld_imm64(R.R3, 1 << 40).callx(R.R3).exit()
    with pytest.raises(VmError, match="callx"):
        run_both(bad, verify=False)


def test_gotol_and_ja() -> None:
    # Opt-out (verify=False): the program keeps unreachable instructions, which the kernel refuses; the
    # jumps are under test.
    b = Builder().mov(R.R0, 1).ja("x", long=True).mov(R.R0, 2).label("x").exit()
    assert run_both(b, verify=False).retval == 1


def test_falling_off_the_end_is_an_error() -> None:
    # Opt-out (verify=False): the run-time error is under test (the verifier refuses the program first).
    b = Builder().mov(R.R0, 1).jmp("jeq", R.R0, 1, "x").exit().label("x").mov(R.R0, 2)
    with pytest.raises(VmError, match="fell off") as info:
        run_both(b, verify=False)
    assert info.value.pc == 4
    with pytest.raises(VmError, match="outside the program"):  # a jump past the end: refused at load
        run_both([Instruction(0x15, 0, 0, 0, 0), Instruction(0x95)][:1], verify=False)


def test_may_goto_jumps_once_the_budget_is_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's rewrite: jump when the hidden count is 0, else decrement and fall through."""
    monkeypatch.setattr(runtime, "BPF_MAX_LOOPS", 5)
    b = Builder().mov(R.R0, 0).label("loop").may_goto("out").add(R.R0, 1).ja("loop").label("out").exit()
    assert run_both(b).retval == 5
    # each subprogram invocation gets its own count
    c = Builder().mov(R.R6, 0).call_local("f").mov(R.R6, R.R0).call_local("f").add(R.R0, R.R6).exit()
    c.label("f").mov(R.R0, 0).label("l").may_goto("o").add(R.R0, 1).ja("l").label("o").exit()
    assert run_both(c).retval == 10


def test_may_goto_default_budget_is_bpf_max_loops() -> None:
    assert runtime.BPF_MAX_LOOPS == 8 * 1024 * 1024


def test_instruction_budget() -> None:
    # Opt-out (verify=False): an endless loop; the run-time budget is under test (the verifier would
    # walk it to its 1M-instruction limit first).
    b = Builder().mov(R.R0, 0).label("l").add(R.R0, 1).ja("l")
    with pytest.raises(VmLimitError, match="budget") as info:
        run_both(b.build(), budget=1000, verify=False)
    # the interpreter and the translated code stop at the same instruction
    assert info.value.pc in (1, 2)
    assert run_both(Builder().mov(R.R0, 3).exit(), budget=2, verify=False).retval == 3
    with pytest.raises(VmLimitError):
        run_both(Builder().mov(R.R0, 3).exit(), budget=1, verify=False)


def test_trace_records_every_instruction_with_registers() -> None:
    b = Builder().mov(R.R0, 1).add(R.R0, 2).exit()
    prog = Vm().load(b.build())
    steps: list[TraceStep] = []
    assert prog.test_run(trace=steps).retval == 3
    assert [s.pc for s in steps] == [0, 1, 2]
    assert steps[1].regs[0] == 3 and steps[0].insn == b.build()[0]
    assert "r0 += 2" in str(steps[1])


def test_single_stepping() -> None:
    b = Builder().mov(R.R0, 1).call_local("f").add(R.R0, 1).exit().label("f").mov(R.R0, 40).exit()
    it = Vm().load(b.build()).debug()
    seen = []
    while True:
        seen.append(it.pc)
        if not it.step():
            break
    assert seen == [0, 1, 4, 5, 2, 3]
    assert it.retval == 41 and it.finished
    assert it.step() is False


def test_ld_imm64_and_pseudo_func_values() -> None:
    b = Builder().ld_imm64(R.R0, -2).exit()
    assert run_both(b).retval == (1 << 64) - 2


def test_atomics_in_both_engines() -> None:
    b = Builder().st(8, R.R10, -8, 10).mov(R.R1, 3)
    b.atomic(8, 0x01, R.R10, -8, R.R1)  # fetch_add: r1 = 10, mem = 13
    b.mov(R.R0, 13).mov(R.R2, 99)
    b.atomic(8, 0xF1, R.R10, -8, R.R2)  # cmpxchg: r0 == 13 -> mem = 99, r0 = 13
    b.ldx(8, R.R3, R.R10, -8)  # r3 = 99
    b.mov(R.R4, 7).atomic(4, 0xE1, R.R10, -8, R.R4)  # xchg low word: r4 = 99, mem = 7
    b.atomic(1, 0x110, R.R10, -1, R.R1)  # store_release: top byte = 10
    b.emit(Instruction(0xD3, 5, 10, -1, 0x100))  # r5 = load_acquire((u8 *)(r10 - 1)) = 10
    b.ldx(8, R.R6, R.R10, -8)  # 0x0a00_0000_0000_0007
    b.mov(R.R0, R.R3).add(R.R0, R.R4).add(R.R0, R.R5).add(R.R0, R.R1).add(R.R0, R.R6)
    b.exit()
    assert run_both(b).retval == 99 + 99 + 10 + 10 + 0x0A00_0000_0000_0007
