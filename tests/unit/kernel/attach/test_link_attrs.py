"""BPF_LINK_CREATE / RAW_TRACEPOINT_OPEN / PROG_ATTACH attrs of xdp, tcx, cgroup, netfilter, iter,
tracing and raw tracepoints, as the exact bytes given to the fake syscalls."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from pathlib import Path

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel.attach.base import AttachedLink
from bpfkit.kernel.attach.cgroup import attach_cgroup
from bpfkit.kernel.attach.iter import attach_iter, iter_info
from bpfkit.kernel.attach.netfilter import attach_netfilter
from bpfkit.kernel.attach.raw_tracepoint import attach_raw_tracepoint, attach_tp_btf
from bpfkit.kernel.attach.tcx import attach_tcx
from bpfkit.kernel.attach.tracing import attach_fentry, attach_lsm, attach_tracing
from bpfkit.kernel.attach.xdp import attach_xdp
from bpfkit.kernel.fake import FakeSyscalls
from bpfkit.uapi.attr import IterCreateAttr, LinkCreateAttr, ProgAttachAttr, RawTracepointOpenAttr
from bpfkit.uapi.enums import AttachType, Cmd
from bpfkit.uapi.net import NfHook, NfProto

from .conftest import FakeProgram  # type: ignore[import-not-found]


def last_link_create(fake: FakeSyscalls) -> LinkCreateAttr:
    return LinkCreateAttr.from_buffer_copy(fake.bpf_calls(Cmd.LINK_CREATE)[-1].attr)


@pytest.mark.parametrize(("mode", "flags"), [("auto", 0), ("generic", 2), ("driver", 4), ("offload", 8)])
def test_xdp(fake: FakeSyscalls, prog: FakeProgram, mode: str, flags: int) -> None:
    with attach_xdp(prog, 5, mode=mode) as link:  # type: ignore[arg-type]
        a = last_link_create(fake)
        assert (a.prog_fd, a.target_ifindex, a.attach_type, a.flags) == (prog.fileno(), 5, AttachType.XDP,
                                                                          flags)
        assert link.kind == "xdp" and link.target == "ifindex 5"
    with pytest.raises(ValueError, match="mode"):
        attach_xdp(prog, 5, mode="fast")  # type: ignore[arg-type]


def test_tcx_order_and_revision(fake: FakeSyscalls, prog: FakeProgram) -> None:
    with attach_tcx(prog, 3, "egress", expected_revision=7) as first:
        a = last_link_create(fake)
        assert (a.attach_type, a.target_ifindex, a.flags, a.tcx.expected_revision) == \
            (AttachType.TCX_EGRESS, 3, 0, 7)
        with attach_tcx(prog, 3, "egress", before=first):
            a = last_link_create(fake)
            assert a.flags == (1 << 3) | (1 << 13)  # BPF_F_BEFORE | BPF_F_LINK
            assert a.tcx.relative_fd == first.fileno()
        with attach_tcx(prog, 3, "ingress", after=prog):
            a = last_link_create(fake)
            assert (a.attach_type, a.flags, a.tcx.relative_fd) == (AttachType.TCX_INGRESS, 1 << 4,
                                                                   prog.fileno())
    with pytest.raises(ValueError, match="not both"):
        attach_tcx(prog, 3, before=prog, after=prog)


def test_cgroup_link_and_legacy(fake: FakeSyscalls, tmp_path: Path) -> None:
    prog = FakeProgram(fake, "sock", AttachType.CGROUP_INET_SOCK_CREATE)
    opened: list[int] = []
    with attach_cgroup(prog, tmp_path) as link:
        a = last_link_create(fake)
        assert a.attach_type == AttachType.CGROUP_INET_SOCK_CREATE and a.target_fd > 2
        opened.append(a.target_fd)
        assert link.kind == "cgroup_inet_sock_create"
    with pytest.raises(OSError):
        os.fstat(opened[0])  # the directory fd was closed after the call
    with attach_cgroup(prog, tmp_path, AttachType.CGROUP_INET_EGRESS, legacy=True) as legacy:
        (call,) = fake.bpf_calls(Cmd.PROG_ATTACH)
        pa = ProgAttachAttr.from_buffer_copy(call.attr)
        assert (pa.attach_bpf_fd, pa.attach_type, pa.attach_flags) == (prog.fileno(),
                                                                       AttachType.CGROUP_INET_EGRESS, 2)
        assert legacy.link_fd is None
    (call,) = fake.bpf_calls(Cmd.PROG_DETACH)
    pd = ProgAttachAttr.from_buffer_copy(call.attr)
    assert pd.attach_type == AttachType.CGROUP_INET_EGRESS and pd.attach_bpf_fd != prog.fileno()  # a dup
    assert fake.open_fds == {prog.fileno()}
    prog.close()


def test_netfilter(fake: FakeSyscalls, prog: FakeProgram) -> None:
    with attach_netfilter(prog, NfProto.IPV6, NfHook.FORWARD, -5, flags=1) as link:
        nf = last_link_create(fake).netfilter
        assert (nf.pf, nf.hooknum, nf.priority, nf.flags) == (10, 2, -5, 1)
        assert link.target == "ipv6 forward prio -5"
        assert last_link_create(fake).attach_type == AttachType.NETFILTER


def test_iter_info_layouts() -> None:
    assert iter_info() == b""
    assert iter_info(map=7) == struct.pack("<I", 7) + bytes(12)
    assert iter_info(pid=42) == struct.pack("<III", 0, 42, 0) + bytes(4)
    assert iter_info(cgroup_id=99, order=2) == struct.pack("<IIQ", 2, 0, 99)


def test_iter_link_and_read(fake: FakeSyscalls, prog: FakeProgram) -> None:
    seen: dict[str, bytes] = {}

    def record(attr: ctypes.Structure) -> int:
        a = LinkCreateAttr.from_buffer_copy(bytes(attr))
        seen["info"] = ctypes.string_at(a.iter_info, a.iter_info_len)
        return fake.new_fd()

    r, w = os.pipe()
    os.write(w, b"iterator output")
    os.close(w)
    fake.on(Cmd.LINK_CREATE, record)
    fake.on(Cmd.ITER_CREATE, lambda attr: r)
    try:
        with attach_iter(prog, target="bpf_map_elem", map=12) as it:
            assert seen["info"] == struct.pack("<I", 12) + bytes(12)
            assert last_link_create(fake).attach_type == AttachType.TRACE_ITER
            assert it.read() == b"iterator output"
            ic = IterCreateAttr.from_buffer_copy(fake.bpf_calls(Cmd.ITER_CREATE)[0].attr)
            assert ic.link_fd == it.fileno()
        assert ("close", r) in [(c.name, c.args[0]) for c in fake.calls if c.args]
    finally:
        os.close(r)  # the fake's close only records


def test_raw_tracepoint_and_tp_btf(fake: FakeSyscalls, prog: FakeProgram) -> None:
    names: list[bytes] = []

    def record(attr: ctypes.Structure) -> int:
        a = RawTracepointOpenAttr.from_buffer_copy(bytes(attr))
        names.append(ctypes.string_at(a.name) if a.name else b"")
        return fake.new_fd()

    fake.on(Cmd.RAW_TRACEPOINT_OPEN, record)
    with attach_raw_tracepoint(prog, "sched_switch", cookie=3) as link:
        a = RawTracepointOpenAttr.from_buffer_copy(fake.bpf_calls(Cmd.RAW_TRACEPOINT_OPEN)[0].attr)
        assert (a.prog_fd, a.cookie) == (prog.fileno(), 3) and link.kind == "raw_tracepoint"
    with attach_tp_btf(prog, "sched_switch"):
        pass
    assert names == [b"sched_switch", b""]
    with pytest.raises(ValueError, match="bare tracepoint name"):
        attach_raw_tracepoint(prog, "sched/sched_switch")


def test_fentry_link_and_fallback(fake: FakeSyscalls, prog: FakeProgram) -> None:
    with attach_fentry(prog, target="do_unlinkat", cookie=5) as link:
        a = last_link_create(fake)
        assert (a.attach_type, a.target_fd, a.tracing.cookie) == (AttachType.TRACE_FENTRY, 0, 5)
        assert link.kind == "fentry"
    fake.fail(Cmd.LINK_CREATE, errno.EINVAL)
    with attach_tracing(prog, AttachType.TRACE_FEXIT) as old:  # no cookie: falls back
        assert old.kind == "fexit"
        assert len(fake.bpf_calls(Cmd.RAW_TRACEPOINT_OPEN)) == 1
    with pytest.raises(KernelError):
        attach_fentry(prog, cookie=1)  # a cookie needs the link


def test_lsm_uses_program_attach_type(fake: FakeSyscalls) -> None:
    prog = FakeProgram(fake, "lsm", AttachType.LSM_MAC)
    with attach_lsm(prog, target="file_open") as link:
        assert last_link_create(fake).attach_type == AttachType.LSM_MAC and link.kind == "lsm"
    with attach_tracing(prog) as link2:
        assert isinstance(link2, AttachedLink)
    other = FakeProgram(fake, "xdp", AttachType.XDP)
    with pytest.raises(ValueError, match="tracing attach type"):
        attach_tracing(other)
    prog.close()
    other.close()
