"""The ubpf dialect: encodings, the conformance corpus, round trips, errors, property tests."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfkit.errors import AsmError, BpfkitError
from bpfkit.isa import OPCODES, Instruction, Kind, OpSpec, assemble, decode, disassemble, encode, field_error
from bpfkit.isa.conformance import Vector, load_vectors
from bpfkit.isa.ubpf import assemble_ubpf, disassemble_ubpf


def _corpus_dir() -> Path | None:
    root = Path(__file__).resolve().parents[3]
    candidates = [os.environ.get("BPFKIT_CONFORMANCE_DIR"), root / "tests" / "data" / "bpf-conformance",
                  root.parent / "shared" / "corpora" / "bpf-conformance"]
    for c in candidates:
        if c and (Path(c) / "tests").is_dir():
            return Path(c)
    return None


CORPUS = _corpus_dir()
needs_corpus = pytest.mark.skipif(
    CORPUS is None, reason="conformance corpus not found: set BPFKIT_CONFORMANCE_DIR to bpf-conformance/")


def _programs() -> list[Vector]:
    return load_vectors(CORPUS / "tests") if CORPUS is not None else []


PROGRAMS = _programs()


def _hex(insns: list[Instruction]) -> str:
    return encode(insns).hex(" ")


# -- encodings ---------------------------------------------------------------------------------------
# Canonical spelling -> bytes, worked out by hand from the RFC 9669 field layout (opcode, dst/src nibbles,
# little-endian off and imm). disassemble_ubpf must print exactly the spelling.
ENCODINGS: list[tuple[str, str]] = [
    ("mov32 %r0, 0", "b4 00 00 00 00 00 00 00"),
    ("add %r1, 2", "07 01 00 00 02 00 00 00"),
    ("add32 %r1, -1", "04 01 00 00 ff ff ff ff"),
    ("or %r0, %r10", "4f a0 00 00 00 00 00 00"),
    ("arsh32 %r0, 1", "c4 00 00 00 01 00 00 00"),
    ("sdiv %r0, 3", "37 00 01 00 03 00 00 00"),
    ("smod32 %r0, %r1", "9c 10 01 00 00 00 00 00"),
    ("neg %r0", "87 00 00 00 00 00 00 00"),
    ("neg32 %r1", "84 01 00 00 00 00 00 00"),
    ("movsx832 %r0, %r1", "bc 10 08 00 00 00 00 00"),
    ("movsx1664 %r2, %r3", "bf 32 10 00 00 00 00 00"),
    ("movsx3264 %r0, %r1", "bf 10 20 00 00 00 00 00"),
    ("be16 %r0", "dc 00 00 00 10 00 00 00"),
    ("le32 %r0", "d4 00 00 00 20 00 00 00"),
    ("bswap64 %r9", "d7 09 00 00 40 00 00 00"),
    ("lddw %r0, 0x123456789", "18 00 00 00 89 67 45 23 00 00 00 00 01 00 00 00"),
    ("lddw %r1, -1", "18 01 00 00 ff ff ff ff 00 00 00 00 ff ff ff ff"),
    ("ldxb %r0, [%r1+2]", "71 10 02 00 00 00 00 00"),
    ("ldxdw %r0, [%r10-8]", "79 a0 f8 ff 00 00 00 00"),
    ("ldxsb %r0, [%r1+2]", "91 10 02 00 00 00 00 00"),
    ("ldxsh %r0, [%r1]", "89 10 00 00 00 00 00 00"),
    ("ldxsw %r0, [%r1-4]", "81 10 fc ff 00 00 00 00"),
    ("stw [%r1+2], 17", "62 01 02 00 11 00 00 00"),
    ("stdw [%r10-8], 0x87654321", "7a 0a f8 ff 21 43 65 87"),
    ("stxdw [%r10-8], %r0", "7b 0a f8 ff 00 00 00 00"),
    ("stxh [%r1+6], %r2", "6b 21 06 00 00 00 00 00"),
    ("lock add [%r10-8], %r1", "db 1a f8 ff 00 00 00 00"),
    ("lock fetch add32 [%r10-4], %r1", "c3 1a fc ff 01 00 00 00"),
    ("lock fetch or [%r10-8], %r1", "db 1a f8 ff 41 00 00 00"),
    ("lock and32 [%r10-8], %r1", "c3 1a f8 ff 50 00 00 00"),
    ("lock fetch xor [%r10-8], %r3", "db 3a f8 ff a1 00 00 00"),
    ("lock xchg [%r10-8], %r1", "db 1a f8 ff e1 00 00 00"),
    ("lock cmpxchg32 [%r10-8], %r1", "c3 1a f8 ff f1 00 00 00"),
    ("jne %r1, %r0, +1", "5d 01 01 00 00 00 00 00"),
    ("jne32 %r1, 5, -1", "56 01 ff ff 05 00 00 00"),
    ("jsle %r1, -3, +0", "d5 01 00 00 fd ff ff ff"),
    ("ja +1", "05 00 01 00 00 00 00 00"),
    ("ja32 +3", "06 00 00 00 03 00 00 00"),
    ("call 5", "85 00 00 00 05 00 00 00"),
    ("call local +2", "85 10 00 00 02 00 00 00"),
    ("call %r2", "8d 02 00 00 00 00 00 00"),
    ("exit", "95 00 00 00 00 00 00 00"),
    # Instructions the corpus lacks (spellings of this dialect, see the module docstring).
    ("may_goto +2", "e5 00 02 00 00 00 00 00"),
    ("ldacqw %r0, [%r1+4]", "c3 10 04 00 00 01 00 00"),
    ("ldacqb %r0, [%r1]", "d3 10 00 00 00 01 00 00"),
    ("streldw [%r1-8], %r2", "db 21 f8 ff 10 01 00 00"),
    ("strelh [%r1+2], %r2", "cb 21 02 00 10 01 00 00"),
    ("ldabsw 16", "20 00 00 00 10 00 00 00"),
    ("ldindh %r1, 2", "48 10 00 00 02 00 00 00"),
    ("call kfunc 1234", "85 20 00 00 d2 04 00 00"),
    ("call kfunc 1234, 2", "85 20 02 00 d2 04 00 00"),
    ("lddw %r1, map_fd 3", "18 11 00 00 03 00 00 00 00 00 00 00 00 00 00 00"),
    ("lddw %r1, map_value 3, 16", "18 21 00 00 03 00 00 00 00 00 00 00 10 00 00 00"),
    ("lddw %r2, btf_id 7", "18 32 00 00 07 00 00 00 00 00 00 00 00 00 00 00"),
    ("lddw %r1, func +3", "18 41 00 00 03 00 00 00 00 00 00 00 00 00 00 00"),
    ("lddw %r1, func -1", "18 41 00 00 ff ff ff ff 00 00 00 00 00 00 00 00"),
    ("lddw %r1, func +2, 7", "18 41 00 00 02 00 00 00 00 00 00 00 07 00 00 00"),
    ("lddw %r1, map_idx 0", "18 51 00 00 00 00 00 00 00 00 00 00 00 00 00 00"),
    ("lddw %r1, map_idx_value 1, 8", "18 61 00 00 01 00 00 00 00 00 00 00 08 00 00 00"),
]


@pytest.mark.parametrize(("text", "raw"), ENCODINGS)
def test_encoding_and_canonical_spelling(text: str, raw: str) -> None:
    insns = assemble_ubpf(text)
    assert _hex(insns) == raw
    assert disassemble_ubpf(decode(bytes.fromhex(raw))) == text + "\n"


def test_every_valid_opcode_has_a_spelling() -> None:
    spelled = {decode(bytes.fromhex(raw))[0].opcode for _, raw in ENCODINGS}
    kinds = {OPCODES[o].kind for o in spelled}
    assert kinds == set(Kind)


@pytest.mark.parametrize(("alias", "canonical"), [
    ("swap16 %r0", "bswap16 %r0"),
    ("swap64 %r3", "bswap64 %r3"),
    ("call helper 5", "call 5"),
    ("call runtime 9", "call kfunc 9"),
    ("add %r1, 0xffffffff", "add %r1, -1"),
    ("stw [%r1+0x10], 0x11", "stw [%r1+16], 17"),
    ("ldxw %r0, [%r1+0]", "ldxw %r0, [%r1]"),
    ("ldxw %r0, [ %r1 - 0x8 ]", "ldxw %r0, [%r1-8]"),
    ("MOV %r0, 1", "mov %r0, 1"),
    ("lock fetch xchg [%r1], %r2", "lock xchg [%r1], %r2"),
    ("lddw %r0, 0xffffffffffffffff", "lddw %r0, -1"),
    ("lddw %r0, 0x0000000000000001", "lddw %r0, 1"),
    ("mov %r0, 007", "mov %r0, 7"),
])
def test_aliases(alias: str, canonical: str) -> None:
    assert assemble_ubpf(alias) == assemble_ubpf(canonical)
    assert disassemble_ubpf(assemble_ubpf(alias)) == canonical + "\n"


def test_large_values_print_as_hex_bit_patterns() -> None:
    assert disassemble_ubpf(assemble_ubpf("mov %r0, 0x80000000")) == "mov %r0, 0x80000000\n"
    assert disassemble_ubpf(assemble_ubpf("lddw %r0, 0x8877665544332211")) == "lddw %r0, 0x8877665544332211\n"
    assert disassemble_ubpf(assemble_ubpf("mov %r0, 65535")) == "mov %r0, 65535\n"
    assert disassemble_ubpf(assemble_ubpf("mov %r0, 65536")) == "mov %r0, 0x10000\n"


# -- immediates, offsets, labels -------------------------------------------------------------------
@pytest.mark.parametrize(("text", "imm"), [
    ("mov32 %r0, 2147483647", 2147483647),
    ("mov32 %r0, -2147483648", -(1 << 31)),
    ("mov32 %r0, 0x80000000", -(1 << 31)),
    ("mov32 %r0, 0xffffffff", -1),
    ("mov32 %r0, -0x80000000", -(1 << 31)),
    ("lddw %r0, 9223372036854775807", (1 << 63) - 1),
    ("lddw %r0, -9223372036854775808", -(1 << 63)),
    ("lddw %r0, 0x8000000000000000", -(1 << 63)),
])
def test_immediate_ranges_accepted(text: str, imm: int) -> None:
    assert assemble_ubpf(text)[0].imm == imm


@pytest.mark.parametrize(("text", "fragment"), [
    ("mov32 %r0, 2147483648", "2147483648 is out of range"),
    ("mov %r0, 4294967295", "4294967295 is out of range"),
    ("mov32 %r0, -2147483649", "-2147483649 is out of range"),
    ("mov32 %r0, 0x100000000", "0x100000000 is out of range"),
    ("mov32 %r0, -0x80000001", "-0x80000001 is out of range"),
    ("lddw %r0, 9223372036854775808", "9223372036854775808 is out of range"),
    ("lddw %r0, 0x10000000000000000", "is out of range"),
    ("ldxb %r0, [%r1+32768]", "offset +32768 is out of range -32768..32767"),
    ("ldxb %r0, [%r1-32769]", "offset -32769 is out of range"),
    ("ldxb %r0, [%r1+0xffff]", "offset +0xffff is out of range"),
    ("ja +32768", "jump offset +32768 is out of range"),
    ("ja32 +2147483648", "jump offset +2147483648 is out of range"),
    ("mov %r0, 1.5", "expected immediate"),
    ("mov %r0, x", "expected immediate"),
    ("mov %r0", "invalid number of operands for mov: expected 2, got 1"),
    ("mov %r0, 1, 2", "expected 2, got 3"),
    ("mov %r0,", "empty operand"),
    ("exit %r0", "invalid number of operands for exit"),
    ("mov r0, 1", "expected a register %r0..%r10, got 'r0'"),
    ("mov %r11, 1", "invalid register '%r11'"),
    ("ldxb %r0, [%r1+%r2]", "expected offset"),
    ("ldxb %r0, [1+2]", "expected a register"),
    ("stxb [%r1], 5", "expected a register"),
    ("jeq %r1, 0, 5", "expected a label or a relative offset"),
    ("call local", "call takes"),
    ("call foo 3", "call takes"),
    ("call kfunc 3, 70000", "BTF fd index 70000 is out of range"),
    ("lock", "lock needs an operation"),
    ("lock fetch", "lock needs an operation"),
    ("lock nand [%r1], %r2", "unknown atomic operation 'nand'"),
    ("lock add [%r1]", "invalid number of operands for lock add"),
    ("lddw %r0, map_fd", "expected an immediate or '<pseudo> N'"),
    ("lddw %r0, map_value 3", "wrong number of operands: lddw %rD, map_value N, OFF"),
    ("lddw %r0, map_fd 3, 4", "wrong number of operands: lddw %rD, map_fd N"),
    ("lddw %r0, 1, 2", "lddw with a plain immediate takes 2 operands"),
    ("lddw %r0, bogus 1", "expected an immediate or '<pseudo> N'"),
    ("be8 %r0", "invalid mnemonic 'be8'"),
    ("movsx3232 %r0, %r1", "invalid mnemonic"),
    ("ldabsdw 4", "invalid mnemonic"),
    ("9abc: exit", "invalid label name '9abc'"),
])
def test_errors_name_the_line(text: str, fragment: str) -> None:
    with pytest.raises(AsmError) as exc:
        assemble_ubpf("mov %r0, 0\n# comment\n" + text + "\nexit")
    assert exc.value.line == 3
    assert fragment in str(exc.value)
    assert text.strip() in str(exc.value)  # the source line is quoted


def test_labels_and_comments() -> None:
    insns = assemble_ubpf("""
        # leading comment
        mov %r0, 0   # trailing comment
        jeq %r1, 0, done
        L1: add %r0, 1
        jlt32 %r0, 3, L1
        done:
        exit
    """)
    assert [(i.opcode, i.off) for i in insns] == [(0xB7, 0), (0x15, 2), (0x07, 0), (0xA6, -2), (0x95, 0)]


def test_lddw_takes_two_slots_for_labels() -> None:
    insns = assemble_ubpf("ja L\nlddw %r0, 1\nL: exit")
    assert insns[0].off == 2


def test_first_exit_is_the_label_exit() -> None:
    insns = assemble_ubpf("jne %r1, 0, exit\nmov %r0, 1\nexit\nmov %r0, 2\nexit\n")
    assert insns[0].off == 1  # the first exit, not the second
    # an explicit `exit:` label takes precedence over the implicit one
    insns = assemble_ubpf("ja exit\nexit\nexit:\nexit\n")
    assert insns[0].off == 1
    with pytest.raises(AsmError, match="undefined label 'exit'") as exc:
        assemble_ubpf("mov %r0, 0\nja exit\n")
    assert exc.value.line == 2 and "'ja exit'" in str(exc.value)


def test_label_errors() -> None:
    with pytest.raises(AsmError, match="label 'a' defined twice") as exc:
        assemble_ubpf("a:\nexit\na:\nexit")
    assert exc.value.line == 3
    far = "ja far\n" + "mov %r0, 0\n" * 32768 + "far: exit\n"
    with pytest.raises(AsmError, match="out of range for a 16-bit offset") as exc:
        assemble_ubpf(far)
    assert exc.value.line == 1


def test_empty_listing() -> None:
    assert assemble_ubpf("") == []
    assert assemble_ubpf("# nothing\n\n") == []
    assert disassemble_ubpf([]) == ""


def test_disassemble_refuses_invalid_encodings_with_the_slot() -> None:
    bad = Instruction(0x07, dst=1, src=1, imm=1)  # add with src set
    with pytest.raises(AsmError) as exc:
        disassemble_ubpf([Instruction(0x18, imm=5), Instruction(0x95), bad])
    assert exc.value.index == 3 and "src must be 0" in str(exc.value)


def test_disassemble_with_labels() -> None:
    text = "mov %r0, 0\njeq %r1, 0, +2\nlddw %r2, 5\nja -5\ncall local -6\nexit\n"
    insns = assemble_ubpf(text)
    assert disassemble_ubpf(insns, labels=True) == (
        "L0:\nmov %r0, 0\njeq %r1, 0, L1\nlddw %r2, 5\nL1:\nja L0\ncall local L0\nexit\n")
    # a target inside lddw or outside the program stays relative
    odd = assemble_ubpf("ja +1\nlddw %r0, 1\nja +5\nexit")
    assert disassemble_ubpf(odd, labels=True) == "ja +1\nlddw %r0, 1\nja +5\nexit\n"
    # a target just past the end gets a label after the last instruction
    assert disassemble_ubpf(assemble_ubpf("ja +1\nexit"), labels=True) == "ja L0\nexit\nL0:\n"


def test_text_api_dispatches_to_the_ubpf_dialect() -> None:
    insns = assemble("mov %r0, 1\nexit", dialect="ubpf")
    assert _hex(insns) == "b7 00 00 00 01 00 00 00 95 00 00 00 00 00 00 00"
    assert disassemble(encode(insns), dialect="ubpf") == "mov %r0, 1\nexit\n"
    assert disassemble(insns, dialect="ubpf") == "mov %r0, 1\nexit\n"


# -- the conformance corpus ------------------------------------------------------------------------
@needs_corpus
def test_corpus_has_313_programs() -> None:
    assert len(PROGRAMS) == 313


@needs_corpus
@pytest.mark.parametrize("vector", PROGRAMS, ids=lambda v: v.name)
def test_corpus_program_round_trips(vector: Vector) -> None:
    assert vector.asm is not None
    insns = assemble_ubpf(vector.asm)
    code = encode(insns)
    assert code and len(code) % 8 == 0
    assert decode(code) == insns
    for labels in (False, True):
        text = disassemble_ubpf(decode(code), labels=labels)
        assert encode(assemble_ubpf(text)) == code, text
    if vector.raw_bytes is not None:
        assert code == vector.raw_bytes


@needs_corpus
def test_corpus_raw_vectors_match() -> None:
    with_raw = [v for v in PROGRAMS if v.raw is not None]
    assert [v.name for v in with_raw] == ["lddw"]
    for v in with_raw:
        assert encode(v.instructions()) == v.raw_bytes


@needs_corpus
def test_corpus_mnemonics_are_all_covered() -> None:
    """Every mnemonic the corpus uses is known (guards against a corpus update adding new ones)."""
    mnemonics: set[str] = set()
    for v in PROGRAMS:
        assert v.asm is not None
        for line in v.asm.splitlines():
            words = line.split("#", 1)[0].split()
            if words and not words[0].endswith(":"):
                if words[0] == "lock":
                    words = words[: 3 if words[1] == "fetch" else 2]
                    mnemonics.add(" ".join(words))
                else:
                    mnemonics.add(words[0])
    assert len(mnemonics) == 109
    for m in mnemonics:
        error = _error_of(m)
        assert "invalid number of operands" in error or "call takes" in error or m == "exit", error


def _error_of(line: str) -> str:
    try:
        assemble_ubpf(line)
    except AsmError as e:
        return str(e)
    return ""


_LLVM_READY = (importlib.util.find_spec("bpfkit.isa.asm") is not None
               and importlib.util.find_spec("bpfkit.isa.disasm") is not None)


@needs_corpus
@pytest.mark.skipif(not _LLVM_READY, reason="NOT RUN: bpfkit.isa.asm / bpfkit.isa.disasm (llvm dialect) "
                                             "do not exist yet")
@pytest.mark.parametrize("vector", PROGRAMS, ids=lambda v: v.name)
def test_corpus_program_round_trips_through_the_llvm_dialect(vector: Vector) -> None:
    code = encode(vector.instructions())
    text = disassemble(code, dialect="llvm")
    assert encode(assemble(text, dialect="llvm")) == code, text


# -- properties ---------------------------------------------------------------------------------------
def _field(rule: frozenset[int] | None, bits: int) -> st.SearchStrategy[int]:
    if rule is None:
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return st.sampled_from(sorted(rule))


@st.composite
def valid_instructions(draw: st.DrawFn) -> Instruction:
    spec: OpSpec = draw(st.sampled_from(list(OPCODES.values())))
    imm_bits = 64 if spec.kind is Kind.LD_IMM64 else 32
    insn = Instruction(spec.opcode, draw(_field(spec.dst, 4)), draw(_field(spec.src, 4)),
                       draw(_field(spec.off, 16)), draw(_field(spec.imm, imm_bits)))
    lo = insn.imm & 0xFFFFFFFF
    first_imm = (lo - (1 << 32) if lo & 0x80000000 else lo) if spec.kind is Kind.LD_IMM64 else insn.imm
    if field_error(insn.opcode, insn.dst, insn.src, insn.off, first_imm) is not None:
        draw(st.nothing())
    return insn


@settings(max_examples=int(os.environ.get("BPFKIT_HYPOTHESIS_EXAMPLES", "500")))
@given(st.lists(valid_instructions(), max_size=12), st.booleans())
def test_valid_instructions_round_trip(insns: list[Instruction], labels: bool) -> None:
    text = disassemble_ubpf(insns, labels=labels)
    back = assemble_ubpf(text)
    assert back == insns
    assert encode(back) == encode(insns)


_ALPHABET = "%r0123456789abcdefx[]+-,: #\nmovldxstlockfetchjaeqcallexitw"


@given(st.text(alphabet=_ALPHABET, max_size=120))
def test_assembler_fuzz_only_raises_bpfkit_errors(text: str) -> None:
    try:
        assemble_ubpf(text)
    except BpfkitError:
        pass


@needs_corpus
@given(st.data())
def test_mutated_corpus_lines_only_raise_bpfkit_errors(data: st.DataObject) -> None:
    vector = data.draw(st.sampled_from(PROGRAMS))
    assert vector.asm is not None
    lines = vector.asm.splitlines()
    i = data.draw(st.integers(0, len(lines) - 1))
    line = lines[i]
    cut = data.draw(st.integers(0, len(line)))
    junk = data.draw(st.text(alphabet=_ALPHABET, max_size=4))
    lines[i] = line[:cut] + junk + line[cut + data.draw(st.integers(0, 3)):]
    try:
        assemble_ubpf("\n".join(lines))
    except BpfkitError as e:
        assert isinstance(e, AsmError) and e.line is not None
