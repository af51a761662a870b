"""Arrays and struct values as bpftrace 0.17 prints them: text values, map keys and JSON."""

from __future__ import annotations

import struct

from bpfkit.lang.types import Kind, StructMember, Type, array_of, int_type, pointer_to
from bpfkit.trace.output import decode, json_compound

ARR = array_of(int_type(2, True), 3, 2)
INNER = Type(Kind.STRUCT, 4, False, cname="struct in", members=(StructMember("x", 0, 4, int_type(4, False)),))
OUTER = Type(Kind.STRUCT, 40, False, cname="struct out", members=(
    StructMember("neg", 0, 4, int_type(4, True)),
    StructMember("big", 8, 8, int_type(8, False)),
    StructMember("ptr", 16, 8, pointer_to(None, "void *")),
    StructMember("bits", 24, 1, int_type(1, True), 2, 3),
    StructMember("name", 25, 5, Type(Kind.STR)),
    StructMember("arr", 30, 6, ARR),
    StructMember("in", 36, 4, INNER),
))
RAW = (struct.pack("<i4xQQ", -3, 2**64 - 1, 2**64 - 16) + bytes([0b101 << 2 | 0b11]) + b"ab\0\0\0"
       + struct.pack("<3h", 1, -2, 3) + struct.pack("<I", 7))


def test_arrays_print_as_bpftrace_lists() -> None:
    raw = struct.pack("<3h", 1, -2, 3).ljust(8, b"\0")
    assert decode(ARR, raw) == "[1,-2,3]" == json_compound(ARR, raw)
    assert ARR.storage == 8


def test_struct_values_keys_and_json() -> None:
    assert decode(OUTER, RAW) == ("{ .neg = -3, .big = 18446744073709551615, .ptr = -16, .bits = -3, "
                                  ".name = ab, .arr = [1,-2,3], .in = { .x = 7 } }")
    assert decode(OUTER, RAW, key=True) == ("{.neg=-3,.big=-1,.ptr=-16,.bits=-3,.name=ab,.arr=[1,-2,3],"
                                            ".in={.x=7}}")
    assert json_compound(OUTER, RAW) == ('{ "neg": -3, "big": 18446744073709551615, "ptr": -16, "bits": -3, '
                                         '"name": "ab", "arr": [1,-2,3], "in": { "x": 7 } }')


def test_unsigned_array_elements_print_signed_in_keys_only() -> None:
    """bpftrace 0.17 showed `@b[[3,-60473036079272,0,0]]` for a `unsigned long[4]` key (cpus_mask.bits)
    whose second word had its top bit set, and the same word unsigned as a value."""
    u64s = array_of(int_type(8, False), 2, 8)
    raw = struct.pack("<QQ", 3, 2**64 - 60473036079272)
    assert decode(u64s, raw) == "[3,18446683600673472344]"
    assert decode(u64s, raw, key=True) == "[3,-60473036079272]"
