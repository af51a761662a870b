"""encode/decode: byte layout, LD_IMM64, refusal of invalid encodings, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpfkit.errors import AsmError, BpfkitError
from bpfkit.isa import OPCODES, Instruction, decode, encode, field_error
from bpfkit.isa.opcodes import ANY, REG, ZERO, Kind, OpSpec


def test_layout_of_a_simple_instruction() -> None:
    # r1 += -28 : opcode 0x07, dst 1, off 0, imm -28 (as llvm-objdump shows "07 01 00 00 e4 ff ff ff")
    assert encode([Instruction(0x07, dst=1, imm=-28)]).hex(" ") == "07 01 00 00 e4 ff ff ff"
    # registers: dst in the low nibble, src in the high nibble (little-endian)
    assert encode([Instruction(0xBF, dst=2, src=10)]).hex(" ") == "bf a2 00 00 00 00 00 00"


def test_big_endian_swaps_register_nibbles_and_byte_order() -> None:
    raw = encode([Instruction(0x61, dst=1, src=2, off=4)], byteorder="big")
    assert raw.hex(" ") == "61 12 00 04 00 00 00 00"
    assert decode(raw, byteorder="big") == [Instruction(0x61, dst=1, src=2, off=4)]


def test_ld_imm64_is_one_instruction_of_two_slots() -> None:
    raw = bytes.fromhex("18000000" "88776655" "00000000" "44332211" "9500000000000000")
    insns = decode(raw)
    assert len(insns) == 2
    assert insns[0].width == 2 and insns[0].imm == 0x1122334455667788
    assert encode(insns) == raw


def test_ld_imm64_negative_value_round_trips() -> None:
    insn = Instruction(0x18, dst=2, imm=-(1 << 63))
    raw = encode([insn])
    assert raw.hex(" ") == "18 02 00 00 00 00 00 00 00 00 00 00 00 00 00 80"
    assert decode(raw) == [insn]


def test_unsigned_immediates_are_stored_signed() -> None:
    assert Instruction(0xB7, imm=0xFFFFFFFF).imm == -1
    assert Instruction(0x18, imm=0xFFFFFFFFFFFFFFFF).imm == -1
    with pytest.raises(AsmError):
        Instruction(0xB7, imm=1 << 32)
    with pytest.raises(AsmError):
        Instruction(0x05, off=0x10000)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("95000000000000", "not a multiple"),
        ("1800000001000000", "second 8-byte slot"),
        ("1800000001000000" "0100000000000000", "second slot"),
        ("ff00000000000000", "unknown opcode"),
        ("b70b000000000000", "dst must be a register"),
        ("0f0001000000000000"[:16], "off must be 0"),
        ("8d0b000000000000", "dst must be a register"),
        ("d400000011000000", "imm must be one of 16, 32, 64"),
        ("3c00020000000000", "off must be one of 0, 1"),
        ("bc10200000000000", "off must be one of 0, 8, 16"),
        ("9900000000000000", "unknown opcode"),  # no 64-bit sign-extending load
        ("d310000001000000", "imm must be"),  # 8-bit atomics are only load-acquire/store-release
        ("8500010001000000", "kfunc"),  # helper call with off set
        ("1830000000000000" "0000000000000000", "src must be"),  # ld_imm64 with src 3 is ok; 7 is not
    ],
)
def test_decode_refuses_invalid_encodings_with_the_index(raw: str, reason: str) -> None:
    data = bytes.fromhex("b700000000000000" + raw)
    if reason == "src must be":
        data = bytes.fromhex("b700000000000000" + "1870000000000000" "0000000000000000")
    with pytest.raises(AsmError) as exc:
        decode(data)
    assert reason in str(exc.value)
    assert exc.value.index == 1
    assert "instruction 1" in str(exc.value)


def test_encode_refuses_invalid_and_non_instructions() -> None:
    with pytest.raises(AsmError, match="instruction 1"):
        encode([Instruction(0x95), Instruction(0x95, dst=1)])
    with pytest.raises(AsmError, match="expected an Instruction"):
        encode([b"\x95" * 8])  # type: ignore[list-item]
    # check=False lets tests build deliberately bad bytecode
    assert encode([Instruction(0x95, dst=1)], check=False) == bytes.fromhex("9501000000000000")


def test_table_covers_the_isa() -> None:
    kinds = {spec.kind for spec in OPCODES.values()}
    assert kinds == set(Kind)
    # every opcode named in RFC 9669's tables plus the Linux extensions; spot-check a few
    for op in (0x07, 0x0F, 0x04, 0x0C, 0x87, 0x84, 0xD4, 0xDC, 0xD7, 0x18, 0x20, 0x28, 0x30, 0x40, 0x48,
               0x50, 0x61, 0x69, 0x71, 0x79, 0x81, 0x89, 0x91, 0x62, 0x6A, 0x72, 0x7A, 0x63, 0x6B, 0x73,
               0x7B, 0xC3, 0xDB, 0xCB, 0xD3, 0x05, 0x06, 0x15, 0x1D, 0x16, 0x1E, 0x85, 0x8D, 0x95, 0xE5):
        assert op in OPCODES, hex(op)
    for op in (0x8C, 0x8F, 0xDF, 0x38, 0x58, 0x99, 0x0D, 0x96, 0x86, 0xE6, 0x00, 0x60):
        assert op not in OPCODES, hex(op)


def _field(rule: frozenset[int] | None, bits: int) -> st.SearchStrategy[int]:
    if rule is ANY:
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return st.sampled_from(sorted(rule))


@st.composite
def valid_instructions(draw: st.DrawFn) -> Instruction:
    spec: OpSpec = draw(st.sampled_from(list(OPCODES.values())))
    dst = draw(_field(spec.dst, 4))
    src = draw(_field(spec.src, 4))
    off = draw(_field(spec.off, 16))
    if spec.kind is Kind.CALL and src != 2:
        off = 0
    imm = draw(_field(spec.imm, 64 if spec.kind is Kind.LD_IMM64 else 32))
    return Instruction(spec.opcode, dst, src, off, imm)


@given(st.lists(valid_instructions(), max_size=20))
def test_encode_decode_round_trip(insns: list[Instruction]) -> None:
    raw = encode(insns)
    assert decode(raw) == insns
    assert encode(decode(raw)) == raw


@given(st.binary(max_size=200))
def test_decode_of_arbitrary_bytes_only_raises_bpfkit_errors(data: bytes) -> None:
    try:
        insns = decode(data)
    except BpfkitError:
        return
    assert encode(insns) == data


@given(st.integers(0, 255), st.integers(0, 15), st.integers(0, 15), st.integers(-(1 << 15), (1 << 15) - 1),
       st.integers(-(1 << 31), (1 << 31) - 1))
def test_field_error_agrees_with_the_table(opcode: int, dst: int, src: int, off: int, imm: int) -> None:
    err = field_error(opcode, dst, src, off, imm)
    spec = OPCODES.get(opcode)
    if spec is None:
        assert err is not None and "unknown opcode" in err
        return
    ok = all(rule is None or value in rule for value, rule in
             ((dst, spec.dst), (src, spec.src), (off, spec.off), (imm, spec.imm)))
    if spec.kind is Kind.CALL and src != 2 and off != 0:
        ok = False
    assert (err is None) == ok, err


def test_register_rule_is_r0_to_r10() -> None:
    assert REG == frozenset(range(11)) and ZERO == frozenset({0})
