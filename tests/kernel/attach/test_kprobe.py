"""Kprobes, kretprobes and kprobe_multi in the running kernel (skipped where there are no kprobes)."""

from __future__ import annotations

import ctypes

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel.attach.kprobe import (
    attach_kprobe,
    attach_kprobe_multi,
    probe_kprobes,
    syscall_function,
)
from bpfkit.kernel.maps import Map
from bpfkit.uapi.enums import AttachType, LinkType, ProgType

pytestmark = pytest.mark.kernel

_libc = ctypes.CDLL(None, use_errno=True)


@pytest.fixture(autouse=True)
def _need_kprobes() -> None:
    reason = probe_kprobes()
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.parametrize("retprobe", [False, True])
def test_kprobe_counts_getpid(counts: Map, counter_program, no_new_links: None, retprobe: bool) -> None:
    prog = counter_program(ProgType.KPROBE)
    func = syscall_function("getpid")
    with attach_kprobe(prog, func, retprobe=retprobe) as link:
        for _ in range(20):
            _libc.syscall(39)
        assert counts[0] >= 20
        info = link.info()
        assert info.type == LinkType.PERF_EVENT and info.target["func"] == func
    before = counts[0]
    _libc.syscall(39)
    assert counts[0] == before


def test_kprobe_multi(counts: Map, counter_program, no_new_links: None) -> None:
    prog = counter_program(ProgType.KPROBE, attach=AttachType.TRACE_KPROBE_MULTI)
    try:
        link = attach_kprobe_multi(prog, [syscall_function("getpid"), syscall_function("getppid")])
    except KernelError as e:
        pytest.skip(f"kprobe_multi is not available: {e}")
    with link:
        for _ in range(5):
            _libc.syscall(39)
            _libc.syscall(110)  # getppid
        assert counts[0] >= 10
        assert link.info().type == LinkType.KPROBE_MULTI
