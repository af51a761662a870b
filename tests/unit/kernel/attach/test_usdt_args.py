"""USDT argument spec parsing (x86-64 and arm64), stapsdt note decoding, and fuzzing: only ParseErrors."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpfkit.errors import ElfError, ParseError
from bpfkit.kernel.attach.usdt import parse_stapsdt_notes
from bpfkit.kernel.attach.usdt_args import (
    ARM64_PT_REGS,
    X86_64_PT_REGS,
    ArgKind,
    UsdtArg,
    parse_usdt_arg,
    parse_usdt_args,
    split_usdt_args,
)


def test_x86_registers_constants_and_memory() -> None:
    a, b, c, d = parse_usdt_args("-4@%eax 8@-8(%rbp) 4@$5 -2@%r12w")
    assert a == UsdtArg(4, True, ArgKind.REG, reg="rax", reg_offset=80, text="-4@%eax")
    assert (b.size, b.signed, b.kind, b.value, b.reg, b.reg_offset) == \
        (8, False, ArgKind.REG_DEREF, -8, "rbp", 32)
    assert (c.kind, c.value, c.size) == (ArgKind.CONST, 5, 4)
    assert (d.reg, d.size, d.signed, d.bits) == ("r12", 2, True, 16)
    assert X86_64_PT_REGS["rdi"] == 112 and X86_64_PT_REGS["rsp"] == 152 and X86_64_PT_REGS["rip"] == 128


def test_x86_rip_relative_and_sib() -> None:
    g, s, h = parse_usdt_args("8@counter+16(%rip) 4@8(%rax,%rbx,4) 1@(%rsi)")
    assert (g.kind, g.symbol, g.value, g.reg) == (ArgKind.REG_DEREF, "counter", 16, "rip")
    assert (s.value, s.reg, s.index_reg, s.index_offset, s.scale) == (8, "rax", "rbx", 40, 4)
    assert (h.value, h.reg, h.size) == (0, "rsi", 1)
    assert parse_usdt_arg("-8@$-0x10").value == -16


def test_arm64() -> None:
    a, b, c, d = parse_usdt_args("-4@[sp, 12] 8@x0 4@5 8@[x29]", arch="aarch64")
    assert (a.kind, a.reg, a.reg_offset, a.value, a.signed) == (ArgKind.REG_DEREF, "sp", 248, 12, True)
    assert (b.kind, b.reg, b.reg_offset) == (ArgKind.REG, "x0", 0)
    assert (c.kind, c.value) == (ArgKind.CONST, 5)
    assert (d.reg, d.reg_offset, d.value) == ("x29", ARM64_PT_REGS["x29"], 0)
    assert split_usdt_args("-4@[sp, 12] 8@x0", "aarch64") == ["-4@[sp, 12]", "8@x0"]


def test_errors_name_the_argument() -> None:
    with pytest.raises(ParseError, match=r"probe p:n, argument 2: unknown x86-64 register %foo"):
        parse_usdt_args("4@%eax 8@%foo", where="probe p:n")
    with pytest.raises(ParseError, match="bad argument size 3"):
        parse_usdt_arg("3@%eax")
    with pytest.raises(ParseError, match="expected SIZE@OPERAND"):
        parse_usdt_arg("%eax")
    with pytest.raises(ParseError, match="architecture 'mips'"):
        parse_usdt_arg("4@$1", arch="mips")
    assert parse_usdt_args("") == ()


@given(st.text(max_size=40))
def test_fuzz_only_parse_errors(text: str) -> None:
    for arch in ("x86_64", "aarch64"):
        try:
            parse_usdt_args(text, arch)
        except ParseError:
            pass


def note(pc: int, base: int, sem: int, provider: bytes, name: bytes, args: bytes) -> bytes:
    desc = struct.pack("<QQQ", pc, base, sem) + provider + b"\0" + name + b"\0" + args + b"\0"
    owner = b"stapsdt\0"
    pad = (-len(desc)) % 4
    return struct.pack("<III", len(owner), len(desc), 3) + owner + desc + bytes(pad)


def test_stapsdt_notes() -> None:
    data = note(0x1139, 0x2004, 0x4010, b"prov", b"hit", b"-4@%ebx") + note(0x2000, 0, 0, b"p", b"n", b"")
    assert parse_stapsdt_notes(data) == [(0x1139, 0x2004, 0x4010, "prov", "hit", "-4@%ebx"),
                                         (0x2000, 0, 0, "p", "n", "")]
    other = struct.pack("<III", 4, 4, 1) + b"GNU\0" + b"abcd"
    assert parse_stapsdt_notes(other + data)[0][3] == "prov"  # other owners are skipped


def test_malformed_notes() -> None:
    good = note(1, 2, 3, b"p", b"n", b"a")
    with pytest.raises(ElfError, match="runs past the section end"):
        parse_stapsdt_notes(good[:-6])
    short = struct.pack("<III", 8, 8, 3) + b"stapsdt\0" + bytes(8)
    with pytest.raises(ElfError, match="too short"):
        parse_stapsdt_notes(short)


@given(st.binary(max_size=200))
def test_fuzz_notes_only_elf_errors(data: bytes) -> None:
    try:
        parse_stapsdt_notes(data)
    except ElfError:
        pass
