"""Constants of perf_event_open(2) (include/uapi/linux/perf_event.h) that attaching programs needs.

Hand-written: the event types, the generic hardware and software event ids, the ioctl request numbers
(``_IO('$', n)``/``_IOW('$', n, type)`` expanded for the asm-generic ioctl encoding that x86-64 and arm64
share) and perf_event_open(2)'s flags. The constants of reading a perf event's ring buffer (sample
flags, record types, ``struct perf_event_mmap_page`` and ``struct perf_event_header`` layouts) live in
`perf_ring`, re-exported here and imported on first use: attaching does not read the ring, and start-up
is a hot path. So do the generic hardware and software event ids (`perf_ids`): attaching to a tracepoint
or a uprobe does not name them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._cenum import CEnum, CFlag, c_source

if TYPE_CHECKING:
    from .perf_ids import PerfHwId as PerfHwId
    from .perf_ids import PerfSwId as PerfSwId
    from .perf_ring import PERF_EVENT_HEADER as PERF_EVENT_HEADER
    from .perf_ring import PerfMmapPage as PerfMmapPage
    from .perf_ring import PerfRecordType as PerfRecordType
    from .perf_ring import PerfSample as PerfSample

__all__ = [
    "PERF_EVENT_HEADER",
    "PerfEventIoc",
    "PerfFlag",
    "PerfHwId",
    "PerfMmapPage",
    "PerfRecordType",
    "PerfSample",
    "PerfSwId",
    "PerfType",
]


@c_source("perf_type_id", "PERF_TYPE_")
class PerfType(CEnum):
    """perf_event_attr.type for the fixed PMUs (dynamic PMUs such as uprobe read theirs from sysfs).

    C: enum perf_type_id, names PERF_TYPE_*.
    """

    HARDWARE = 0  # PERF_TYPE_HARDWARE
    SOFTWARE = 1  # PERF_TYPE_SOFTWARE
    TRACEPOINT = 2  # PERF_TYPE_TRACEPOINT
    HW_CACHE = 3  # PERF_TYPE_HW_CACHE
    RAW = 4  # PERF_TYPE_RAW
    BREAKPOINT = 5  # PERF_TYPE_BREAKPOINT


@c_source(None, "PERF_EVENT_IOC_")
class PerfEventIoc(CEnum):
    """ioctl requests on a perf event fd (_IO('$', n) = 0x2400 | n; _IOW adds the direction bit 0x40000000
    and the argument size << 16).

    C: #define PERF_EVENT_IOC_*.
    """

    ENABLE = 0x2400  # PERF_EVENT_IOC_ENABLE
    DISABLE = 0x2401  # PERF_EVENT_IOC_DISABLE
    REFRESH = 0x2402  # PERF_EVENT_IOC_REFRESH
    RESET = 0x2403  # PERF_EVENT_IOC_RESET
    PERIOD = 0x40082404  # PERF_EVENT_IOC_PERIOD: _IOW('$', 4, __u64)
    SET_OUTPUT = 0x2405  # PERF_EVENT_IOC_SET_OUTPUT
    SET_FILTER = 0x40082406  # PERF_EVENT_IOC_SET_FILTER: _IOW('$', 6, char *)
    ID = 0x80082407  # PERF_EVENT_IOC_ID: _IOR('$', 7, __u64 *)
    SET_BPF = 0x40042408  # PERF_EVENT_IOC_SET_BPF: _IOW('$', 8, __u32)
    PAUSE_OUTPUT = 0x40042409  # PERF_EVENT_IOC_PAUSE_OUTPUT: _IOW('$', 9, __u32)


@c_source(None, "PERF_FLAG_")
class PerfFlag(CFlag):
    """The `flags` argument of perf_event_open(2).

    C: #define PERF_FLAG_*.
    """

    FD_NO_GROUP = 1 << 0  # PERF_FLAG_FD_NO_GROUP
    FD_OUTPUT = 1 << 1  # PERF_FLAG_FD_OUTPUT
    PID_CGROUP = 1 << 2  # PERF_FLAG_PID_CGROUP
    FD_CLOEXEC = 1 << 3  # PERF_FLAG_FD_CLOEXEC: open the event fd close-on-exec


_RING = frozenset({"PERF_EVENT_HEADER", "PerfMmapPage", "PerfRecordType", "PerfSample"})


def __getattr__(name: str) -> Any:
    """Import the ring buffer's constants (`_RING`) from `perf_ring`, the event ids from `perf_ids`,
    on first use."""
    if name in ("PerfHwId", "PerfSwId"):
        from . import perf_ids

        value = getattr(perf_ids, name)
        globals()[name] = value
        return value
    if name in _RING:
        from . import perf_ring

        value = getattr(perf_ring, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
