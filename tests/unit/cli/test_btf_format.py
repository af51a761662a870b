"""`format_value`: map keys and values decoded with BTF the way bpftool's "formatted" shows them.

The kernel oracle test (tests/kernel/test_cli_vs_bpftool.py) compares whole dumps with bpftool; these
pin down each convention on hand-built BTF.
"""

from __future__ import annotations

import struct

from bpfkit.btf import (
    Array,
    Datasec,
    Enum,
    EnumValue,
    Int,
    IntEncoding,
    Member,
    Ptr,
    Spec,
    Struct,
    Typedef,
    Union,
    Var,
    VarSecinfo,
    marshal,
)
from bpfkit.cli.btf_format import format_value

# ids:            1 int       2 unsigned int  3 char              4 _Bool
TYPES = [Int("int", 4, IntEncoding.SIGNED), Int("unsigned int", 4), Int("char", 1, IntEncoding.SIGNED),
         Int("_Bool", 1, IntEncoding.BOOL),
         # 5 char[6]       6 enum color                                             7 void *
         Array(3, 1, 6), Enum("color", 4, (EnumValue("RED", 1), EnumValue("BLUE", 0xFFFFFFFF))), Ptr(0),
         # 8 unsigned __int128                9 struct s (bitfields, a char array, a pointer...)
         Int("unsigned __int128", 16),
         Struct("s", 40, (Member("a", 1, 0), Member("bf", 2, 32, 3), Member("sbf", 1, 35, 4),
                          Member("name", 5, 40), Member("c", 6, 96), Member("ok", 4, 128),
                          Member("p", 7, 192), Member("", 10, 256))),
         # 10 anonymous union      11 typedef    12 var       13 .data
         Union("", 8, (Member("u", 1, 0), Member("v", 2, 0))), Typedef("s_t", 9), Var("g", 1),
         Datasec(".data", 8, (VarSecinfo(12, 0, 4), VarSecinfo(14, 4, 4))), Var("h", 2)]
SPEC = Spec(marshal(TYPES))


def test_struct_members_follow_bpftool() -> None:
    raw = bytearray(40)
    struct.pack_into("<i", raw, 0, -7)
    struct.pack_into("<I", raw, 4, 0b1011_101)  # bf = 5 (3 bits), sbf = 0b1011 (4 bits)
    raw[5:11] = b"hi\0\0\0\0"
    struct.pack_into("<I", raw, 12, 0xFFFFFFFF)
    raw[16] = 1
    struct.pack_into("<Q", raw, 24, 0xDEAD)
    struct.pack_into("<i", raw, 32, 9)
    assert format_value(SPEC, 11, bytes(raw)) == {
        "a": -7, "bf": "0x5", "sbf": "0xb", "name": "hi", "c": "BLUE", "ok": True, "p": 0xDEAD,
        "": {"u": 9, "v": 9}}


def test_char_arrays_are_strings_only_when_terminated_and_printable() -> None:
    assert format_value(SPEC, 5, b"abc\0\0\0") == "abc"
    assert format_value(SPEC, 5, b"\0\0\0\0\0\0") == ""
    assert format_value(SPEC, 5, b"abcdef") == [97, 98, 99, 100, 101, 102]
    assert format_value(SPEC, 5, b"a\x01c\0\0\0") == [97, 1, 99, 0, 0, 0]


def test_enums_unmatched_values_are_signed_numbers() -> None:
    assert format_value(SPEC, 6, struct.pack("<I", 1)) == "RED"
    assert format_value(SPEC, 6, struct.pack("<I", 0xFFFFFFFE)) == -2
    assert format_value(SPEC, 6, struct.pack("<I", 7)) == 7


def test_wide_ints_are_hex_and_datasecs_list_their_variables() -> None:
    assert format_value(SPEC, 8, (2**100 + 5).to_bytes(16, "little")) == hex(2**100 + 5)
    assert format_value(SPEC, 13, struct.pack("<iI", -1, 3)) == {".data": [{"g": -1}, {"h": 3}]}
    assert format_value(SPEC, 4, b"\x00") is False
