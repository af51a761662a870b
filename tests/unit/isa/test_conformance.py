"""The `.data` vector parser, and the negative conformance vectors against the decoder and assembler."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpfkit._records import replace
from bpfkit.errors import AsmError, BpfkitError, ParseError
from bpfkit.isa import decode, encode
from bpfkit.isa.conformance import Vector, load_vector, load_vectors, parse_vector


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

# Negative vectors that test the reference runner, not a decoder or an assembler: each is a valid (or
# empty) vector whose expected outcome is wrong or missing, so a runner must report a failure.
RUNNER_CASES: dict[str, str] = {
    "empty": "no sections at all: a runner must report that there is no program to run",
    "empty_instructions": "a result but neither asm nor raw: a runner must report the missing program",
    "error": "a valid program ('or %r0, %r10') with an expected '-- error': the runner must notice "
             "that the program was not refused",
    "incorrect_return_value_high_bits": "a valid program whose '-- result' is wrong in its high bits: "
                                        "the runner must report the mismatch",
}

# invalid_* listings: where they are refused (assembler line of the `-- asm` text, or the vector parser
# for the file line) and a fragment of the message.
INVALID_LISTINGS: dict[str, tuple[str, int, str]] = {
    "invalid_imm32_dec_range": ("asm", 2, "immediate 2147483648 is out of range"),
    "invalid_imm32_hex_range": ("asm", 2, "immediate 0x100000000 is out of range"),
    "invalid_label": ("asm", 1, "undefined label 'NOT_A_LABEL'"),
    "invalid_lock": ("asm", 1, "invalid number of operands for lock or"),
    "invalid_lock2": ("asm", 1, "lock needs an operation"),
    "invalid_mnemonic": ("asm", 2, "invalid mnemonic 'ldxq'"),
    "invalid_offset": ("asm", 1, "expected a memory operand"),
    "invalid_offset_range": ("asm", 2, "offset +0x10000 is out of range"),
    "invalid_operand_count": ("asm", 1, "invalid number of operands for lddw"),
    "invalid_register": ("asm", 1, "invalid register '%r50'"),
    # An unknown `-- Unknown directive` section: the .data format, not the listing, is wrong.
    "invalid_unknown_directive": ("parser", 4, "unknown section '-- Unknown directive'"),
}


# -- parsing ----------------------------------------------------------------------------------------
SAMPLE = """\
# Copyright line
# SPDX line
-- asm
# a comment in the listing
mov %r0, 1
exit
-- mem
00 01 ff
  aa   # trailing comment
