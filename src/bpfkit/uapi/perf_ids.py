"""The generic hardware and software event ids of perf_event_open(2) (include/uapi/linux/perf_event.h).
Hand-written.

Re-exported by `bpfkit.uapi.perf` (use them from there). A module of its own because attaching a program
to a tracepoint or a uprobe does not name them, and start-up pays for every class it creates.
"""

from __future__ import annotations

from ._cenum import CEnum, c_source

__all__ = ["PerfHwId", "PerfSwId"]


@c_source("perf_hw_id", "PERF_COUNT_HW_")
class PerfHwId(CEnum):
    """Generic hardware events (config of PERF_TYPE_HARDWARE).

    C: enum perf_hw_id, names PERF_COUNT_HW_*.
    """

    CPU_CYCLES = 0  # PERF_COUNT_HW_CPU_CYCLES
    INSTRUCTIONS = 1  # PERF_COUNT_HW_INSTRUCTIONS
    CACHE_REFERENCES = 2  # PERF_COUNT_HW_CACHE_REFERENCES
    CACHE_MISSES = 3  # PERF_COUNT_HW_CACHE_MISSES
    BRANCH_INSTRUCTIONS = 4  # PERF_COUNT_HW_BRANCH_INSTRUCTIONS
    BRANCH_MISSES = 5  # PERF_COUNT_HW_BRANCH_MISSES
    BUS_CYCLES = 6  # PERF_COUNT_HW_BUS_CYCLES
    STALLED_CYCLES_FRONTEND = 7  # PERF_COUNT_HW_STALLED_CYCLES_FRONTEND
    STALLED_CYCLES_BACKEND = 8  # PERF_COUNT_HW_STALLED_CYCLES_BACKEND
    REF_CPU_CYCLES = 9  # PERF_COUNT_HW_REF_CPU_CYCLES


@c_source("perf_sw_ids", "PERF_COUNT_SW_")
class PerfSwId(CEnum):
    """Software events (config of PERF_TYPE_SOFTWARE).

    C: enum perf_sw_ids, names PERF_COUNT_SW_*.
    """

    CPU_CLOCK = 0  # PERF_COUNT_SW_CPU_CLOCK
    TASK_CLOCK = 1  # PERF_COUNT_SW_TASK_CLOCK
    PAGE_FAULTS = 2  # PERF_COUNT_SW_PAGE_FAULTS
    CONTEXT_SWITCHES = 3  # PERF_COUNT_SW_CONTEXT_SWITCHES
    CPU_MIGRATIONS = 4  # PERF_COUNT_SW_CPU_MIGRATIONS
    PAGE_FAULTS_MIN = 5  # PERF_COUNT_SW_PAGE_FAULTS_MIN
    PAGE_FAULTS_MAJ = 6  # PERF_COUNT_SW_PAGE_FAULTS_MAJ
    ALIGNMENT_FAULTS = 7  # PERF_COUNT_SW_ALIGNMENT_FAULTS
    EMULATION_FAULTS = 8  # PERF_COUNT_SW_EMULATION_FAULTS
    DUMMY = 9  # PERF_COUNT_SW_DUMMY
    BPF_OUTPUT = 10  # PERF_COUNT_SW_BPF_OUTPUT
    CGROUP_SWITCHES = 11  # PERF_COUNT_SW_CGROUP_SWITCHES
