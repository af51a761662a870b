"""bpf_tail_call in native code (`bpfkit.vm.jit.native_tailcall`), against the interpreter.

A tail call into a JIT-compiled program jumps to its code: the result, the instruction count, the
MAX_TAIL_CALL_CNT limit, the frame reuse, -ENOENT for empty or out-of-range slots, and faults inside the
target are the interpreter's; the Python tail-call helper is not called. `JitOptions(native_helpers=
False)` keeps the Python path for comparison.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bpfkit.errors import VmError
from bpfkit.isa import assemble
from bpfkit.isa.instruction import Instruction
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import Helper, MapType, ProgType
from bpfkit.vm import Vm
from bpfkit.vm.jit import JitOptions, jit_supported, set_options
from bpfkit.vm.machine import VmProgram
from bpfkit.vm.maps import VmMap
from bpfkit.vm.program import LoadedProgram
from bpfkit.vm.runtime import RunState

pytestmark = pytest.mark.skipif(jit_supported() is not None, reason=f"no JIT here: {jit_supported()}")

LOOP = """
    r6 = r1
    r1 = 0
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    r1 = map[id:1]
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r1 = *(u64 *)(r0 + 0)
    r1 += 1
    *(u64 *)(r0 + 0) = r1
    r1 = r6
    r2 = map[id:0]
    r3 = 0
    call bpf_tail_call
    r0 += 1000
    exit
out:
    r0 = 7
    exit
"""
ENTRY = """
    r6 = r1
    r1 = 0x55
    *(u64 *)(r10 - 8) = r1
    r1 = r6
    r2 = map[id:0]
    r3 = 1
    call bpf_tail_call
    r0 = 1
    exit
"""
MIDDLE = """
    r6 = r1
    r7 = *(u64 *)(r10 - 8)
    r2 = map[id:0]
    r3 = 3
    call bpf_tail_call
    r8 = r0
    r1 = r6
    r2 = map[id:0]
    r3 = 100
    call bpf_tail_call
    r8 += r0
    r1 = r6
    r2 = map[id:0]
    r3 = 2
    call bpf_tail_call
    r0 = 2
    exit
"""
LAST = """
    r0 = *(u32 *)(r1 + 12)
    r0 += r2
    exit
"""
SPIN = """
    r0 = 0
loop:
    r0 += 1
    if r0 != 0 goto loop
    exit
"""
CTX = bytes(12) + (42).to_bytes(4, "little") + bytes(8)
_CALLS: list[list[int]] = []


@pytest.fixture(autouse=True)
def _count_python_tail_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Count the calls of the VM's bpf_tail_call helper (the Python path) for the current `Setup`."""
    real = RunState.tail_call

    def counting(self: RunState, ctx: int, target: LoadedProgram | None) -> int | None:
        if _CALLS:
            _CALLS[-1].append(1)
        return real(self, ctx, target)
    monkeypatch.setattr(RunState, "tail_call", counting)
    yield
    _CALLS.clear()


class Setup:
    """A VM with a prog array (`map[id:0]`) and a counter array (`map[id:1]`); `calls` counts the tail
    calls that went through a Python helper (any engine)."""

    def __init__(self, *, native: bool = True) -> None:
        self.vm = Vm()
        self.native = native
        self.calls: list[int] = []
        _CALLS.append(self.calls)
        self.array = self.vm.create_map(MapSpec(MapType.PROG_ARRAY, 4, 4, 4, name="jmp"))
        self.counter = self.vm.create_map(MapSpec(MapType.ARRAY, 4, 8, 1, name="cnt"))

    def load(self, text: str, *, verify: bool = False) -> VmProgram:
        maps: list[VmMap] = [self.array, self.counter]
        insns = [i if i.opcode != 0x18 or i.src != 1 else
                 Instruction(i.opcode, i.dst, i.src, i.off, maps[i.imm].fd) for i in assemble(text)]
        prog = self.vm.load(insns, prog_type=ProgType.XDP, verify=verify)
        if not self.native:
            set_options(prog.loaded, JitOptions(native_helpers=False))
        return prog

    def count(self) -> int:
        return int.from_bytes(self.counter.lookup(bytes(4)), "little")


