"""The llvm dialect disassembler: exact text per instruction kind, listings with labels, errors.

The texts of the LLVM 14 kinds were taken from llvm-objdump 14 (test_objdump_oracle.py checks them
against the tool itself); the cpu v4 kinds follow newer LLVM and the kernel verifier log.
"""

from __future__ import annotations

import pytest

from bpfkit.errors import AsmError
from bpfkit.isa import Instruction, decode, disassemble
from bpfkit.isa.disasm import disassemble_llvm, format_insn, jump_target
from bpfkit.uapi.insn import PseudoCall, PseudoSrc


def text_of(hexbytes: str, **kw: bool) -> str:
    (insn,) = decode(bytes.fromhex(hexbytes))
    return format_insn(insn, **kw)


@pytest.mark.parametrize(("encoding", "plain", "alu32"), [
    ("b700000001000000", "r0 = 1", None),
    ("0c21000000000000", "w1 += w2", None),
    ("07020000fcffffff", "r2 += -4", None),
    ("1802000000000000" "0000000000000080", "r2 = -9223372036854775808 ll", None),
    ("1801000007000000" "0000000001000000", "r1 = 4294967303 ll", None),
    ("a5010400e9030000", "if r1 < 1001 goto +4", None),
    ("0500fdff00000000", "goto -3", None),
    ("0500000000000000", "goto +0", None),
    ("631afcff00000000", "*(u32 *)(r10 - 4) = r1", "*(u32 *)(r10 - 4) = w1"),
    ("7b1af8ff00000000", "*(u64 *)(r10 - 8) = r1", None),
    ("7110020000000000", "r0 = *(u8 *)(r1 + 2)", "w0 = *(u8 *)(r1 + 2)"),
    ("6910008000000000", "r0 = *(u16 *)(r1 - 32768)", "w0 = *(u16 *)(r1 - 32768)"),
    ("7910000000000000", "r0 = *(u64 *)(r1 + 0)", None),
    ("db21000000000000", "lock *(u64 *)(r1 + 0) += r2", None),
    ("c321000000000000", "lock *(u32 *)(r1 + 0) += r2", "lock *(u32 *)(r1 + 0) += w2"),
    ("c321000040000000", "lock *(u32 *)(r1 + 0) |= w2", None),
    ("db21000050000000", "lock *(u64 *)(r1 + 0) &= r2", None),
    ("db210800a1000000", "r2 = atomic_fetch_xor((u64 *)(r1 + 8), r2)", None),
    ("db21080001000000", "r2 = atomic_fetch_add((u64 *)(r1 + 8), r2)", None),
    ("c321080051000000", "w2 = atomic_fetch_and((u32 *)(r1 + 8), w2)", None),
    ("db311000e1000000", "r3 = xchg_64(r1 + 16, r3)", None),
    ("c3311000e1000000", "w3 = xchg32_32(r1 + 16, w3)", None),
    ("db311800f1000000", "r0 = cmpxchg_64(r1 + 24, r0, r3)", None),
    ("c3311800f1000000", "w0 = cmpxchg32_32(r1 + 24, w0, w3)", None),
    ("8500000001000000", "call 1", None),
    ("85100000ffffffff", "call -1", None),
    ("9500000000000000", "exit", None),
    ("dc00000010000000", "r0 = be16 r0", None),
    ("d400000020000000", "r0 = le32 r0", None),
    ("8700000000000000", "r0 = -r0", None),
    ("8400000000000000", "w0 = -w0", None),
    ("c700000003000000", "r0 s>>= 3", None),
    ("6e21010000000000", "if w1 s> w2 goto +1", None),
    ("d50100000f000000", "if r1 s<= 15 goto +0", None),
    ("300000000c000000", "r0 = *(u8 *)skb[12]", None),
    ("4810000000000000", "r0 = *(u16 *)skb[r1]", None),
    # cpu v4 and later: newer LLVM / kernel spelling
    ("3f10010000000000", "r0 s/= r1", None),
    ("9400010005000000", "w0 s%= 5", None),
    ("9f10000000000000", "r0 %= r1", None),
    ("bf10080000000000", "r0 = (s8)r1", None),
    ("bc10100000000000", "w0 = (s16)w1", None),
    ("bf10200000000000", "r0 = (s32)r1", None),
    ("d700000010000000", "r0 = bswap16 r0", None),
    ("0600000005000000", "gotol +5", None),
    ("e500030000000000", "may_goto +3", None),
    ("9110000000000000", "r0 = *(s8 *)(r1 + 0)", None),
    ("8110fcff00000000", "r0 = *(s32 *)(r1 - 4)", None),
    ("8d02000000000000", "callx r2", None),
    ("7a0af8ff05000000", "*(u64 *)(r10 - 8) = 5", None),
    ("4501010010000000", "if r1 & 16 goto +1", None),
    ("db10000000010000", "r0 = load_acquire((u64 *)(r1 + 0))", None),
    ("d310000000010000", "w0 = load_acquire((u8 *)(r1 + 0))", None),
    ("db21000010010000", "store_release((u64 *)(r1 + 0), r2)", None),
    ("c321000010010000", "store_release((u32 *)(r1 + 0), w2)", None),
    # where llvm-objdump loses information, bpfkit's re-assemblable spellings
    ("4810000002000000", "r0 = *(u16 *)skb[r1 + 2]", None),
    ("40100000feffffff", "r0 = *(u32 *)skb[r1 - 2]", None),
    ("8510000005000000", "call +5", None),
    ("85000000ffffffff", "call 4294967295", None),
    ("85200000d2040000", "call kfunc(1234)", None),
    ("85200200d2040000", "call kfunc(1234, 2)", None),
    ("1811000003000000" "0000000000000000", "r1 = map_fd(3) ll", None),
    ("1821000003000000" "0000000008000000", "r1 = map_value(3) + 8 ll", None),
    ("183100007b000000" "0000000000000000", "r1 = btf_id(123) ll", None),
    ("183100007b000000" "0000000004000000", "r1 = btf_id(123, 4) ll", None),
    ("1841000005000000" "0000000000000000", "r1 = func(+5) ll", None),
    ("18410000fdffffff" "0000000000000000", "r1 = func(-3) ll", None),
    ("1851000000000000" "0000000000000000", "r1 = map_idx(0) ll", None),
    ("1861000002000000" "0000000010000000", "r1 = map_idx_value(2) + 16 ll", None),
])
def test_text_of_each_kind(encoding: str, plain: str, alu32: str | None) -> None:
    assert text_of(encoding) == plain
    assert text_of(encoding, alu32=True) == (alu32 or plain)


