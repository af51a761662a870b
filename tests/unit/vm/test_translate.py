"""The translated engine: generated source, and differential testing against the interpreter on random
programs built from the opcode table (results, errors and messages must match)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.errors import VmMemoryError
from bpfkit.isa import Builder, Instruction
from bpfkit.isa.opcodes import OPCODES, Kind, OpSpec
from bpfkit.uapi.enums import ProgType
from bpfkit.uapi.insn import Reg
from bpfkit.vm import LoadedProgram, Vm
from bpfkit.vm.translate import translate_source

from .conftest import outcome

SPECS: list[OpSpec] = [s for s in OPCODES.values()
                       if s.kind not in (Kind.CALL, Kind.CALLX, Kind.LD_ABS, Kind.LD_IND)]
VALUES = [0, 1, 2, 7, 31, 32, 63, 64, -1, -2, 0x7FFFFFFF, -0x80000000, 0x12345678]


@st.composite
def instruction(draw: st.DrawFn, index: int, length: int) -> Instruction:
    spec = draw(st.sampled_from(SPECS))

    def pick(rule: frozenset[int] | None, default: st.SearchStrategy[int]) -> int:
        return draw(st.sampled_from(sorted(rule))) if rule is not None else draw(default)

    dst_rule = spec.dst
    if spec.kind in (Kind.ALU, Kind.END, Kind.LD_IMM64, Kind.LDX):
        dst_rule = frozenset(range(10))  # r10 is read-only
    dst = pick(dst_rule, st.integers(0, 9))
    src_rule = spec.src
    if spec.kind is Kind.ATOMIC:
        src_rule = frozenset(range(10))
    src = pick(src_rule, st.integers(0, 10))
    if spec.kind in (Kind.JUMP, Kind.JCOND, Kind.JA):
        target = draw(st.integers(0, length))  # forward and backward jumps, possibly to the end
        rel = target - index - 1
        if spec.off is None:  # the offset is in off (JA, conditional jumps, may_goto)
            return Instruction(spec.opcode, dst, src, rel, pick(spec.imm, st.sampled_from(VALUES)))
        return Instruction(spec.opcode, dst, src, 0, rel)  # gotol: the offset is in imm
    if spec.kind in (Kind.LDX, Kind.ST, Kind.STX, Kind.ATOMIC):
        off = draw(st.sampled_from([-8, -16, -512, -4, 0, 8, -520]))
        imm = pick(spec.imm, st.sampled_from(VALUES))
        return Instruction(spec.opcode, dst, src if spec.src is not None else 0, off, imm)
    off = pick(spec.off, st.just(0))
    if spec.kind is Kind.LD_IMM64:
        return Instruction(spec.opcode, dst, 0, 0, draw(st.sampled_from([*VALUES, 1 << 40, -(1 << 50)])))
    return Instruction(spec.opcode, dst, src, off, pick(spec.imm, st.sampled_from(VALUES)))


@st.composite
def program(draw: st.DrawFn) -> list[Instruction]:
    length = draw(st.integers(1, 24))
    body = [draw(instruction(i, length)) for i in range(length)]
    prologue = [Instruction(0xBF, 1, 10, 0, 0), Instruction(0x07, 1, 0, 0, -64)]  # r1 = fp - 64
    return prologue + body + [Instruction(0x95)]  # relative offsets survive the prologue


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program())
def test_engines_agree_on_random_programs(insns: list[Instruction]) -> None:
    # LD_IMM64 takes two slots: slot-relative jumps built above may land inside one; both engines
    # then refuse the program identically at load time.
    slow = outcome(insns, "interp", budget=3000, verify=False)[0]  # wild programs: the opt-out
    fast = outcome(insns, "fast", budget=3000, verify=False)[0]
    assert slow == fast
    assert "internal error" not in str(slow)


def test_source_is_plain_python_with_one_function_per_subprogram() -> None:
    b = Builder().call_local("f").exit().label("f").mov(Reg.R0, 1).exit()
    src = translate_source(LoadedProgram(b.build()))
    compile(src, "<test>", "exec")
    assert "def F_0(" in src and "def F_2(" in src


def test_long_straight_and_branchy_programs_translate() -> None:
    """Deep chains of single-predecessor blocks stay under Python's nesting limits."""
    b = Builder().mov(Reg.R0, 0)
    for i in range(400):
        b.jmp("jeq", Reg.R0, 1000 + i, f"x{i}").add(Reg.R0, 1).label(f"x{i}")
    b.exit()
    prog = Vm().load(b.build())
    assert prog.test_run().retval == 400
    assert prog.test_run(engine="interp").retval == 400


