"""Shared helpers of the VM tests: run a program in both engines and insist they agree."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bpfkit.errors import BpfkitError
from bpfkit.isa import Builder, Instruction
from bpfkit.uapi.enums import ProgType
from bpfkit.vm import ENGINES, TestRunResult, Vm

Outcome = tuple[object, ...]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def outcome(insns: Sequence[Instruction], engine: str, data: bytes = b"", ctx: bytes | None = None,
            prog_type: ProgType | None = None, budget: int | None = 100_000, verify: bool = True
            ) -> tuple[Outcome, BpfkitError | None]:
    """Load (verified unless `verify` is False) and run on a fresh VM; a comparable summary of the
    result or of the error."""
    vm = Vm(budget=budget, seed=1)
    try:
        prog = vm.load(list(insns), prog_type=prog_type, verify=verify)
        r = prog.test_run(data, ctx, engine=engine)  # type: ignore[arg-type]
    except BpfkitError as err:
        return ("error", type(err).__name__, str(err)), err
    return ("ok", r.retval, r.data_out, r.ctx_out, r.instructions), None


def run_both(insns: Sequence[Instruction] | Builder, data: bytes = b"", *, ctx: bytes | None = None,
             prog_type: ProgType | None = None, budget: int | None = 100_000,
             verify: bool = True) -> TestRunResult:
    """Run in the interpreter and in the fast engine; results (or errors, with their messages) must
    be identical. Returns the result, or raises the error. `verify=False` is the opt-out for programs
    that test what the run-time checks catch (the verifier would refuse them first)."""
    program = insns.build() if isinstance(insns, Builder) else list(insns)
    slow, _ = outcome(program, "interp", data, ctx, prog_type, budget, verify)
    fast, err = outcome(program, "fast", data, ctx, prog_type, budget, verify)
    assert slow == fast, f"engines disagree:\n interp: {slow}\n fast:   {fast}"
    if err is not None:
        raise err
    _, retval, data_out, ctx_out, count = fast
    return TestRunResult(retval, data_out, ctx_out, 0, count)  # type: ignore[arg-type]