def test_helper_names_follow_the_kernel_log() -> None:
    assert text_of("8500000001000000", helper_names=True) == "call bpf_map_lookup_elem#1"
    assert text_of("8500000006000000", helper_names=True) == "call bpf_trace_printk#6"
    assert text_of("85000000a0860100", helper_names=True) == "call 100000"  # no such helper
    assert text_of("85100000ffffffff", helper_names=True) == "call -1"  # local calls keep their offset


def test_annotation_names_the_label_of_the_target() -> None:
    labels = {3: "out"}
    assert format_insn(Instruction(0x05, off=1), pc=1, labels=labels) == "goto +1 <out>"
    assert format_insn(Instruction(0x05, off=2), pc=1, labels=labels) == "goto +2"
    assert format_insn(Instruction(0x85, src=1, imm=-3), pc=5, labels=labels) == "call -3 <out>"
    assert format_insn(Instruction(0x05, off=1), labels=labels) == "goto +1"  # no pc: no target


def test_jump_targets_of_every_referring_kind() -> None:
    assert jump_target(Instruction(0x15, dst=1, off=3), 10) == 14
    assert jump_target(Instruction(0x05, off=-1), 10) == 10
    assert jump_target(Instruction(0x06, imm=-11), 10) == 0
    assert jump_target(Instruction(0xE5, off=2), 0) == 3
    assert jump_target(Instruction(0x85, src=PseudoCall.CALL, imm=4), 1) == 6
    assert jump_target(Instruction(0x18, dst=1, src=PseudoSrc.FUNC, imm=-3 & 0xFFFFFFFF), 5) == 3
    assert jump_target(Instruction(0x85, imm=4), 1) is None  # a helper call
    assert jump_target(Instruction(0x18, dst=1, src=PseudoSrc.MAP_FD, imm=4), 1) is None
    assert jump_target(Instruction(0x07, dst=1, imm=4), 1) is None


def test_listing_labels_targets_in_address_order() -> None:
    insns = [
        Instruction(0xB7, dst=0),                            # 0
        Instruction(0x25, dst=1, off=3, imm=5),              # 1 -> 5
        Instruction(0x18, dst=2, imm=1 << 40),               # 2-3
        Instruction(0x85, src=PseudoCall.CALL, imm=2),       # 4 -> 7
        Instruction(0x05, off=-6),                           # 5 -> 0
        Instruction(0x95),                                   # 6
        Instruction(0x06, imm=0),                            # 7 -> 8 (the end)
    ]
    assert disassemble_llvm(insns) == (
        "L0:\n"
        "\tr0 = 0\n"
        "\tif r1 > 5 goto +3 <L1>\n"
        "\tr2 = 1099511627776 ll\n"
        "\tcall +2 <L2>\n"
        "L1:\n"
        "\tgoto -6 <L0>\n"
        "\texit\n"
        "L2:\n"
        "\tgotol +0 <L3>\n"
        "L3:\n")


def test_listing_never_labels_the_middle_of_an_ld_imm64() -> None:
    insns = [Instruction(0x05, off=1), Instruction(0x18, dst=1, imm=7), Instruction(0x95)]
    assert disassemble_llvm(insns) == "\tgoto +1\n\tr1 = 7 ll\n\texit\n"


def test_disassemble_reads_bytes_and_empty_programs() -> None:
    assert disassemble(bytes.fromhex("b7000000010000009500000000000000")) == "\tr0 = 1\n\texit\n"
    assert disassemble_llvm([]) == ""


@pytest.mark.parametrize(("insn", "message"), [
    (Instruction(0x07, dst=1, src=2), r"src must be 0"),
    (Instruction(0xFF), r"unknown opcode 0xff"),
    (Instruction(0x85, off=1, imm=1), r"off must be 0 unless the call is a kfunc call"),
    (Instruction(0xBF, dst=11, src=1), r"dst must be a register"),
])
def test_invalid_encodings_raise(insn: Instruction, message: str) -> None:
    with pytest.raises(AsmError, match=message):
        format_insn(insn)
    with pytest.raises(AsmError, match=r"instruction 3"):
        format_insn(insn, pc=3)


def test_listing_names_the_index_of_an_invalid_instruction() -> None:
    with pytest.raises(AsmError, match=r"instruction 2"):
        disassemble_llvm([Instruction(0x18, dst=1), Instruction(0x07, dst=1, src=2)])


def test_str_of_an_instruction_is_its_text() -> None:
    assert str(Instruction(0x07, dst=1, imm=-28)) == "r1 += -28"
    assert str(Instruction(0x07, dst=1, src=2)).startswith("Instruction(")
