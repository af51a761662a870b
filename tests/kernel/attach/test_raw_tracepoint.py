"""Raw tracepoints and tp_btf in the running kernel."""

from __future__ import annotations

import ctypes
import errno
import time

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel.attach.raw_tracepoint import attach_raw_tracepoint, attach_tp_btf, tp_btf_target_id
from bpfkit.kernel.maps import Map
from bpfkit.uapi.enums import AttachType, LinkType, ProgType

from .conftest import bpftool_link, live_link_ids  # type: ignore[import-not-found]

pytestmark = pytest.mark.kernel

_libc = ctypes.CDLL(None, use_errno=True)


def test_raw_tracepoint_counts_syscalls(counts: Map, counter_program, no_new_links: None) -> None:
    prog = counter_program(ProgType.RAW_TRACEPOINT)
    with attach_raw_tracepoint(prog, "sys_enter") as link:
        for _ in range(40):
            _libc.syscall(39)  # getpid(2)
        assert counts[0] >= 40
        info = link.info()
        assert info.type == LinkType.RAW_TRACEPOINT and info.target["tp_name"] == "sys_enter"
        assert bpftool_link(info.id) == {"id": info.id, "type": "raw_tracepoint", "prog_id": prog.id,
                                         "tp_name": "sys_enter"}
    before = counts[0]
    _libc.syscall(39)
    assert counts[0] == before


def test_unknown_raw_tracepoint(counter_program) -> None:
    prog = counter_program(ProgType.RAW_TRACEPOINT)
    with pytest.raises(KernelError, match=r"BPF_RAW_TRACEPOINT_OPEN.*no_such_tp"):
        attach_raw_tracepoint(prog, "no_such_tp")


def test_tp_btf(counts: Map, counter_program, no_new_links: None) -> None:
    """tp_btf loads even where fentry is refused (this VM): try it, skip only on the kernel's refusal."""
    try:
        prog = counter_program(ProgType.TRACING, attach=AttachType.TRACE_RAW_TP,
                               attach_btf_id=tp_btf_target_id("sys_enter"))
    except KernelError as e:
        if e.errno != errno.EPERM:
            raise
        pytest.skip(f"tp_btf programs are refused here: {e}")
    with attach_tp_btf(prog, "sys_enter") as link:
        for _ in range(10):
            _libc.syscall(39)
        assert counts[0] >= 10
        assert link.info().type in (LinkType.TRACING, LinkType.RAW_TRACEPOINT)
    before = counts[0]
    _libc.syscall(39)
    assert counts[0] == before


def test_pinned_link_outlives_its_owner(counts: Map, counter_program, no_new_links: None) -> None:
    """A pinned link stays attached after close(); unpinning (the last reference) detaches it."""
    import os

    prog = counter_program(ProgType.RAW_TRACEPOINT, key=1)
    path = f"/sys/fs/bpf/bpfkit_rawtp_{os.getpid()}"
    link = attach_raw_tracepoint(prog, "sys_enter")
    link_id = link.id
    link.pin(path)
    link.close()
    try:
        before = counts[1]
        _libc.syscall(39)
        assert counts[1] > before  # still attached through the pin
        assert bpftool_link(link_id)["tp_name"] == "sys_enter"
    finally:
        link.unpin()
    assert not os.path.exists(path)
    # The pin's reference goes when bpffs frees the inode, after an RCU grace period: wait for it.
    deadline = time.monotonic() + 10
    while link_id in live_link_ids() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert link_id not in live_link_ids()
    before = counts[1]
    _libc.syscall(39)
    assert counts[1] == before
