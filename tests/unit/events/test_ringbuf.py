"""Ring buffer record decoding over a simulated doubly mapped data area."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpfkit.errors import ParseError
from bpfkit.events import ringbuf as rb


def ring(size: int, records: list[tuple[bytes, bool, bool]], start: int = 0) -> tuple[memoryview, int]:
    """A data area of `size` bytes holding `records` (payload, discard, busy) from position `start`,
    mapped twice like the kernel does; returns the view and the producer position."""
    area = bytearray(size)
    pos = start
    for payload, discard, busy in records:
        rec = rb.encode_header(len(payload), discard=discard, busy=busy) + payload
        rec += bytes(rb.record_size(len(payload)) - len(rec))
        for i, byte in enumerate(rec):
            area[(pos + i) % size] = byte
        pos += len(rec)
    return memoryview(bytes(area) * 2), pos


def test_header_bits_and_alignment() -> None:
    h = rb.parse_header(13 | rb.BUSY_BIT)
    assert (h.length, h.busy, h.discard, h.total) == (13, True, False, 24)
    h = rb.parse_header(8 | rb.DISCARD_BIT)
    assert (h.length, h.busy, h.discard, h.total) == (8, False, True, 16)
    assert [rb.record_size(n) for n in (0, 1, 7, 8, 9, 16)] == [8, 16, 16, 16, 24, 24]


def test_scan_yields_payloads_and_positions() -> None:
    data, prod = ring(64, [(b"abc", False, False), (b"12345678", False, False)])
    out = [(nxt, bytes(v) if v is not None else None) for nxt, v in rb.scan(data, 0, prod, 64)]
    assert out == [(16, b"abc"), (32, b"12345678")]


def test_discarded_records_are_skipped_as_none() -> None:
    data, prod = ring(64, [(b"gone", True, False), (b"kept", False, False)])
    out = [(nxt, None if v is None else bytes(v)) for nxt, v in rb.scan(data, 0, prod, 64)]
    assert out == [(16, None), (32, b"kept")]


def test_busy_record_stops_the_scan() -> None:
    data, prod = ring(64, [(b"one", False, False), (b"two", False, True), (b"three", False, False)])
    out = [bytes(v) for _, v in rb.scan(data, 0, prod, 64) if v is not None]
    assert out == [b"one"]


def test_record_wrapping_the_end_reads_contiguously() -> None:
    payload = bytes(range(40))
    data, prod = ring(64, [(payload, False, False)], start=48)  # header at 48, payload runs past 64
    ((nxt, view),) = list(rb.scan(data, 48, prod, 64))
    assert view is not None and bytes(view) == payload and nxt == 48 + 48


def test_free_running_positions_beyond_the_size() -> None:
    data, prod = ring(64, [(b"x" * 20, False, False)], start=64 * 1000 + 8)
    ((nxt, view),) = list(rb.scan(data, 64 * 1000 + 8, prod, 64))
    assert view is not None and bytes(view) == b"x" * 20 and nxt == prod


def test_corrupt_length_raises_parse_error() -> None:
    area = bytearray(64)
    area[:8] = rb.encode_header(1000)
    with pytest.raises(ParseError, match="claims 1000 bytes"):
        list(rb.scan(memoryview(bytes(area) * 2), 0, 16, 64))


def test_size_must_be_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        list(rb.scan(memoryview(bytes(96)), 0, 8, 48))


@given(st.lists(st.tuples(st.binary(max_size=40), st.booleans()), max_size=12),
       st.integers(min_value=0, max_value=10_000))
def test_scan_roundtrip(records: list[tuple[bytes, bool]], start: int) -> None:
    size = 1024
    start &= ~7
    data, prod = ring(size, [(p, d, False) for p, d in records], start)
    got = [None if v is None else bytes(v) for _, v in rb.scan(data, start, prod, size)]
    assert got == [None if d else p for p, d in records]


@given(st.binary(min_size=64, max_size=64), st.integers(0, 200), st.integers(0, 400))
def test_fuzz_only_parse_errors(area: bytes, cons: int, extra: int) -> None:
    data = memoryview(area * 2)
    try:
        for _nxt, view in rb.scan(data, cons, cons + extra, 64):
            if view is not None:
                assert len(view) <= 64 - rb.HDR_SZ
    except ParseError:
        pass
