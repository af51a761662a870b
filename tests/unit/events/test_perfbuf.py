"""Perf ring buffer record decoding: samples, lost records, records and headers wrapping the end."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpfkit.errors import ParseError
from bpfkit.events import perfbuf as pb


def sample(raw: bytes) -> bytes:
    size = len(raw) + 4
    pad = -size % 8
    body = struct.pack("=I", len(raw) + pad) + raw + bytes(pad)
    return struct.pack("=IHH", pb.PerfRecordType.SAMPLE, 0, 8 + len(body)) + body


def lost(count: int) -> bytes:
    return struct.pack("=IHHQQ", pb.PerfRecordType.LOST, 0, 24, 7, count)


def area(size: int, records: list[bytes], start: int = 0) -> tuple[memoryview, int]:
    buf = bytearray(size)
    pos = start
    for rec in records:
        for i, byte in enumerate(rec):
            buf[(pos + i) % size] = byte
        pos += len(rec)
    return memoryview(buf), pos


def decode(data: memoryview, tail: int, head: int) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for _, rtype, body in pb.scan(data, tail, head):
        if rtype == pb.PerfRecordType.SAMPLE:
            out.append(("sample", bytes(pb.sample_raw(body))))
        elif rtype == pb.PerfRecordType.LOST:
            out.append(("lost", pb.lost_count(body)))
    return out


def test_samples_and_lost_records() -> None:
    data, head = area(128, [sample(b"abcd"), lost(5), sample(b"x" * 12)])
    assert decode(data, 0, head) == [("sample", b"abcd"), ("lost", 5), ("sample", b"x" * 12)]


def test_raw_size_includes_the_kernels_padding() -> None:
    data, head = area(64, [sample(b"abc")])  # 4 + 3 rounds up to 8: size field says 4
    assert decode(data, 0, head) == [("sample", b"abc\0")]


@pytest.mark.parametrize("start", [56, 60, 62, 40])
def test_records_wrapping_the_end_are_copied(start: int) -> None:
    raw = bytes(range(20))
    data, head = area(64, [sample(raw)], start=start)
    assert decode(data, start, head) == [("sample", raw + bytes(-(len(raw) + 4) % 8))]


def test_bad_size_raises_parse_error() -> None:
    data = memoryview(bytearray(struct.pack("=IHH", 9, 0, 4) + bytes(56)))
    with pytest.raises(ParseError, match="size 4"):
        decode(data, 0, 8)
    data = memoryview(bytearray(struct.pack("=IHH", 9, 0, 48) + bytes(56)))
    with pytest.raises(ParseError, match="size 48"):
        decode(data, 0, 16)


def test_short_bodies_raise_parse_error() -> None:
    with pytest.raises(ParseError):
        pb.sample_raw(b"\x10\0\0\0abc")
    with pytest.raises(ParseError):
        pb.lost_count(b"\0" * 8)


@given(st.lists(st.one_of(st.binary(max_size=60).map(lambda b: ("sample", b)),
                          st.integers(0, 2**40).map(lambda n: ("lost", n))), max_size=10),
       st.integers(0, 4096))
def test_scan_roundtrip(records: list[tuple[str, object]], start: int) -> None:
    start &= ~7
    encoded = [sample(v) if k == "sample" else lost(v) for k, v in records]  # type: ignore[arg-type]
    data, head = area(1024, encoded, start)
    expected = [(k, v + bytes(-(len(v) + 4) % 8)) if k == "sample" else (k, v)  # type: ignore[operator]
                for k, v in records]
    assert decode(data, start, head) == expected


@given(st.binary(min_size=64, max_size=64), st.integers(0, 200), st.integers(0, 400))
def test_fuzz_only_parse_errors(area: bytes, tail: int, extra: int) -> None:
    try:
        for _nxt, rtype, body in pb.scan(memoryview(area), tail, tail + extra):
            if rtype == pb.PerfRecordType.SAMPLE:
                pb.sample_raw(body)
            elif rtype == pb.PerfRecordType.LOST:
                pb.lost_count(body)
    except ParseError:
        pass
