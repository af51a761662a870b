"""Programs on perf events in the running kernel: cpu-clock sampling on every CPU, page faults of one
process, hardware counters where the VM has a PMU."""

from __future__ import annotations

import mmap
import os
import time

import pytest

from bpfkit.kernel.attach.perf_event import attach_perf_event, probe_hardware_events
from bpfkit.kernel.cpus import online_cpus
from bpfkit.kernel.maps import Map
from bpfkit.uapi.enums import LinkType, ProgType
from bpfkit.uapi.perf import PerfHwId, PerfSwId, PerfType

pytestmark = pytest.mark.kernel


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_cpu_clock_sampling_on_every_cpu(counts: Map, counter_program, no_new_links: None) -> None:
    prog = counter_program(ProgType.PERF_EVENT)
    with attach_perf_event(prog, PerfType.SOFTWARE, PerfSwId.CPU_CLOCK, sample_freq=1000) as group:
        assert len(group) == len(online_cpus())
        info = group[0].info()
        assert info.type == LinkType.PERF_EVENT and info.target["event_type"] == "event"
        # Linux 6.18 moves cpu-clock to a PMU of its own (the type the kernel reports is not 1): only the
        # config is checked here; test_page_faults_of_this_process checks the type.
        assert info.target["config"] == PerfSwId.CPU_CLOCK
        spin(0.3)  # keeps one CPU busy: ~300 samples at 1000 Hz
        assert counts[0] >= 100
    assert group.closed
    n = counts[0]  # samples keep coming until the last event is closed
    time.sleep(0.05)
    assert counts[0] == n  # no samples after detaching


def test_page_faults_of_this_process(counts: Map, counter_program, no_new_links: None) -> None:
    prog = counter_program(ProgType.PERF_EVENT, key=1)
    pages = 256
    with attach_perf_event(prog, PerfType.SOFTWARE, PerfSwId.PAGE_FAULTS, sample_period=1,
                           pid=os.getpid()) as group:
        assert len(group) == 1
        target = group[0].info().target
        assert (target["type"], target["config"]) == (PerfType.SOFTWARE, PerfSwId.PAGE_FAULTS)
        with mmap.mmap(-1, pages * mmap.PAGESIZE) as m:
            if hasattr(m, "madvise") and hasattr(mmap, "MADV_NOHUGEPAGE"):
                m.madvise(mmap.MADV_NOHUGEPAGE)
            for i in range(pages):
                m[i * mmap.PAGESIZE] = 1  # first touch of each page: one fault
    assert counts[1] >= pages


def test_sampling_needs_a_rate(counter_program) -> None:
    prog = counter_program(ProgType.PERF_EVENT)
    with pytest.raises(ValueError, match="sample_freq"):
        attach_perf_event(prog, PerfType.SOFTWARE, PerfSwId.CPU_CLOCK)


def test_hardware_cycles(counts: Map, counter_program, no_new_links: None) -> None:
    reason = probe_hardware_events()
    if reason is not None:
        pytest.skip(f"no hardware PMU here: {reason}")
    prog = counter_program(ProgType.PERF_EVENT, key=2)
    with attach_perf_event(prog, PerfType.HARDWARE, PerfHwId.CPU_CYCLES, sample_period=1_000_000):
        spin(0.2)
    assert counts[2] > 0
