"""Running the eBPF ISA conformance vectors (bpf_conformance `.data` files) in the VM.

Convention of the suite: r1 points to a copy of the vector's memory (0 when it has none), r2 holds its
length, r10 the top of a 512-byte stack; the result is r0. Helpers are the suite's uBPF plugin set
(`bpfkit.vm.helpers.conformance_helpers`).
"""

from __future__ import annotations

from bpfkit._records import record
from bpfkit.errors import BpfkitError
from bpfkit.isa.conformance import Vector
from bpfkit.vm.helpers import conformance_helpers
from bpfkit.vm.machine import EngineName, Vm


@record
class VectorOutcome:
    """The result of one vector: `passed`, the r0 obtained (None on error) and the error if any."""

    name: str
    passed: bool
    retval: int | None
    error: BpfkitError | None = None


def run_vector(vector: Vector, engine: EngineName = "fast", *, budget: int | None = 1_000_000,
               verify: bool = True) -> VectorOutcome:
    """Assemble (or decode), verify for the vector's memory and run one vector; a vector with `-- error`
    passes when bpfkit refuses or faults with a BpfkitError. `verify=False` runs it unverified: the
    suite tests the ISA, and some vectors (shifts by more than the width) are ones the kernel's
    verifier refuses."""
    vm = Vm(helpers=conformance_helpers(), engine=engine, budget=budget)
    try:
        prog = vm.load(vector.instructions(), name=vector.name, verify=verify)
        retval = prog.test_run(data=vector.mem).retval
    except BpfkitError as err:
        return VectorOutcome(vector.name, vector.error is not None, None, err)
    if vector.error is not None:
        return VectorOutcome(vector.name, False, retval)
    return VectorOutcome(vector.name, retval == vector.result, retval)
