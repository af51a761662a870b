"""The clock helpers in native code (`bpfkit.vm.jit.native_clock`): libc's clock_gettime (or the raw
syscall) called from JIT code gives what the Python helpers give, makes no call into Python, keeps the
registers the VM keeps across a helper call, and calls C with a 16-byte aligned stack.

The ABI checks replace libc's clock_gettime with a machine-code stand-in that reports the stack
alignment it was called with and the clock id it was given, and clobbers every register SysV lets it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from bpfkit.isa import Builder
from bpfkit.uapi.enums import Helper
from bpfkit.uapi.insn import Reg
from bpfkit.vm import Vm
from bpfkit.vm.jit import CodeBuffer, jit_supported, native_clock
from bpfkit.vm.jit.x86 import Alu, Asm, Gp, Mem

from .dispatch_counter import PythonCalls

R = Reg
TICK = native_clock.COARSE_TICK_NS

pytestmark = pytest.mark.skipif(jit_supported() is not None, reason=f"no JIT here: {jit_supported()}")


def boottime_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def run_jit(helper: int, vm: Vm | None = None) -> int:
    prog = (vm or Vm()).load(Builder().call(helper).exit().build())
    return prog.test_run(engine="jit").retval


@pytest.fixture(params=["libc", "syscall"])
def clock_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with libc's clock_gettime and with the raw syscall (no libc symbol)."""
    path: str = request.param
    if path == "syscall":
        monkeypatch.setattr(native_clock, "libc_clock_gettime", lambda: 0)
    else:
        assert native_clock.libc_clock_gettime() != 0  # glibc and musl both have it
    return path


# -- the clocks ---------------------------------------------------------------------------------------
def test_ktime_is_the_monotonic_clock_without_python(clock_path: str, python_calls: PythonCalls) -> None:
    for _ in range(3):
        before = time.monotonic_ns()
        got = run_jit(Helper.KTIME_GET_NS)
        after = time.monotonic_ns()
        assert before <= got <= after
    assert python_calls.count == 0


def test_boot_clock_is_boottime_without_python(clock_path: str, python_calls: PythonCalls) -> None:
    before = boottime_ns()
    got = run_jit(Helper.KTIME_GET_BOOT_NS)
    after = boottime_ns()
    assert before <= got <= after
    assert python_calls.count == 0


def test_coarse_clock_is_the_monotonic_clock_in_ticks(clock_path: str, python_calls: PythonCalls) -> None:
    before = time.monotonic_ns()
    got = run_jit(Helper.KTIME_GET_COARSE_NS)
    after = time.monotonic_ns()
    assert got % TICK == 0
    assert before - before % TICK <= got <= after - after % TICK
    assert python_calls.count == 0


def test_a_loop_of_clock_reads_never_goes_backwards(python_calls: PythonCalls) -> None:
    """64 reads in one run: each one at least the previous one (r7 counts the steps back)."""
    b = Builder().mov(R.R6, 0).mov(R.R7, 0).mov(R.R8, 0).label("loop").call(Helper.KTIME_GET_NS)
    b.jmp("jge", R.R0, R.R8, "fwd").add(R.R7, 1).label("fwd").mov(R.R8, R.R0)
    b.add(R.R6, 1).jmp("jlt", R.R6, 64, "loop").mov(R.R0, R.R7).exit()
    assert Vm().load(b.build()).test_run(engine="jit").retval == 0
    assert python_calls.count == 0


def test_a_fake_clock_stays_in_python(python_calls: PythonCalls) -> None:
    vm = Vm(clock=lambda: 123_456_789)
    assert run_jit(Helper.KTIME_GET_NS, vm) == 123_456_789
    assert run_jit(Helper.KTIME_GET_COARSE_NS, vm) == 123_456_789 - 123_456_789 % TICK
    assert python_calls.count == 2
    interp = Vm(clock=lambda: 123_456_789).load(Builder().call(Helper.KTIME_GET_NS).exit().build())
    assert interp.test_run(engine="interp").retval == 123_456_789


def test_the_boot_clock_ignores_a_fake_clock_as_python_does(python_calls: PythonCalls) -> None:
    vm = Vm(clock=lambda: 5)
    interp = vm.load(Builder().call(Helper.KTIME_GET_BOOT_NS).exit().build()).test_run(engine="interp").retval
    got = run_jit(Helper.KTIME_GET_BOOT_NS, vm)
    assert interp <= got <= boottime_ns()
    assert python_calls.count == 0


