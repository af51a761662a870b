"""The llvm dialect assembler: round trips with the disassembler, accepted spellings, and errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfkit.errors import AsmError
from bpfkit.isa import OPCODES, Instruction, Kind, assemble, disassemble, encode, field_error
from bpfkit.isa.asm import assemble_llvm
from bpfkit.isa.disasm import disassemble_llvm, format_insn
from bpfkit.isa.opcodes import OpSpec
from bpfkit.uapi.insn import PseudoCall, PseudoSrc


def asm1(text: str) -> Instruction:
    insns = assemble_llvm(text)
    assert len(insns) == 1, insns
    return insns[0]


def hexof(text: str) -> str:
    return encode(assemble_llvm(text)).hex()


# -- round trips -------------------------------------------------------------------------------------
_EDGE_IMM = (0, 1, -1, 0x7FFFFFFF, -0x80000000, 1000)
_EDGE_OFF = (0, 1, -1, 0x7FFF, -0x8000)
_IMM64 = (0, -1, 1 << 32, (1 << 63) - 1, -(1 << 63), 0xFFFFFFFF, 0x00000008_00000003, -5 & 0xFFFFFFFF)


def _choices(rule: frozenset[int] | None, edge: tuple[int, ...]) -> list[int]:
    return list(edge) if rule is None else sorted(rule)


def every_opcode_cases() -> list[Instruction]:
    """Each opcode with every allowed value of its constrained fields and edge values of the free ones."""
    out = []
    for opcode, spec in sorted(OPCODES.items()):
        dsts = [d for d in _choices(spec.dst, ()) if d in (0, 1, 10)] or [0]
        srcs = [s for s in _choices(spec.src, ()) if s in (0, 1, 2, 3, 4, 5, 6, 10)] or [0]
        imms = _IMM64 if spec.kind is Kind.LD_IMM64 else _choices(spec.imm, _EDGE_IMM)
        for dst in dsts:
            for src in srcs:
                for off in _choices(spec.off, _EDGE_OFF):
                    for imm in imms:
                        lo = imm & 0xFFFFFFFF
                        lo -= (lo & 0x80000000) << 1
                        if field_error(opcode, dst, src, off, lo if opcode == 0x18 else imm) is None:
                            out.append(Instruction(opcode, dst, src, off, imm))
    return out


CASES = every_opcode_cases()


def test_the_cases_cover_every_opcode() -> None:
    assert {i.opcode for i in CASES} == set(OPCODES)
    assert len(CASES) > 1500


@pytest.mark.parametrize("alu32", [False, True])
@pytest.mark.parametrize("helper_names", [False, True])
def test_every_opcode_round_trips_one_line_at_a_time(alu32: bool, helper_names: bool) -> None:
    for insn in CASES:
        text = format_insn(insn, alu32=alu32, helper_names=helper_names)
        try:
            back = assemble_llvm(text)
        except AsmError as e:
            pytest.fail(f"{insn!r} -> {text!r}: {e}")
        assert encode(back) == encode([insn]), (insn, text, back)


def test_every_opcode_round_trips_as_one_listing() -> None:
    listing = disassemble_llvm(CASES)
    assert encode(assemble_llvm(listing)) == encode(CASES)
    assert assemble("\n" + listing, dialect="llvm") == CASES
    assert disassemble(encode(CASES), dialect="llvm") == listing


def _field(rule: frozenset[int] | None, bits: int) -> st.SearchStrategy[int]:
    if rule is None:
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return st.sampled_from(sorted(rule))


def _from_spec(spec: OpSpec) -> st.SearchStrategy[Instruction]:
    imm = st.integers(-(1 << 63), (1 << 63) - 1) if spec.kind is Kind.LD_IMM64 else _field(spec.imm, 32)
    return st.builds(Instruction, st.just(spec.opcode), _field(spec.dst, 4), _field(spec.src, 4),
                     _field(spec.off, 16), imm)


def _valid(insn: Instruction) -> bool:
    imm = insn.imm
    if insn.opcode == 0x18:
        imm = (imm & 0xFFFFFFFF) - ((imm & 0x80000000) << 1)
    return field_error(insn.opcode, insn.dst, insn.src, insn.off, imm) is None


valid_insns = st.sampled_from(sorted(OPCODES.values(), key=lambda s: s.opcode)).flatmap(_from_spec).filter(
    _valid)


@settings(max_examples=300, deadline=None)
@given(st.lists(valid_insns, min_size=1, max_size=40), st.booleans(), st.booleans())
def test_random_programs_round_trip_through_the_listing(insns: list[Instruction], alu32: bool,
                                                        helper_names: bool) -> None:
    listing = disassemble_llvm(insns, alu32=alu32, helper_names=helper_names)
    assert encode(assemble_llvm(listing)) == encode(insns), listing


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("rw0123456789 =+-*/()<>[]&|^s,#:;ulgotifcalxkb_\n")),
               max_size=60))
def test_garbage_raises_only_asm_error(text: str) -> None:
    try:
        assemble_llvm(text)
    except AsmError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(valid_insns, min_size=1, max_size=8), st.data())
def test_mutated_listings_raise_only_asm_error(insns: list[Instruction], data: st.DataObject) -> None:
    listing = disassemble_llvm(insns)
    pos = data.draw(st.integers(0, len(listing)))
    cut = data.draw(st.integers(0, 4))
    junk = data.draw(st.text(alphabet="r1w0x9-+()*<>=ll#:", max_size=3))
    try:
        assemble_llvm(listing[:pos] + junk + listing[pos + cut:])
    except AsmError:
        pass


# -- spellings -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "encoding"), [
    ("r0 = 1", "b700000001000000"),
    ("w1 += w2", "0c21000000000000"),
    ("r2 = -9223372036854775808 ll", "1802000000000000" "0000000000000080"),
    ("r1 = 0xffffffff ll", "18010000ffffffff" "0000000000000000"),
    ("if r1 < 1001 goto +4 <LBB0_2>", "a5010400e9030000"),
    ("*(u32 *)(r10 - 4) = r1", "631afcff00000000"),
    ("*(u32 *)(r10 - 4) = w1", "631afcff00000000"),
    ("r0 = *(u8 *)(r1 + 2)", "7110020000000000"),
    ("w0 = *(u8 *)(r1 + 2)", "7110020000000000"),
    ("*(u64 *)(r10 - 8) = 5", "7a0af8ff05000000"),
    ("*(u8 *)(r1 + 0) = 255", "72010000ff000000"),
    ("lock *(u64 *)(r1 + 0) += r2", "db21000000000000"),
    ("lock *(u32 *)(r1 + 0) += r2", "c321000000000000"),
    ("lock *(u32 *)(r1 + 0) |= w2", "c321000040000000"),
    ("r2 = atomic_fetch_add((u64 *)(r1 + 8), r2)", "db21080001000000"),
    ("w2 = atomic_fetch_and((u32 *)(r1 + 8), w2)", "c321080051000000"),
    ("r3 = xchg_64(r1 + 16, r3)", "db311000e1000000"),
    ("w3 = xchg32_32(r1 + 16, w3)", "c3311000e1000000"),
    ("r0 = cmpxchg_64(r1 + 24, r0, r3)", "db311800f1000000"),
    ("w0 = cmpxchg32_32(r1 + 24, w0, w3)", "c3311800f1000000"),
    ("call 1", "8500000001000000"),
    ("call -1", "85100000ffffffff"),
    ("call +3", "8510000003000000"),
    ("call pc+3", "8510000003000000"),
    ("call bpf_map_lookup_elem", "8500000001000000"),
    ("call map_lookup_elem", "8500000001000000"),
    ("call bpf_map_lookup_elem#1", "8500000001000000"),
    ("call bpf_map_lookup_elem#186912", "8500000020da0200"),  # a translated dump: the number wins
    ("call kfunc(1234)", "85200000d2040000"),
    ("call kfunc(1234, 2)", "85200200d2040000"),
    ("callx r2", "8d02000000000000"),
    ("exit", "9500000000000000"),
    ("r0 = be16 r0", "dc00000010000000"),
    ("r0 = le32 r0", "d400000020000000"),
    ("r0 = bswap64 r0", "d700000040000000"),
    ("r0 = -r0", "8700000000000000"),
    ("w0 = -w0", "8400000000000000"),
    ("r0 = -5", "b7000000fbffffff"),
    ("w0 = 4294967295", "b4000000ffffffff"),
    ("r0 s>>= 3", "c700000003000000"),
    ("if w1 s> w2 goto +1", "6e21010000000000"),
    ("if r1 & 0x10 goto -1", "4501ffff10000000"),
    ("r0 = *(u8 *)skb[12]", "300000000c000000"),
    ("r0 = *(u16 *)skb[r1 + 2]", "4810000002000000"),
    ("r0 = *(u32 *)skb[r1 - 2]", "40100000feffffff"),
    ("r0 = *(u16 *)skb[r1]", "4810000000000000"),
    ("r0 s/= r1", "3f10010000000000"),
    ("w0 s%= 5", "9400010005000000"),
    ("r0 = (s8)r1", "bf10080000000000"),
    ("w0 = (s16)w1", "bc10100000000000"),
    ("r0 = (s32)r1", "bf10200000000000"),
    ("gotol +5", "0600000005000000"),
    ("gotol -70000", "0600000090eefeff"),
    ("may_goto +3", "e500030000000000"),
    ("r0 = *(s8 *)(r1 + 0)", "9110000000000000"),
    ("r0 = *(s32 *)(r1 - 8)", "8110f8ff00000000"),
    ("r0 = load_acquire((u64 *)(r1 + 0))", "db10000000010000"),
    ("w0 = load_acquire((u8 *)(r1 + 0))", "d310000000010000"),
    ("store_release((u64 *)(r1 + 0), r2)", "db21000010010000"),
    ("store_release((u32 *)(r1 + 0), w2)", "c321000010010000"),
    ("r1 = map_fd(3) ll", "1811000003000000" "0000000000000000"),
    ("r1 = map_value(3) + 8 ll", "1821000003000000" "0000000008000000"),
    ("r1 = btf_id(123) ll", "183100007b000000" "0000000000000000"),
    ("r1 = btf_id(123, 4) ll", "183100007b000000" "0000000004000000"),
    ("r1 = func(+5) ll", "1841000005000000" "0000000000000000"),
    ("r1 = func(-3) ll", "18410000fdffffff" "0000000000000000"),
    ("r1 = map_idx(0) ll", "1851000000000000" "0000000000000000"),
    ("r1 = map_idx_value(2) + 16", "1861000002000000" "0000000010000000"),
])
def test_accepted_spellings(text: str, encoding: str) -> None:
    assert hexof(text) == encoding


@pytest.mark.parametrize(("kernel_log", "llvm"), [
    ("0: (b7) r0 = 0", "r0 = 0"),
    ("12: (61) r1 = *(u32 *)(r10 -4)", "r1 = *(u32 *)(r10 - 4)"),
    ("(7b) *(u64 *)(r10 -8) = r1", "*(u64 *)(r10 - 8) = r1"),
    ("if r1 > 0x3e8 goto pc+4", "if r1 > 1000 goto +4"),
    ("goto pc-2", "goto -2"),
    ("gotol pc+5", "gotol +5"),
    ("may_goto pc+3", "may_goto +3"),
    ("call pc+5", "call +5"),
    ("call bpf_map_lookup_elem#1", "call 1"),
    ("lock *(u32 *)(r1 +0) += r2", "lock *(u32 *)(r1 + 0) += r2"),
    ("r2 = atomic64_fetch_add((u64 *)(r1 +8), r2)", "r2 = atomic_fetch_add((u64 *)(r1 + 8), r2)"),
    ("r2 = atomic_fetch_or((u32 *)(r1 +8), r2)", "w2 = atomic_fetch_or((u32 *)(r1 + 8), w2)"),
    ("r3 = atomic64_xchg((u64 *)(r1 +16), r3)", "r3 = xchg_64(r1 + 16, r3)"),
    ("r3 = atomic_xchg((u32 *)(r1 +16), r3)", "w3 = xchg32_32(r1 + 16, w3)"),
    ("r0 = atomic64_cmpxchg((u64 *)(r1 +24), r0, r3)", "r0 = cmpxchg_64(r1 + 24, r0, r3)"),
    ("r0 = atomic_cmpxchg((u32 *)(r1 +24), r0, r3)", "w0 = cmpxchg32_32(r1 + 24, w0, w3)"),
    ("56: (65) if r1 s> 0xffffffff goto pc+31", "if r1 s> -1 goto +31"),
    ("0: (18) r1 = 0x8765432112345678", "r1 = -8690466096623102344 ll"),
    ("(18) r1 = 0x5", "r1 = 5 ll"),
    ("11: (18) r1 = map[id:1166]", "r1 = map_fd(1166) ll"),
    ("1: (18) r1 = map[id:1173][0]+8", "r1 = map_value(1173) + 8 ll"),
    ("50: (18) r2 = subprog[+32]", "r2 = func(+32) ll"),
    ("65: (85) call pc+17#bpf_prog_17d9e35687b4cef3_add_index", "call +17"),
    ("12: (85) call bpf_trace_printk#-61360", "call 4294905936"),
    ("4: (48) r0 = *(u16 *)skb[r1 + 0]", "r0 = *(u16 *)skb[r1]"),
])
def test_kernel_verifier_log_spellings(kernel_log: str, llvm: str) -> None:
    assert assemble_llvm(kernel_log) == assemble_llvm(llvm)


# `bpftool prog dump xlated` of tests/data/obj/alu64.v3.o (kernel 6.18): the kernel's own spelling.
XLATED = """\
int alu64(struct __sk_buff * skb):
; int alu64(struct __sk_buff *skb)
   0: (18) r1 = 0x8765432112345678
