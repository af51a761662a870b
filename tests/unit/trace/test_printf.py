"""printf formatting, checked against the C library's snprintf (the formatter bpftrace itself uses)."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bpfkit.trace.printf import format_printf, hex_escape

_libc = ctypes.CDLL(ctypes.util.find_library("c"))


def c_format(fmt: str, *args: int | bytes) -> str:
    buf = ctypes.create_string_buffer(512)
    cargs = [ctypes.c_char_p(a) if isinstance(a, bytes) else ctypes.c_longlong(a) for a in args]
    _libc.snprintf(buf, 512, fmt.encode(), *cargs)
    return buf.value.decode()


FLAGS = st.sampled_from(["", "-", "0", "+", " ", "-+", "#", "0#"])
WIDTH = st.sampled_from(["", "1", "5", "12"])
PREC = st.sampled_from(["", ".0", ".3", ".12"])
LENGTH = st.sampled_from(["", "l", "ll", "h", "hh", "z", "j"])
CONV = st.sampled_from(list("diouxX"))
VALUES = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)


@given(FLAGS, WIDTH, PREC, LENGTH, CONV, VALUES)
@example("#", "", ".0", "", "o", 0)  # C prints "0": '#' forces a leading octal zero even here
def test_integers_like_libc(flags: str, width: str, prec: str, length: str, conv: str, value: int) -> None:
    fmt = f"<%{flags}{width}{prec}{length}{conv}>"
    assert format_printf(fmt, [value]) == c_format(fmt, value)


@given(st.sampled_from(["-", ""]), WIDTH, PREC, st.text(alphabet="abc xyz", max_size=20))
def test_strings_like_libc(flags: str, width: str, prec: str, text: str) -> None:
    fmt = f"[%{flags}{width}{prec}s]"
    assert format_printf(fmt, [text.encode() + b"\0junk"]) == c_format(fmt, text.encode())


@pytest.mark.parametrize(("fmt", "args", "want"), [
    ("%c%c", [72, 105], "Hi"),
    ("%p", [4096], "0x1000"),
    ("100%%", [], "100%"),
    ("%d and %s", [], "0 and 0"),  # missing arguments print as zero rather than crash
    ("%*d|%d", [7], "%*d|7"),  # a '*' width is not a conversion (as bpftrace): text
])
def test_other_conversions(fmt: str, args: list[int | bytes], want: str) -> None:
    assert format_printf(fmt, args) == want


def test_hex_escape() -> None:
    assert hex_escape(b"ab\x00\xff") == "ab\\x00\\xff"
