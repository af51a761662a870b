"""The builder: labels resolved at build time, operand forms, relocations, errors."""

from __future__ import annotations

import pytest

from bpfkit.errors import AsmError
from bpfkit.isa import Builder, Instruction, decode, encode
from bpfkit.uapi.insn import AtomicOp, PseudoSrc, Reg


def test_forward_and_backward_labels_become_relative_offsets() -> None:
    b = Builder()
    b.label("top")
    b.mov(Reg.R0, 0)                      # slot 0
    b.jmp("jgt", Reg.R1, 5, "big")        # slot 1 -> big at 4: off = 4 - 2 = 2
    b.ld_imm64(Reg.R2, 1 << 40)           # slots 2-3
    b.label("big")
    b.jmp("jne", Reg.R1, Reg.R2, "top")   # slot 4 -> 0: off = 0 - 5 = -5
    b.exit()
    insns = b.build()
    assert insns[1] == Instruction(0x25, dst=1, off=2, imm=5)
    assert insns[3] == Instruction(0x5D, dst=1, src=2, off=-5)
    assert b.labels() == {"top": 0, "big": 4}
    assert decode(b.encode()) == insns


def test_long_jump_local_call_and_func_pointer_use_imm() -> None:
    b = Builder()
    b.ja("end", long=True)
    b.call_local("sub")
    b.ld_func(Reg.R2, "sub")
    b.label("sub")
    b.label("end")
    b.exit()
    insns = b.build()
    assert insns[0] == Instruction(0x06, imm=3)
    assert insns[1] == Instruction(0x85, src=1, imm=2)
    # the kernel resolves a PSEUDO_FUNC target as i + imm + 1, like a local call
    assert insns[2] == Instruction(0x18, dst=2, src=PseudoSrc.FUNC, imm=1)


def test_register_operands_select_the_x_form_and_ints_the_k_form() -> None:
    b = Builder()
    b.add(Reg.R1, Reg.R2).add(Reg.R1, 2).alu("sdiv", Reg.R1, Reg.R3).alu("xor", Reg.R4, -1, is64=False)
    b.movsx(Reg.R0, Reg.R1, 16).endian(Reg.R0, 16, "be").endian(Reg.R0, 64, "swap").neg(Reg.R0)
    assert [i.opcode for i in b.build()] == [0x0F, 0x07, 0x3F, 0xA4, 0xBF, 0xDC, 0xD7, 0x87]
    assert b.build()[2].off == 1 and b.build()[4].off == 16


def test_memory_forms() -> None:
    b = Builder()
    b.ldx(4, Reg.R0, Reg.R1, 2).ldx(1, Reg.R0, Reg.R1, 0, signed=True).stx(8, Reg.R10, -8, Reg.R1)
    b.st(2, Reg.R10, -2, 7).atomic(8, AtomicOp.FETCH_ADD, Reg.R10, -8, Reg.R1).ld_abs(2, 12)
    b.ld_ind(1, Reg.R3, 1)
    assert encode(b.build()).hex() == (
        "6110020000000000" "9110000000000000" "7b1af8ff00000000" "6a0afeff07000000"
        "db1af8ff01000000" "280000000c000000" "5030000001000000")


def test_map_references_are_recorded_as_relocations() -> None:
    b = Builder()
    b.mov(Reg.R0, 0)
    b.ld_map(Reg.R1, "counts")
    b.ld_map(Reg.R2, "data", value_offset=8)
    insns = b.build()
    assert [(r.slot, r.symbol) for r in b.relocations] == [(1, "counts"), (3, "data")]
    assert insns[1].src == PseudoSrc.MAP_FD and insns[2].src == PseudoSrc.MAP_VALUE
    assert insns[2].imm >> 32 == 8


def test_errors_name_the_label_and_line() -> None:
    b = Builder()
    b.line = 7
    b.ja("nowhere")
    with pytest.raises(AsmError, match=r"line 7, instruction 0.*undefined label 'nowhere'"):
        b.build()
    b2 = Builder()
    b2.label("x")
    with pytest.raises(AsmError, match="defined twice"):
        b2.label("x")
    b3 = Builder()
    b3.jmp("jeq", Reg.R0, 0, "far")
    for _ in range(40000):
        b3.mov(Reg.R0, 0)
    b3.label("far")
    with pytest.raises(AsmError, match="out of range for a 16-bit offset"):
        b3.build()
    with pytest.raises(AsmError, match="unknown jump"):
        Builder().jmp("jbogus", Reg.R0, 0, 1)
    with pytest.raises(AsmError, match="access size"):
        Builder().ldx(3, Reg.R0, Reg.R1)
