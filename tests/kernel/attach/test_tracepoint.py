"""Tracepoint attachments in the running kernel: a counter moves with each getpid(2)."""

from __future__ import annotations

import ctypes
import os

import pytest

from bpfkit.kernel.attach.base import AttachedLink, live_links
from bpfkit.kernel.attach.tracepoint import attach_tracepoint, split_tracepoint
from bpfkit.kernel.maps import Map
from bpfkit.uapi.enums import LinkType, ProgType

from .conftest import bpftool_link  # type: ignore[import-not-found]

pytestmark = pytest.mark.kernel

_libc = ctypes.CDLL(None, use_errno=True)


def getpid_syscall() -> None:
    """getpid(2) itself (syscall 39 on x86-64): no C library cache in between."""
    _libc.syscall(39)


def test_split_tracepoint() -> None:
    assert split_tracepoint("syscalls:sys_enter_getpid") == ("syscalls", "sys_enter_getpid")
    assert split_tracepoint("sched/sched_switch") == ("sched", "sched_switch")
    with pytest.raises(ValueError, match="category:name"):
        split_tracepoint("nothing")


def test_tracepoint_counts_getpid(counts: Map, counter_program, no_new_links: None) -> None:
    prog = counter_program(ProgType.TRACEPOINT)
    with attach_tracepoint(prog, "syscalls", "sys_enter_getpid") as link:
        assert link in live_links()
        for _ in range(50):
            getpid_syscall()
        for _ in range(10):
            os.getpid()  # CPython calls the C library, which does not cache the pid (glibc >= 2.25)
        n = counts[0]
        assert n >= 60
        info = link.info()
        assert info.type == LinkType.PERF_EVENT
        assert info.target["tracepoint"] == "sys_enter_getpid"
        assert info.prog_id == prog.id
        tool = bpftool_link(info.id)
        assert (tool["type"], tool["prog_id"]) == ("perf_event", prog.id)
    assert link.closed and link not in live_links()
    before = counts[0]
    for _ in range(20):
        getpid_syscall()
    assert counts[0] == before  # detached: the counter stands still


def test_tracepoint_ioctl_fallback(counts: Map, counter_program) -> None:
    """Without a perf_event link (kernels before 5.15) the program goes on with PERF_EVENT_IOC_SET_BPF."""
    from bpfkit.kernel import tracefs
    from bpfkit.kernel.attach.perf_event import attach_perf_fd, event_attr, open_perf_event
    from bpfkit.uapi.perf import PerfType

    prog = counter_program(ProgType.TRACEPOINT, key=1)
    attr = event_attr(PerfType.TRACEPOINT, tracefs.tracepoint_id("syscalls", "sys_enter_getpid"),
                      sample_period=1)
    perf = open_perf_event(attr, what="tracepoint")
    with attach_perf_fd(prog, perf, kind="tracepoint", target="syscalls:sys_enter_getpid",
                        use_link=False) as link:
        assert link.link_fd is None
        for _ in range(30):
            getpid_syscall()
        assert counts[1] >= 30
    assert perf.closed


def test_unknown_tracepoint_names_it(counter_program) -> None:
    from bpfkit.errors import KernelError

    prog = counter_program(ProgType.TRACEPOINT)
    with pytest.raises(KernelError, match="no tracepoint syscalls:no_such_event"):
        attach_tracepoint(prog, "syscalls:no_such_event")


def test_garbage_collected_link_detaches_and_warns(counts: Map, counter_program,
                                                   no_new_links: None) -> None:
    prog = counter_program(ProgType.TRACEPOINT, key=2)
    link = attach_tracepoint(prog, "syscalls:sys_enter_getpid")
    getpid_syscall()
    assert counts[2] >= 1
    unclosed = AttachedLink.unclosed
    with pytest.warns(ResourceWarning, match="never closed"):
        del link
        import gc

        gc.collect()
    assert AttachedLink.unclosed == unclosed + 1
    before = counts[2]
    getpid_syscall()
    assert counts[2] == before
