"""`Vm.load(..., verify=True)`: bpfkit's verifier runs before the VM takes the program."""

from __future__ import annotations

import pytest

from bpfkit.errors import VerificationError, VmMemoryError
from bpfkit.isa import Builder, assemble
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType, ProgType
from bpfkit.uapi.insn import Reg
from bpfkit.vm import Vm

R = Reg
UNCHECKED = "r2 = *(u32 *)(r1 + 0)\nr0 = *(u8 *)(r2 + 20)\nexit"


def test_refused_before_it_can_fault() -> None:
    vm = Vm()
    prog = vm.load(assemble(UNCHECKED), prog_type=ProgType.XDP, verify=False)  # the opt-out
    assert prog.verification is None and not prog.verified
    with pytest.raises(VmMemoryError):  # the VM catches it only at run time, on a short packet
        prog.test_run(bytes(16))
    with pytest.raises(VerificationError) as info:
        vm.load(assemble(UNCHECKED), prog_type=ProgType.XDP, verify=True)
    assert info.value.report.insn == 1
    with pytest.raises(VerificationError) as info:  # verification is the default
        vm.load(assemble(UNCHECKED), prog_type=ProgType.XDP)
    assert info.value.report.insn == 1


def test_accepted_program_runs_and_keeps_its_result() -> None:
    vm = Vm()
    counts = vm.create_map(MapSpec(MapType.ARRAY, 4, 8, 1, name="counts"))
    b = Builder()
    b.mov(R.R1, 0).stx(4, R.R10, -4, R.R1).mov(R.R2, R.R10).add(R.R2, -4).ld_map(R.R1, "counts")
    b.call(1).jmp("jeq", R.R0, 0, "out").mov(R.R1, 1).atomic(8, 0, R.R0, 0, R.R1)
    b.label("out").mov(R.R0, 2).exit()
    prog = vm.load(b.build(), prog_type=ProgType.XDP, maps={"counts": counts},
                   relocations=b.relocations, verify=True)
    assert prog.verification is not None and prog.verification.max_stack == 16
    assert prog.test_run(bytes(64)).retval == 2
    assert counts.lookup(bytes(4)) == (1).to_bytes(8, "little")


def test_maps_by_fd_in_the_vm() -> None:
    vm = Vm()
    m = vm.create_map(MapSpec(MapType.HASH, 4, 4, 4, name="h"))
    text = f"r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = map[id:{m.fd}]\n" \
           "call bpf_map_delete_elem\nr0 = 0\nexit"
    assert vm.load(assemble(text), prog_type=ProgType.XDP, verify=True).test_run(bytes(64)).retval == 0


def test_raw_memory_size() -> None:
    vm = Vm()
    text = "r0 = *(u64 *)(r1 + 8)\nexit"
    with pytest.raises(VerificationError, match="invalid mem access 'scalar'"):
        vm.load(assemble(text), verify=True, mem_size=0)  # no memory promised: r1 may be 0
    lazy = vm.load(assemble(text))  # no size given: verified at each run for the run's data size
    with pytest.raises(VerificationError, match="invalid mem access 'scalar'"):
        lazy.test_run(b"")
    with pytest.raises(VerificationError, match="mem_size=8 off=8 size=8"):
        lazy.test_run(bytes(8))
    assert lazy.test_run(bytes(range(16))).retval == int.from_bytes(bytes(range(8, 16)), "little")
    assert lazy.verification is not None and lazy.verification.mem_size == 16
    prog = vm.load(assemble(text), verify=True, mem_size=16)
    assert prog.test_run(bytes(range(16))).retval == int.from_bytes(bytes(range(8, 16)), "little")
