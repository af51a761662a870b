"""Load-time checks: encodings from the opcode table, targets, r10, helpers, maps."""

from __future__ import annotations

import pytest

from bpfkit.errors import AsmError, VmError, VmHelperError
from bpfkit.isa import Builder, Instruction, encode
from bpfkit.uapi.insn import Reg
from bpfkit.vm import LoadedProgram, Vm


def test_invalid_encodings_are_refused_with_their_index() -> None:
    insns = [Instruction(0xB7, 0, 0, 0, 1), Instruction(0x95, 0, 0, 0, 1)]  # exit with imm set
    with pytest.raises(AsmError) as info:
        LoadedProgram(insns)
    assert info.value.index == 1
    with pytest.raises(AsmError, match="unknown opcode"):
        LoadedProgram([Instruction(0xFF)])


def test_bytecode_is_accepted() -> None:
    code = encode(Builder().mov(Reg.R0, 3).exit().build())
    assert Vm().load(code).test_run().retval == 3


@pytest.mark.parametrize("insns", [
    [Instruction(0x05, off=5), Instruction(0x95)],  # ja past the end
    [Instruction(0x05, off=-3), Instruction(0x95)],  # ja before the start
    [Instruction(0x18, 0, 0, 0, 1), Instruction(0x05, off=-2), Instruction(0x95)],  # into an lddw
    [Instruction(0x85, 0, 1, 0, 7), Instruction(0x95)],  # local call out of range
])
def test_bad_targets(insns: list[Instruction]) -> None:
    with pytest.raises(VmError, match="target"):
        LoadedProgram(insns)


def test_r10_is_read_only() -> None:
    with pytest.raises(VmError, match="read-only") as info:
        LoadedProgram([Instruction(0x07, 10, 0, 0, 8), Instruction(0x95)])
    assert info.value.pc == 0


def test_unknown_helpers_and_kfuncs() -> None:
    with pytest.raises(VmHelperError, match="unknown helper function 9999"):
        Vm().load([Instruction(0x85, imm=9999), Instruction(0x95)])
    with pytest.raises(VmHelperError, match="kfunc"):
        Vm().load([Instruction(0x85, src=2, imm=1234), Instruction(0x95)])


def test_map_references_must_resolve() -> None:
    b = Builder().ld_imm64(Reg.R1, 4242, pseudo=1).mov(Reg.R0, 0).exit()  # type: ignore[arg-type]
    with pytest.raises(VmError, match="map 4242"):
        Vm().load(b.build())
    b2 = Builder().ld_map(Reg.R1, "missing").exit()
    with pytest.raises(VmError, match="missing"):
        Vm().load(b2.build(), maps={}, relocations=b2.relocations)


def test_empty_program() -> None:
    with pytest.raises(VmError, match="no instructions"):
        LoadedProgram([])


def test_subprograms_are_found() -> None:
    b = Builder().call_local("f").ld_func(Reg.R2, "g").exit()
    b.label("f").mov(Reg.R0, 1).exit().label("g").mov(Reg.R0, 2).exit()
    prog = LoadedProgram(b.build())
    assert prog.functions == [0, 4, 6]


@pytest.mark.parametrize("engine", ["interp", "fast"])
def test_callback_defined_before_its_use_resolves_a_negative_offset(engine: str) -> None:
    # Opt-out (verify=False): main code after its callback jumps across the callback's subprogram, which
    # the kernel refuses (jump out of range); the VM's pseudo-func resolution is under test.
    # bpf_loop(3, cb, NULL, 0) with the callback placed BEFORE the main code: the LD_IMM64's low half
    # is a negative relative offset, which the kernel reads as signed 32 bits.
    from bpfkit.uapi.enums import Helper

    b = Builder()
    b.ja("main")
    b.label("cb")
    b.mov(Reg.R0, 0)
    b.exit()
    b.label("main")
    b.mov(Reg.R1, 3)
    b.ld_func(Reg.R2, "cb")
    b.mov(Reg.R3, 0)
    b.mov(Reg.R4, 0)
    b.call(Helper.LOOP)
    b.exit()
    insns = b.build()
    assert insns[4].imm_lo < 0
    with Vm() as vm:
        prog = vm.load(insns, verify=False)
        assert prog.test_run(engine=engine).retval == 3  # bpf_loop returns the iterations it ran
