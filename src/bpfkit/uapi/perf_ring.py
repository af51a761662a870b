"""Constants of perf_event_open(2) (include/uapi/linux/perf_event.h) for reading a perf event's ring
buffer: the sample flags, the record types, the offsets of ``struct perf_event_mmap_page``'s ring control
words and the layout of ``struct perf_event_header``. Hand-written.

Re-exported by `bpfkit.uapi.perf` (use them from there). A module of its own because attaching a program
to a perf event or a tracepoint does not read that ring, and start-up pays for every class it creates.
"""

from __future__ import annotations

import enum
import struct

from ._cenum import CEnum, CFlag, c_source

__all__ = [
    "PERF_EVENT_HEADER",
    "PerfMmapPage",
    "PerfRecordType",
    "PerfSample",
]


@c_source("perf_event_sample_format", "PERF_SAMPLE_")
class PerfSample(CFlag):
    """perf_event_attr.sample_type bits (the ones bpfkit sets).

    C: enum perf_event_sample_format, names PERF_SAMPLE_*.
    """

    IP = 1 << 0  # PERF_SAMPLE_IP
    TID = 1 << 1  # PERF_SAMPLE_TID
    TIME = 1 << 2  # PERF_SAMPLE_TIME
    ADDR = 1 << 3  # PERF_SAMPLE_ADDR
    READ = 1 << 4  # PERF_SAMPLE_READ
    CALLCHAIN = 1 << 5  # PERF_SAMPLE_CALLCHAIN
    ID = 1 << 6  # PERF_SAMPLE_ID
    CPU = 1 << 7  # PERF_SAMPLE_CPU
    PERIOD = 1 << 8  # PERF_SAMPLE_PERIOD
    STREAM_ID = 1 << 9  # PERF_SAMPLE_STREAM_ID
    RAW = 1 << 10  # PERF_SAMPLE_RAW


@c_source("perf_event_type", "PERF_RECORD_")
class PerfRecordType(CEnum):
    """perf_event_header.type: the record types a BPF output event produces, and their neighbours.

    C: enum perf_event_type, names PERF_RECORD_*.
    """

    MMAP = 1  # PERF_RECORD_MMAP
    LOST = 2  # PERF_RECORD_LOST
    COMM = 3  # PERF_RECORD_COMM
    EXIT = 4  # PERF_RECORD_EXIT
    THROTTLE = 5  # PERF_RECORD_THROTTLE
    UNTHROTTLE = 6  # PERF_RECORD_UNTHROTTLE
    FORK = 7  # PERF_RECORD_FORK
    READ = 8  # PERF_RECORD_READ
    SAMPLE = 9  # PERF_RECORD_SAMPLE
    LOST_SAMPLES = 13  # PERF_RECORD_LOST_SAMPLES


class PerfMmapPage(enum.IntEnum):
    """Byte offsets of the ring control words in ``struct perf_event_mmap_page`` (linux/perf_event.h),
    the metadata page at the start of a perf event's mapping; each is a ``__u64``. The first 1 KiB
    holds the counter fields and reserved padding (``__reserved[118*8+4]``), so these never move.
    """

    DATA_HEAD = 1024
    """``data_head``: the kernel's write position."""
    DATA_TAIL = 1032
    """``data_tail``: the reader's position (written by user space)."""
    DATA_OFFSET = 1040
    """``data_offset``: where the data area starts in the mapping (4.1+)."""
    DATA_SIZE = 1048
    """``data_size``: the data area's size (4.1+)."""


PERF_EVENT_HEADER = struct.Struct("=IHH")
"""``struct perf_event_header`` (linux/perf_event.h): u32 type, u16 misc, u16 size (header included)."""
