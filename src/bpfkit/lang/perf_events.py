"""bpftrace's hardware perf events: names and aliases -> (PERF_COUNT_HW_* config, default sample period).

Pure data, shared by the analysis (which refuses unknown names) and the runtime (which opens the events).
The ids are those of enum perf_hw_id (include/uapi/linux/perf_event.h); the periods are bpftrace's.
"""

from __future__ import annotations

HARDWARE_EVENTS: dict[str, tuple[int, int]] = {
    "cpu-cycles": (0, 1_000_000), "cycles": (0, 1_000_000),
    "instructions": (1, 1_000_000),
    "cache-references": (2, 1_000_000),
    "cache-misses": (3, 1_000_000),
    "branch-instructions": (4, 100_000), "branches": (4, 100_000),
    "branch-misses": (5, 100_000),
    "bus-cycles": (6, 100_000),
    "frontend-stalls": (7, 1_000_000),
    "backend-stalls": (8, 1_000_000),
    "ref-cycles": (9, 1_000_000),
}