; volatile __u64 x = X, y = Y, z = Z;
   2: (7b) *(u64 *)(r10 -8) = r1
   3: (b7) r1 = 19
   4: (7b) *(u64 *)(r10 -16) = r1
   5: (b7) r1 = -16
   6: (7b) *(u64 *)(r10 -24) = r1
; r = x + y;  CHECK(r == X + Y);
   7: (79) r1 = *(u64 *)(r10 -8)
   8: (79) r2 = *(u64 *)(r10 -16)
   9: (0f) r2 += r1
  10: (7b) *(u64 *)(r10 -32) = r2
  11: (b4) w0 = 31
  12: (18) r1 = 0x876543211234568b
  14: (79) r2 = *(u64 *)(r10 -32)
  15: (5d) if r2 != r1 goto pc+1
  16: (b4) w0 = 0
  17: (95) exit
"""


def test_a_translated_dump_reassembles() -> None:
    body = "\n".join(XLATED.splitlines()[1:])  # without the function header line
    assert disassemble_llvm(assemble_llvm(body)) == (
        "\tr1 = -8690466096623102344 ll\n"
        "\t*(u64 *)(r10 - 8) = r1\n"
        "\tr1 = 19\n"
        "\t*(u64 *)(r10 - 16) = r1\n"
        "\tr1 = -16\n"
        "\t*(u64 *)(r10 - 24) = r1\n"
        "\tr1 = *(u64 *)(r10 - 8)\n"
        "\tr2 = *(u64 *)(r10 - 16)\n"
        "\tr2 += r1\n"
        "\t*(u64 *)(r10 - 32) = r2\n"
        "\tw0 = 31\n"
        "\tr1 = -8690466096623102325 ll\n"
        "\tr2 = *(u64 *)(r10 - 32)\n"
        "\tif r2 != r1 goto +1 <L0>\n"
        "\tw0 = 0\n"
        "L0:\n"
        "\texit\n")


def test_the_log_opcode_prefix_must_match_the_instruction() -> None:
    with pytest.raises(AsmError, match=r"line 1 .*log's opcode \(bf\) differs from the instruction's \(b7\)"):
        assemble_llvm("3: (bf) r1 = 19")


def test_comments_blank_lines_and_labels() -> None:
    text = """
        ; a comment
        # another
        // and another
    entry:  r0 = 0          ; trailing comment
            if r1 == 0 goto out   # hash comment
    loop:
            r0 += 1         // slash comment
            if r0 < 10 goto loop
    out:    exit
    """
    insns = assemble_llvm(text)
    assert [format_insn(i) for i in insns] == [
        "r0 = 0", "if r1 == 0 goto +2", "r0 += 1", "if r0 < 10 goto -2", "exit"]


def test_labels_for_every_kind_of_reference() -> None:
    text = """
        r1 = func(sub) ll
        call sub
        gotol done
        may_goto done
        goto done
    sub:
        r0 = 1
    done:
        exit
    """
    insns = assemble_llvm(text)
    assert insns[0] == Instruction(0x18, dst=1, src=PseudoSrc.FUNC, imm=5)  # slots 0-1 -> 6
    assert insns[1] == Instruction(0x85, src=PseudoCall.CALL, imm=3)
    assert insns[2] == Instruction(0x06, imm=3)
    assert insns[3] == Instruction(0xE5, off=2)
    assert insns[4] == Instruction(0x05, off=1)


def test_backward_function_pointer_keeps_the_high_half_clear() -> None:
    insns = assemble_llvm("sub: exit\n r1 = func(sub) ll")
    assert encode(insns).hex() == "9500000000000000" "18410000feffffff" "0000000000000000"


def test_a_label_wins_over_a_helper_of_the_same_name() -> None:
    insns = assemble_llvm("call map_lookup_elem\nexit\nmap_lookup_elem: exit")
    assert insns[0] == Instruction(0x85, src=PseudoCall.CALL, imm=1)


def test_llvm_symbolize_operands_label_lines() -> None:
    assert assemble_llvm("goto +0 <L0>\n<L0>:\nexit") == assemble_llvm("goto +0\nexit")


def test_annotation_naming_a_label_of_the_listing_must_agree_with_the_offset() -> None:
    assert assemble_llvm("goto +1 <out>\nr0 = 0\nout: exit")[0].off == 1
    with pytest.raises(AsmError, match=r"line 1 .*jumps to slot 1, but the annotation <out> names slot 2"):
        assemble_llvm("goto +0 <out>\nr0 = 0\nout: exit")


def test_annotations_naming_unknown_symbols_are_ignored() -> None:
    assert asm1("goto -3 <f+0xfffffffffffffff8>").off == -3


def test_listing_keeps_offsets_beyond_the_program() -> None:
    insns = [Instruction(0x05, off=-5), Instruction(0x95)]
    assert disassemble_llvm(insns) == "\tgoto -5\n\texit\n"
    assert assemble_llvm(disassemble_llvm(insns)) == insns


# -- errors --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "message"), [
    ("r0 = 0\nfoo r1", r"line 2 \('foo r1'\): unknown instruction 'foo'"),
    ("r11 = 1", r"line 1 .*bad register 'r11'"),
    ("r0 = r11", r"bad register 'r11'"),
    ("if w12 > 1 goto +1", r"bad register 'w12'"),
    ("r0 += 4294967296", r"immediate 4294967296 out of range"),
    ("r0 = 4294967295", r"out of range for a sign-extended 32-bit field.*'rN = 4294967295 ll'"),
    ("w0 = -2147483649", r"immediate -2147483649 out of range"),
    ("r0 = 18446744073709551616 ll", r"64-bit constant 18446744073709551616 out of range"),
    ("r0 = *(u32 *)(r1 + 32768)", r"offset 32768 out of range \(-32768..32767\)"),
    ("*(u64 *)(r10 - 32769) = r1", r"offset -32769 out of range"),
    ("goto +32768", r"jump offset 32768 out of range"),
    ("exit\ngoto nowhere", r"line 2, instruction 1 .*undefined label 'nowhere'"),
    ("a: exit\n\na: exit", r"line 3 .*label 'a' defined twice"),
    ("exit r0", r"unexpected 'r0' after the instruction"),
    ("r0 = 1 2", r"unexpected '2' after the instruction"),
    ("r0 +=", r"expected immediate, found the end of the line"),
    ("r0 = cmpxchg_64(r1 + 0, r0)", r"expected ',', found"),
    ("if r0 > 1", r"expected 'goto', found the end of the line"),
    ("goto 5", r"jump offset 5 needs a sign"),
    ("w1 += r2", r"cannot mix w1 and r2"),
    ("if r1 > w2 goto +1", r"cannot compare r1 with w2"),
    ("r1 = -r2", r"negation works in place"),
    ("w0 = *(u64 *)(r1 + 0)", r"64-bit load needs r0, not w0"),
    ("r0 = *(u32 *)(w1 + 0)", r"an address register must be a 64-bit register r1, not w1"),
    ("r1 = *(u8 *)skb[0]", r"packet loads \(skb\[...\]\) always load into r0"),
    ("r0 = *(u24 *)(r1 + 0)", r"bad access size 'u24'"),
    ("call nosuchhelper", r"call nosuchhelper: no label or helper of that name"),
    ("r2 = atomic_fetch_add((u64 *)(r1 + 0), r3)", r"fetched value goes to the operand register"),
    ("r1 = cmpxchg_64(r1 + 0, r0, r3)", r"cmpxchg returns the old value in r0"),
    ("lock *(u16 *)(r1 + 0) += w2", r"atomic read-modify-write operations take u32 or u64"),
    ("w1 = (s32)w2", r"bad sign-extension 's32' for w1"),
    ("r1 = map_fd(3", r"expected '\)'"),
    ("w1 = 5 ll", r"64-bit constant needs r1, not w1"),
    ("r0 = `", r"unexpected character '`'"),
])
def test_errors_name_the_line_and_the_problem(text: str, message: str) -> None:
    with pytest.raises(AsmError, match=message) as info:
        assemble_llvm(text)
    assert info.value.line is not None


def test_error_source_names_the_offending_line_text() -> None:
    with pytest.raises(AsmError) as info:
        assemble_llvm("r0 = 0\n  r0 += r99  ; oops\nexit")
    assert info.value.line == 2
    assert "r0 += r99" in str(info.value)