-- result
0xFFFFFFFFFFFFFFF6
-- raw
0x00000001000000b7
b7 00 00 00 01 00 00 00
0x0000000000000095
-- c
#include <stdint.h>
int x;
-- no register offset
call instruction
"""


def test_parse_sample_sections() -> None:
    v = parse_vector(SAMPLE, "sample")
    assert v.name == "sample"
    assert v.asm == "# a comment in the listing\nmov %r0, 1\nexit"
    assert v.asm_line == 3
    assert v.mem == bytes([0x00, 0x01, 0xFF, 0xAA])
    assert v.result == 0xFFFFFFFFFFFFFFF6
    # both raw spellings: a 64-bit little-endian word and 8 separate bytes
    assert v.raw == (0x00000001000000B7, 0x00000001000000B7, 0x95)
    assert v.raw_bytes == bytes.fromhex("b700000001000000" "b700000001000000" "9500000000000000")
    assert v.error is None
    # notes keep their text verbatim, '#include' included
    assert v.notes == (("c", "#include <stdint.h>\nint x;"), ("no register offset", "call instruction"))
    assert encode(v.instructions()) == bytes.fromhex("b700000001000000" "9500000000000000")


def test_parse_decimal_and_negative_results_as_u64() -> None:
    assert parse_vector("-- result\n0\n").result == 0
    assert parse_vector("-- result\n42\n").result == 42
    assert parse_vector("-- result\n-1\n").result == (1 << 64) - 1


def test_absent_sections() -> None:
    v = parse_vector("# only comments\n", "x")
    assert v == Vector(name="x")
    assert v.raw_bytes is None
    with pytest.raises(ParseError, match="neither an asm nor a raw section"):
        v.instructions()


def test_error_section_may_be_empty_or_unterminated() -> None:
    assert parse_vector("-- raw\n95 00 00 00 00 00 00 00\n-- error\n").error == ""
    assert parse_vector("-- asm\nexit\n-- error\nInvalid").error == "Invalid"


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("-- asm\nexit\n-- bogus\n", 3, "unknown section '-- bogus'"),
    ("-- asm\nexit\n-- asm\nexit\n", 3, "appears twice (first at line 1)"),
    ("-- mem\n00 1g\n", 2, "expected a hex byte, got '1g'"),
    ("-- mem\n\n123\n", 3, "expected a hex byte, got '123'"),
    ("-- result\nzz\n", 2, "expected a decimal or 0x hex number"),
    ("-- result\n0x1ffffffffffffffff\n", 2, "does not fit in 64 bits"),
    ("-- result\n1\n2\n", 1, "exactly one number, found 2"),
    ("-- raw\n0x95 00\n", 2, "one 64-bit word or 8 hex bytes, got 2 tokens"),
    ("-- raw\n0x1ffffffffffffffff\n", 2, "does not fit in 64 bits"),
    ("-- raw\nnothex\n", 2, "expected a 64-bit hex word"),
    ("mov %r0, 1\n-- asm\n", 1, "text before the first section"),
])
def test_parse_errors_name_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ParseError) as exc:
        parse_vector(text, "bad.data")
    assert fragment in str(exc.value)
    assert str(exc.value).startswith(f"bad.data:{line}: ")


def test_assembly_errors_name_the_vector_and_the_file_line() -> None:
    v = parse_vector("# header\n-- asm\nmov %r0, 1\nmov %r0, %r11\nexit\n", "v")
    with pytest.raises(AsmError) as exc:
        v.instructions()
    assert exc.value.line == 4  # file line, not listing line
    assert "v: invalid register '%r11'" in str(exc.value)


def test_raw_only_vectors_are_decoded_with_checks() -> None:
    v = parse_vector("-- raw\n07 10 00 00 01 00 00 00\n95 00 00 00 00 00 00 00\n", "v")
    with pytest.raises(AsmError) as exc:
        v.instructions()
    assert exc.value.index == 0 and "v: " in str(exc.value) and "src must be 0" in str(exc.value)


def test_load_vector_of_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="cannot read conformance vector"):
        load_vector(tmp_path / "nope.data")
    (tmp_path / "bin.data").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ParseError, match="cannot read conformance vector"):
        load_vector(tmp_path / "bin.data")


@given(st.text(alphabet="-# \nasmrwcexultor0123456789abcdefx%[]+,:", max_size=200))
def test_parser_fuzz_only_raises_bpfkit_errors(text: str) -> None:
    try:
        v = parse_vector(text, "fuzz")
        v.instructions()
    except BpfkitError:
        pass


# -- the corpus -------------------------------------------------------------------------------------
@needs_corpus
def test_corpus_tests_parse() -> None:
    assert CORPUS is not None
    vectors = load_vectors(CORPUS / "tests")
    assert len(vectors) == 313
    assert all(v.asm is not None and v.result is not None and v.error is None for v in vectors)
    assert sum(v.raw is not None for v in vectors) == 1
    assert sum(bool(v.mem) for v in vectors) == 40
    assert sum(bool(v.notes) for v in vectors) == 5
    lddw = next(v for v in vectors if v.name == "lddw")
    assert lddw.raw == (0x5566778800000018, 0x1122334400000000, 0x95)
    assert lddw.result == 0x1122334455667788


def _negative() -> dict[str, Path]:
    assert CORPUS is not None
    return {p.stem: p for p in sorted((CORPUS / "negative").glob("*.data"))}


@needs_corpus
def test_negative_corpus_is_fully_classified() -> None:
    names = set(_negative())
    unused = {n for n in names if n.startswith("unused-")}
    assert len(names) == 60 and len(unused) == 45
    assert names == unused | set(INVALID_LISTINGS) | set(RUNNER_CASES)


@needs_corpus
def test_unused_field_encodings_are_refused_by_decode() -> None:
    refused = 0
    for name, path in _negative().items():
        if not name.startswith("unused-"):
            continue
        v = load_vector(path)
        assert v.asm is None and v.error is not None and v.raw_bytes is not None
        with pytest.raises(AsmError) as exc:
            decode(v.raw_bytes)
        assert exc.value.index == 0 and "instruction 0" in str(exc.value), name
        # The refusal is about the named field: zeroing it gives a valid encoding.
        field = name.rsplit("-", 1)[1]
        first = decode(v.raw_bytes[:8], check=False)[0]
        fixed = replace(first, **{"off" if field == "offset" else field: 0})
        assert decode(encode([fixed], check=False) + v.raw_bytes[8:]) == [fixed, decode(v.raw_bytes[8:])[0]]
        refused += 1
    assert refused == 45


@needs_corpus
@pytest.mark.parametrize("name", sorted(INVALID_LISTINGS))
def test_invalid_listings_are_refused_with_the_line(name: str) -> None:
    assert CORPUS is not None
    stage, line, fragment = INVALID_LISTINGS[name]
    path = CORPUS / "negative" / f"{name}.data"
    if stage == "parser":
        with pytest.raises(ParseError) as pexc:
            load_vector(path)
        assert fragment in str(pexc.value) and f"{name}:{line}:" in str(pexc.value)
        return
    from bpfkit.isa.ubpf import assemble_ubpf

    v = load_vector(path)
    assert v.asm is not None
    with pytest.raises(AsmError) as exc:
        assemble_ubpf(v.asm)
    assert exc.value.line == line
    assert fragment in str(exc.value)
    assert f"line {line}" in str(exc.value)
    # ...and through the vector, the error names the file line
    with pytest.raises(AsmError) as vexc:
        v.instructions()
    assert vexc.value.line == v.asm_line + line


@needs_corpus
def test_runner_cases_are_valid_vectors_with_a_wrong_expectation() -> None:
    neg = _negative()
    empty = load_vector(neg["empty"])
    assert empty == Vector(name="empty")
    no_program = load_vector(neg["empty_instructions"])
    assert no_program.asm is None and no_program.raw is None and no_program.result == 0
    error = load_vector(neg["error"])
    assert error.error == "Invalid"
    assert encode(error.instructions()) == bytes.fromhex("4fa0000000000000" "9500000000000000")
    high = load_vector(neg["incorrect_return_value_high_bits"])
    insns = high.instructions()
    assert encode(insns) == bytes.fromhex("7910020000000000" "9500000000000000")  # ldxdw r0, [r1+2]
    # The little-endian 8 bytes at offset 2 differ from the claimed result only in the high bits.
    loaded = int.from_bytes(high.mem[2:10], "little")
    assert high.result is not None and loaded != high.result
    assert loaded & 0xFFFFFFFF == high.result & 0xFFFFFFFF