def test_loops_run_through_the_dispatch() -> None:
    b = Builder().mov(Reg.R0, 0).mov(Reg.R1, 1000).label("l").add(Reg.R0, Reg.R1).sub(Reg.R1, 1)
    b.jmp("jne", Reg.R1, 0, "l").exit()
    prog = Vm().load(b.build())
    assert prog.test_run().retval == 500500
    assert prog.test_run().instructions == 2 + 3 * 1000 + 1


# -- verified programs: proven-safe accesses translated without their check ------------------------
# (the programs are shared with the JIT's tests/unit/jit/test_proven_safe.py)
_PROGRAMS = runpy.run_path(str(Path(__file__).resolve().parents[2] / "data" / "vm_programs.py"))
STACK: str = _PROGRAMS["STACK"]
PACKET: str = _PROGRAMS["PACKET"]
IPV4: bytes = _PROGRAMS["IPV4"]


@pytest.mark.parametrize(("text", "prog_type", "data"), [
    (STACK, None, b""), (PACKET, ProgType.XDP, IPV4)], ids=["stack", "packet"])
def test_verified_programs_translate_with_fewer_checks_and_the_same_results(
        text: str, prog_type: ProgType | None, data: bytes) -> None:
    from bpfkit.isa import assemble
    from bpfkit.vm.translate import translated

    runs = []
    for verify in (False, True):
        prog = Vm().load(assemble(text), prog_type=prog_type, verify=verify)
        r = prog.test_run(data, engine="fast")
        code = translated(prog.loaded)
        runs.append(((r.retval, r.data_out, r.instructions), code.checked, code.unchecked, code.source))
    (plain, checked, unchecked, source), (safe, safe_checked, safe_unchecked, safe_source) = runs
    assert plain == safe
    assert unchecked == 0 and source.count("slow_") == checked > 0  # unverified: every access checked
    assert safe_unchecked > 0 and safe_checked < checked
    assert safe_checked + safe_unchecked == checked
    assert safe_source.count("slow_") == safe_checked


def test_context_accesses_stay_checked_in_a_verified_program() -> None:
    from bpfkit.isa import assemble
    from bpfkit.vm.translate import translated

    prog = Vm().load(assemble(PACKET), prog_type=ProgType.XDP)
    prog.test_run(bytes(60))
    assert prog.verification is not None
    assert {0, 1}.isdisjoint(prog.verification.proven_safe)  # XDP ctx reads go through hooks
    source = translated(prog.loaded).source
    assert "S.slow_load(a, 4, False, 0)" in source and "S.slow_load(a, 4, False, 1)" in source


R2_DEPENDENT = """
    r3 = r2
    r3 *= 2
    r3 -= 32
    r1 += r3
    r0 = *(u8 *)(r1 + 15)
    exit
"""
"""In bounds only when r2 (the data size) is 16: the offset grows twice as fast as the data."""


@pytest.mark.parametrize("engine", ["fast", "interp", "jit"])
def test_raw_memory_is_verified_for_each_data_size(engine: str) -> None:
    """The verifier takes r2 as the exact data size, so a proof for 16 bytes says nothing about 17: a
    run with another size is verified again for that size (and refused here) instead of running the
    proof's unchecked accesses out of bounds."""
    from bpfkit.errors import VerificationError
    from bpfkit.isa import assemble

    for mem_size in (None, 16):
        prog = Vm().load(assemble(R2_DEPENDENT), mem_size=mem_size)
        assert prog.test_run(bytes(range(16)), engine=engine).retval == 15  # type: ignore[arg-type]
        assert prog.verification is not None and prog.verification.mem_size == 16
        with pytest.raises(VerificationError, match="mem_size=17 off=17 size=1"):
            prog.test_run(bytes(17), engine=engine)  # type: ignore[arg-type]
        assert prog.test_run(bytes(range(16)), engine=engine).retval == 15  # type: ignore[arg-type]
    unverified = Vm().load(assemble(R2_DEPENDENT), verify=False)
    with pytest.raises(VmMemoryError, match="out of bounds"):
        unverified.test_run(bytes(17), engine=engine)  # type: ignore[arg-type]