def _loop(engine: str, native: bool = True) -> tuple[object, ...]:
    s = Setup(native=native)
    prog = s.load(LOOP)
    prog.set_tail_call(s.array, 0)
    r = prog.test_run(bytes(64), engine=engine)  # type: ignore[arg-type]
    return r.retval, r.instructions, s.count(), len(s.calls)


def test_a_self_tail_call_loop_stops_after_33_tail_calls() -> None:
    retval, instructions, count, calls = _loop("interp")
    assert (retval, count) == (1000 - 2, 34)  # the 34th tail call fails: r0 = -ENOENT, + 1000
    assert calls == 34
    assert _loop("jit") == (retval, instructions, count, 0)  # never through Python
    assert _loop("jit", native=False) == (retval, instructions, count, 34)


def _chain(engine: str, *, native: bool = True) -> tuple[tuple[tuple[int, int], ...], int]:
    s = Setup(native=native)
    entry, middle, last = s.load(ENTRY, verify=True), s.load(MIDDLE), s.load(LAST)
    entry.set_tail_call(s.array, 0)
    middle.set_tail_call(s.array, 1)
    last.set_tail_call(s.array, 2)
    results: list[tuple[int, int]] = []
    for _ in range(2):
        r = entry.test_run(bytes(64), ctx=CTX, engine=engine)  # type: ignore[arg-type]
        results.append((r.retval, r.instructions))
    s.array.delete((2).to_bytes(4, "little"))  # the table follows changes of the prog array
    r = entry.test_run(bytes(64), ctx=CTX, engine=engine)  # type: ignore[arg-type]
    results.append((r.retval, r.instructions))
    return tuple(results), len(s.calls)


def test_a_chain_of_programs_with_empty_and_out_of_range_slots() -> None:
    expected, calls = _chain("interp")
    # LAST gets r2 = 0 and reads ingress_ifindex; MIDDLE sees a zeroed frame (r7 = 0).
    assert expected[0] == (42, expected[0][1]) and expected[2][0] == 2
    assert calls == 3 * 4  # per run: into MIDDLE, slot 3 (empty), slot 100, slot 2
    assert _chain("jit") == (expected, 0)
    assert _chain("jit", native=False) == (expected, calls)


def test_a_fault_in_a_tail_called_program_names_its_instruction() -> None:
    outcomes = []
    for engine in ("interp", "jit"):
        s = Setup()
        s.vm.budget = 5000
        prog = s.load(ENTRY, verify=True)
        spin = s.load(SPIN)
        spin.set_tail_call(s.array, 1)
        with pytest.raises(VmError) as err:
            prog.test_run(bytes(64), engine=engine)  # type: ignore[arg-type]
        outcomes.append((type(err.value), str(err.value), err.value.pc, err.value.insn, len(s.calls)))
    assert outcomes[0][:4] == outcomes[1][:4]
    assert outcomes[1][4] == 0
    assert "budget" in outcomes[0][1]


def test_a_target_verified_for_another_context_still_fails_through_python() -> None:
    outcomes = []
    for engine in ("interp", "jit"):
        s = Setup()
        target = s.vm.load(assemble("r0 = *(u64 *)(r1 + 8)\nexit"), mem_size=16, verify=True)  # raw memory
        target.set_tail_call(s.array, 1)
        prog = s.load(ENTRY, verify=True)
        with pytest.raises(VmError, match="cannot run on this run's XdpContext") as err:
            prog.test_run(bytes(64), engine=engine)  # type: ignore[arg-type]
        outcomes.append((err.value.pc, err.value.insn, len(s.calls)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1] is not None and outcomes[0][1].imm == Helper.TAIL_CALL
    assert outcomes[0][2] == 0  # the guard raised before any target ran
