"""Decoding perf ring buffer records (perf_event_open(2) mmap, include/uapi/linux/perf_event.h).

A perf event's mapping is one metadata page (`struct perf_event_mmap_page`) followed by a data area of
2^n pages. The kernel advances ``data_head``; the reader processes records from its ``data_tail`` up to
the head and then stores the new tail. Records are ``struct perf_event_header`` (u32 type, u16 misc, u16
size including the header) followed by the body; the area is mapped once, so a record that runs past its
end is copied out in two pieces.

For a BPF output event (PERF_COUNT_SW_BPF_OUTPUT with PERF_SAMPLE_RAW) the records are:
  * PERF_RECORD_SAMPLE: u32 size, then `size` raw bytes: what bpf_perf_event_output wrote, followed by
    padding that makes ``4 + size`` a multiple of 8 (kernel/events/core.c, perf_prepare_sample). The
    kernel skips the padding without clearing it (perf_output_sample: __output_skip), so its bytes are
    whatever the ring held before: decode only the length the program wrote;
  * PERF_RECORD_LOST: u64 id, u64 lost: how many records the kernel dropped because the area was full.
Pure code: `bpfkit.kernel.perfbuf` maps the pages and feeds them here. The constants and layouts
(record types, the metadata page's offsets, the record header) are in `bpfkit.uapi.perf`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from bpfkit.errors import ParseError
from bpfkit.uapi.perf import PERF_EVENT_HEADER
from bpfkit.uapi.perf import PerfRecordType as PerfRecordType  # re-exported: record types, for decoders

HEADER_SIZE = PERF_EVENT_HEADER.size
_HEADER = PERF_EVENT_HEADER
_U32 = struct.Struct("=I")
_LOST = struct.Struct("=QQ")


class PerfFormatError(ParseError):
    """A record header that cannot be right (size below the header or beyond the head)."""


def parse_header(data: memoryview | bytes, offset: int = 0) -> tuple[int, int, int]:
    """``(type, misc, size)`` of the perf_event_header at `offset`."""
    t, misc, size = _HEADER.unpack_from(data, offset)
    return t, misc, size


def sample_raw(record: memoryview | bytes) -> memoryview | bytes:
    """The raw bytes of a PERF_RECORD_SAMPLE made with PERF_SAMPLE_RAW only (`record` without header)."""
    if len(record) < 4:
        raise PerfFormatError(f"sample record of {len(record)} bytes has no raw size", 0)
    (size,) = _U32.unpack_from(record, 0)
    if 4 + size > len(record):
        raise PerfFormatError(f"sample raw size {size} exceeds its record ({len(record)} bytes)", 0)
    return record[4:4 + size]


def lost_count(record: memoryview | bytes) -> int:
    """The number of dropped records a PERF_RECORD_LOST body (`record` without header) reports."""
    if len(record) < _LOST.size:
        raise PerfFormatError(f"lost record of {len(record)} bytes is too short", 0)
    return int(_LOST.unpack_from(record, 0)[1])


def scan(data: memoryview, tail: int, head: int) -> Iterator[tuple[int, int, memoryview | bytes]]:
    """Walk the records between the reader's `tail` and the kernel's `head` in the data area `data`.

    Yields ``(next_tail, type, body)``: `body` is the record without its header, a zero-copy view of the
    mapping when the record is contiguous, or a copy when it wraps past the area's end. `tail` and
    `head` are free-running positions; the area's size is ``len(data)`` (a power of two).
    """
    size = len(data)
    if size <= 0 or size & (size - 1):
        raise ValueError(f"perf buffer data size must be a power of two, not {size}")
    mask = size - 1
    unpack = _HEADER.unpack_from
    while tail < head:
        off = tail & mask
        if off + HEADER_SIZE <= size:
            rtype, _misc, rsize = unpack(data, off)
        else:  # the header itself wraps
            first = size - off
            rtype, _misc, rsize = unpack(bytes(data[off:]) + bytes(data[:HEADER_SIZE - first]))
        if rsize < HEADER_SIZE or tail + rsize > head:
            raise PerfFormatError(f"perf record at position {tail} has size {rsize} "
                                  f"(head at {head}, area of {size} bytes)", off)
        start = off + HEADER_SIZE
        end = off + rsize
        if end <= size:
            body: memoryview | bytes = data[start:end]
        elif start >= size:
            body = data[start - size:end - size]
        else:
            body = bytes(data[start:]) + bytes(data[:end - size])
        tail += rsize
        yield tail, rtype, body
