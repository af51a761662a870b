"""Key/value codecs: bytes, ints, struct formats, ctypes types, per-CPU lists."""

from __future__ import annotations

import ctypes
import struct
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpfkit.errors import BpfkitError
from bpfkit.kernel.codec import (
    CodecError,
    CtypesCodec,
    IntCodec,
    PerCpuCodec,
    RawCodec,
    StructCodec,
    make_codec,
)


class Pair(ctypes.Structure):
    _fields_ = [("a", ctypes.c_uint32), ("b", ctypes.c_uint16)]


def test_raw_codec() -> None:
    c = RawCodec(4, "map 'm' key")
    assert c.encode(b"abcd") == b"abcd"
    assert c.encode(bytearray(b"wxyz")) == b"wxyz"
    assert c.encode(7) == (7).to_bytes(4, sys.byteorder)
    assert c.encode(-1) == b"\xff\xff\xff\xff"
    assert c.decode(b"abcd") == b"abcd"
    with pytest.raises(CodecError, match="map 'm' key must be 4 bytes, got 3"):
        c.encode(b"abc")
    with pytest.raises(CodecError, match="does not fit in 4 bytes"):
        c.encode(1 << 40)
    with pytest.raises(CodecError, match="bytes or int, got float"):
        c.encode(1.5)
    with pytest.raises(CodecError, match="give bytes, not an int"):
        RawCodec(12).encode(1)


def test_raw_codec_takes_fds() -> None:
    class HasFd:
        def fileno(self) -> int:
            return 42

    assert RawCodec(4).encode(HasFd()) == (42).to_bytes(4, sys.byteorder)


def test_int_codec() -> None:
    c = IntCodec(8)
    assert c.decode(c.encode(2**64 - 1)) == 2**64 - 1
    s = IntCodec(2, signed=True)
    assert s.decode(s.encode(-5)) == -5
    with pytest.raises(CodecError, match="must be an int"):
        c.encode("1")
    with pytest.raises(CodecError, match="needs 1, 2, 4 or 8"):
        IntCodec(3)


def test_struct_codec() -> None:
    one = StructCodec("I")
    assert one.size == 4 and one.decode(one.encode(9)) == 9
    two = StructCodec("<IH")
    assert two.decode(two.encode((1, 2))) == (1, 2)
    assert two.encode(b"\x01\x00\x00\x00\x02\x00") == struct.pack("<IH", 1, 2)  # raw bytes accepted
    name = StructCodec("8s")
    assert name.encode(b"ab") == b"ab\0\0\0\0\0\0"
    with pytest.raises(CodecError, match="does not fit format"):
        two.encode((1,))
    with pytest.raises(CodecError, match="not a struct format"):
        StructCodec("Z")


def test_ctypes_codec() -> None:
    c = CtypesCodec(Pair)
    v = c.decode(c.encode(Pair(5, 6)))
    assert (v.a, v.b) == (5, 6)
    u = CtypesCodec(ctypes.c_uint32)
    assert u.decode(u.encode(77)) == 77
    with pytest.raises(CodecError, match="must be a Pair or bytes"):
        c.encode(5)


def test_percpu_codec_pads_each_cpu_to_8_bytes() -> None:
    c = PerCpuCodec(IntCodec(4), 4, 3)
    assert c.stride == 8 and c.size == 24
    data = c.encode([1, 2, 3])
    assert data == b"".join(i.to_bytes(4, sys.byteorder) + bytes(4) for i in (1, 2, 3))
    assert c.decode(data) == [1, 2, 3]
    with pytest.raises(CodecError, match="must have 3 entries"):
        c.encode([1, 2])
    with pytest.raises(CodecError, match="must be a list of 3 values"):
        c.encode(5)
    big = PerCpuCodec(RawCodec(12), 12, 2)
    assert big.stride == 16 and big.size == 32


def test_make_codec_dispatch_and_size_check() -> None:
    assert isinstance(make_codec(None, 4), RawCodec)
    assert isinstance(make_codec("I", 4), StructCodec)
    assert isinstance(make_codec(int, 8), IntCodec)
    assert isinstance(make_codec(Pair, 8), CtypesCodec)
    assert isinstance(make_codec(ctypes.c_uint64, 8), CtypesCodec)
    custom = RawCodec(4)
    assert make_codec(custom, 4) is custom
    with pytest.raises(CodecError, match="key type 'I' is 4 bytes but the key is 8 bytes"):
        make_codec("I", 8, "key")
    with pytest.raises(CodecError, match="cannot use"):
        make_codec(3.5, 4)
    assert issubclass(CodecError, BpfkitError) and issubclass(CodecError, ValueError)


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1))
def test_struct_roundtrip(a: int, b: int) -> None:
    c = make_codec("=IH", 6)
    assert c.decode(c.encode((a, b))) == (a, b)


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=4, max_size=4))
def test_percpu_roundtrip(values: list[int]) -> None:
    c = PerCpuCodec(IntCodec(8, signed=True), 8, 4)
    assert c.decode(c.encode(values)) == values
