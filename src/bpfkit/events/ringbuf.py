"""Decoding BPF ring buffer records (BPF_MAP_TYPE_RINGBUF, kernel/bpf/ringbuf.c) from a memoryview.

A ring buffer's data area of `size` bytes (a power of two) is mapped twice in a row by the kernel, so a
record that runs past the end can be read contiguously: positions are free-running 64-bit counters and
``pos & (size - 1)`` is the record's offset in the first copy. Each record starts with an 8-byte header:
a 32-bit length word whose top bits are BUSY (the producer has not committed yet) and DISCARD (the
producer gave the record up), then a 32-bit page offset the kernel uses internally. The next record
starts at the header plus the length rounded up to 8 bytes.

Pure code: the kernel reader (`bpfkit.kernel.ringbuf`) hands this module the mapped data and the
positions it read from the mapped producer/consumer pages.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from bpfkit._records import record
from bpfkit.errors import ParseError
from bpfkit.uapi.enums import RingbufHeader

HDR_SZ = int(RingbufHeader.HDR_SZ)
BUSY_BIT = int(RingbufHeader.BUSY_BIT)
DISCARD_BIT = int(RingbufHeader.DISCARD_BIT)
LEN_MASK = 0xFFFFFFFF & ~(BUSY_BIT | DISCARD_BIT)

_U32_NATIVE = struct.Struct("=I")


class RingbufFormatError(ParseError):
    """A record header that cannot be right (longer than the ring): the mapping is not a ring buffer."""


@record
class Header:
    """A decoded record header: payload `length` and the BUSY/DISCARD bits."""

    length: int
    busy: bool
    discard: bool

    @property
    def total(self) -> int:
        """Bytes the record takes in the ring: header plus payload rounded up to 8."""
        return record_size(self.length)


def parse_header(word: int) -> Header:
    """Split a header's 32-bit length word into length and flags."""
    return Header(word & LEN_MASK, bool(word & BUSY_BIT), bool(word & DISCARD_BIT))


def record_size(length: int) -> int:
    """The ring space a record with `length` payload bytes takes (header included, 8-byte aligned)."""
    return (length + HDR_SZ + 7) & ~7


def encode_header(length: int, *, busy: bool = False, discard: bool = False, page_off: int = 0) -> bytes:
    """The 8 header bytes of a record (native byte order, as the kernel writes them); for tests and the
    user ring buffer writer."""
    word = length | (BUSY_BIT if busy else 0) | (DISCARD_BIT if discard else 0)
    return _U32_NATIVE.pack(word) + _U32_NATIVE.pack(page_off)


def scan(data: memoryview, cons: int, prod: int, size: int) -> Iterator[tuple[int, memoryview | None]]:
    """Walk the committed records between consumer position `cons` and producer position `prod`.

    `data` is the doubly mapped data area (2 * `size` bytes). Yields ``(next_pos, payload)`` for each
    record: `payload` is a zero-copy view of the record's bytes, or None for a discarded record; the
    caller stores `next_pos` as the consumer position once it is done with the payload. Stops at the
    first record still BUSY (the producer is writing it; records after it wait their turn).
    """
    if size <= 0 or size & (size - 1):
        raise ValueError(f"ring buffer size must be a power of two, not {size}")
    mask = size - 1
    unpack = _U32_NATIVE.unpack_from
    while cons < prod:
        off = cons & mask
        (word,) = unpack(data, off)
        if word & BUSY_BIT:
            return
        length = word & LEN_MASK
        nxt = cons + ((length + HDR_SZ + 7) & ~7)
        if length > size - HDR_SZ or nxt > prod:
            raise RingbufFormatError(f"ring buffer record at position {cons} claims {length} bytes, "
                                     f"beyond the producer position {prod} (ring of {size} bytes)", off)
        if word & DISCARD_BIT:
            yield nxt, None
        else:
            start = off + HDR_SZ
            yield nxt, data[start:start + length]
        cons = nxt