def test_a_replaced_clock_helper_runs_in_python(python_calls: PythonCalls) -> None:
    vm = Vm()
    vm.register_helper(Helper.KTIME_GET_NS, lambda rt, *args: 42)
    assert run_jit(Helper.KTIME_GET_NS, vm) == 42
    assert python_calls.count == 1


# -- the ABI, through a stand-in clock_gettime -------------------------------------------------------------
CLOBBER = 0x5A5A5A5A5A5A5A5A


def stand_in(result: int) -> CodeBuffer:
    """int clock_gettime(clockid_t id, struct timespec *ts): ts = {id, (rsp at the call) % 16}; every
    caller-saved register clobbered; returns `result`."""
    a = Asm()
    a.lea(Gp.RAX, Mem(Gp.RSP, 8))  # rsp before the call pushed the return address
    a.alu(Alu.AND, Gp.RAX, 15)
    a.mov(Mem(Gp.RSI, 8), Gp.RAX)
    a.mov(Mem(Gp.RSI), Gp.RDI)
    for reg in (Gp.RCX, Gp.RDX, Gp.RSI, Gp.RDI, Gp.R8, Gp.R9, Gp.R10, Gp.R11):
        a.mov(reg, CLOBBER)
    a.mov(Gp.RAX, result)
    a.ret()
    return CodeBuffer(a.assemble(), 0)


@pytest.fixture
def use_stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    buffers: list[CodeBuffer] = []

    def install(result: int) -> None:
        buf = stand_in(result)
        buffers.append(buf)
        monkeypatch.setattr(native_clock, "libc_clock_gettime", lambda: buf.address)

    yield install
    for buf in buffers:
        buf.close()


def aligned_value(clock_id: int) -> int:
    """What the stand-in makes a clock helper return when the call was aligned."""
    return clock_id * native_clock.NS_PER_SEC


@pytest.mark.parametrize("helper,clock_id", [(Helper.KTIME_GET_NS, native_clock.CLOCK_MONOTONIC),
                                             (Helper.KTIME_GET_BOOT_NS, native_clock.CLOCK_BOOTTIME)])
def test_the_call_passes_the_clock_id_on_an_aligned_stack(use_stand_in: Callable[[int], None],
                                                          python_calls: PythonCalls, helper: int,
                                                          clock_id: int) -> None:
    use_stand_in(0)
    assert run_jit(helper) == aligned_value(clock_id)
    assert python_calls.count == 0


def test_the_stack_is_aligned_in_subprograms_and_may_goto_loops(use_stand_in: Callable[[int], None],
                                                                python_calls: PythonCalls) -> None:
    use_stand_in(0)
    b = Builder().call_local("sub").exit()
    b.label("sub").call_local("sub2").exit()
    b.label("sub2").mov(R.R6, 0).label("top").may_goto("out").call(Helper.KTIME_GET_NS).add(R.R6, R.R0)
    b.ja("top").label("out").mov(R.R0, R.R6).exit()
    prog = Vm().load(b.build(), verify=False)
    got = prog.test_run(engine="jit").retval
    assert got % aligned_value(native_clock.CLOCK_MONOTONIC) == 0 and got != 0
    assert python_calls.count == 0


def test_registers_survive_the_call_as_in_the_interpreter(use_stand_in: Callable[[int], None]) -> None:
    """r1-r5 (which the VM gives back to a caller) and r6-r9 keep their values across the C call."""
    use_stand_in(0)
    b = Builder()
    for reg in range(1, 10):
        b.mov(R(reg), reg * 0x1111)
    b.call(Helper.KTIME_GET_NS).mov(R.R0, 0)
    for reg in range(1, 10):
        b.alu("lsh", R.R0, 7).alu("xor", R.R0, R(reg))
    insns = b.exit().build()
    results = {engine: Vm().load(insns, verify=False).test_run(engine=engine).retval  # type: ignore[arg-type]
               for engine in ("interp", "jit")}
    assert results["jit"] == results["interp"]
    assert results["jit"] != 0


def test_a_failing_clock_gettime_falls_back_to_python(use_stand_in: Callable[[int], None],
                                                      python_calls: PythonCalls) -> None:
    use_stand_in(-1)
    before = time.monotonic_ns()
    got = run_jit(Helper.KTIME_GET_NS)
    assert before <= got <= time.monotonic_ns()
    assert python_calls.count == 1
