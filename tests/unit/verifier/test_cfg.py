"""Structure checks: layout by slot, subprograms, jump targets, reachability, the call graph, the
combined stack of a call chain, and the liveness and precision passes used for pruning."""

from __future__ import annotations

import pytest

from bpfkit.isa import Instruction, assemble
from bpfkit.uapi.insn import InsnClass, JmpOp
from bpfkit.vm.verifier.cfg import Program, check_stack_depth, check_structure, stack_round
from bpfkit.vm.verifier.errors import Refusal
from bpfkit.vm.verifier.liveness import live_in


def _program(text: str) -> Program:
    prog = Program.layout(assemble(text))
    check_structure(prog)
    return prog


def _refusal(text: str | list[Instruction]) -> Refusal:
    insns = assemble(text) if isinstance(text, str) else text
    with pytest.raises(Refusal) as info:
        check_structure(Program.layout(insns))
    return info.value


def test_layout_by_slot() -> None:
    prog = _program("r1 = 1 ll\nr0 = 0\nexit")
    assert prog.nslots == 4 and prog.ops[1] is None and prog.op(2).insn.imm == 0


def test_invalid_encoding_is_refused_at_its_slot() -> None:
    bad = Instruction(InsnClass.JMP | JmpOp.EXIT, dst=1)
    with pytest.raises(Refusal) as info:
        Program.layout([Instruction(0xB7), bad])
    assert info.value.insn == 1 and "invalid instruction" in info.value.message


def test_empty_program() -> None:
    with pytest.raises(Refusal, match="no instructions"):
        Program.layout([])


def test_subprograms_and_calls() -> None:
    prog = _program("call f\nr2 = subprog[g]\nexit\nf:\nr0 = 0\nexit\ng:\nr0 = 1\nexit")
    assert prog.subprogs == [0, 4, 6]  # the LD_IMM64 takes slots 1 and 2
    assert prog.calls[0] == {4, 6}
    assert prog.subprog_of(5) == 4 and prog.subprog_end(4) == 6


@pytest.mark.parametrize(("text", "slot", "message"), [
    ("r0 = 0\ngoto +3\nexit", 1, "jump out of range from insn 1 to 5"),
    ("goto +1\nr1 = 0 ll\nexit", 0, "jump into the middle of ldimm64 insn 1"),
    ("r0 = 0\nexit\nr0 = 1\nexit", 2, "unreachable insn 2"),
    ("r0 = 1", 0, "last insn is not an exit or jmp"),
    ("call f\nexit\nf:\nr0 = 0\ncall f\nexit", 3, "recursive call"),
    ("call f\nif r0 == 0 goto +1\nexit\nf:\nr0 = 0\nexit", 1, "jump out of range"),
])
def test_structure_refusals(text: str, slot: int, message: str) -> None:
    ref = _refusal(text)
    assert message in ref.message and ref.insn == slot and ref.hint


def test_reachability_follows_calls_and_callbacks() -> None:
    # The callback is reached only through the function-pointer load.
    _program("r1 = 1\nr2 = subprog[cb]\nr3 = 0\nr4 = 0\ncall bpf_loop\nexit\ncb:\nr0 = 0\nexit")


def test_prune_points() -> None:
    prog = _program("r0 = 0\nif r0 == 1 goto l\nr0 = 1\nl:\ncall bpf_ktime_get_ns\nexit")
    assert prog.prune_points == {2, 3}  # the fall-through, the target (also the call)


def test_stack_rounding_and_chains() -> None:
    assert stack_round(1) == 16 and stack_round(17) == 32 and stack_round(0) == 0
    assert stack_round(1, jit=False) == 32 and stack_round(0, jit=False) == 32
    prog = _program("call f\nexit\nf:\ncall g\nexit\ng:\nr0 = 0\nexit")
    assert check_stack_depth(prog, {0: 100, 2: 200, 4: 8}) == 112 + 208 + 16
    with pytest.raises(Refusal, match="combined stack size of 3 calls is 528"):
        check_stack_depth(prog, {0: 300, 2: 200, 4: 8})


def test_liveness() -> None:
    prog = _program("r1 = 1\nr2 = 2\nr0 = r1\nexit")
    live = live_in(prog)
    assert live[2] == 0b10 and live[3] == 0b1 and live[0] == 0

