"""`Link` and `read_info` against the fake: the two-call name protocol and each link type's union part.

Offsets are struct bpf_link_info's (include/uapi/linux/bpf.h): type u32 @0, id u32 @4, prog_id u32 @8,
then the union @16 (8-aligned).
"""

from __future__ import annotations

import ctypes
import errno
import struct
from collections.abc import Callable, Iterator

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel.fake import FakeSyscalls, read_user, write_user
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.links import Link, read_info
from bpfkit.kernel.syscall import override
from bpfkit.uapi.attr import LinkDetachAttr, ObjInfoAttr
from bpfkit.uapi.enums import AttachType, Cmd, LinkType, PerfEventType

HEAD = struct.Struct("<III4x")


@pytest.fixture
def fake() -> Iterator[FakeSyscalls]:
    f = FakeSyscalls()
    with override(f):
        yield f
    assert not f.open_fds


def _kernel(fake: FakeSyscalls, make: Callable[[bytes], bytes]) -> list[bytes]:
    """Answer OBJ_GET_INFO_BY_FD with make(what the caller passed in); returns the inputs seen."""
    seen: list[bytes] = []

    def info(a: ctypes.Structure) -> int:
        assert isinstance(a, ObjInfoAttr) and a.info_len == 64
        given = read_user(a.info, a.info_len)
        seen.append(given)
        write_user(a.info, make(given))
        return 0

    fake.on(Cmd.OBJ_GET_INFO_BY_FD, info)
    return seen


def test_raw_tracepoint_name_is_read_with_a_second_call(fake: FakeSyscalls) -> None:
    def make(given: bytes) -> bytes:
        ptr, size = struct.unpack_from("<QI", given, 16)
        if ptr:
            assert size >= 10
            write_user(ptr, b"sched_switch\0")
        return HEAD.pack(LinkType.RAW_TRACEPOINT, 12, 34) + struct.pack("<QI", ptr, 13).ljust(48, b"\0")

    seen = _kernel(fake, make)
    with Fd(fake.new_fd(), "link", fake) as fd:
        info = read_info(fd)
    assert (info.id, info.type, info.prog_id, info.target) == (12, LinkType.RAW_TRACEPOINT, 34,
                                                              {"tp_name": "sched_switch"})
    assert info.type_name == "raw_tracepoint"
    assert len(seen) == 2 and struct.unpack_from("<I", seen[1])[0] == LinkType.RAW_TRACEPOINT


def test_union_parts_without_names_take_one_call(fake: FakeSyscalls) -> None:
    cases: list[tuple[bytes, dict[str, object]]] = [
        (HEAD.pack(LinkType.TCX, 1, 2) + struct.pack("<II", 7, AttachType.TCX_EGRESS),
         {"ifindex": 7, "attach_type": "tcx_egress"}),
        (HEAD.pack(LinkType.CGROUP, 1, 2) + struct.pack("<QI", 99, AttachType.CGROUP_INET_INGRESS),
         {"cgroup_id": 99, "attach_type": "cgroup_inet_ingress"}),
        (HEAD.pack(LinkType.XDP, 1, 2) + struct.pack("<I", 5), {"ifindex": 5}),
        (HEAD.pack(LinkType.NETFILTER, 1, 2) + struct.pack("<IIiI", 2, 1, -100, 0),
         {"pf": 2, "hook": 1, "prio": -100, "flags": 0}),
        (HEAD.pack(LinkType.TRACING, 1, 2) + struct.pack("<IIIIQ", AttachType.TRACE_FENTRY, 1, 500, 0, 0),
         {"attach_type": "trace_fentry", "target_obj_id": 1, "target_btf_id": 500}),
        (HEAD.pack(99, 1, 2), {}),
    ]
    for raw, target in cases:
        seen = _kernel(fake, lambda _g, raw=raw: raw.ljust(64, b"\0"))  # type: ignore[misc]
        with Fd(fake.new_fd(), "link", fake) as fd:
            info = read_info(fd)
        assert info.target == target and len(seen) == 1


def test_perf_event_tracepoint(fake: FakeSyscalls) -> None:
    def make(given: bytes) -> bytes:
        ptr, size = struct.unpack_from("<QI", given, 24)
        if ptr:
            write_user(ptr, b"syscalls:sys_enter_openat\0")
        union = struct.pack("<I4xQI4xQ", PerfEventType.TRACEPOINT, ptr, size, 77)
        return HEAD.pack(LinkType.PERF_EVENT, 3, 4) + union

    seen = _kernel(fake, make)
    with Fd(fake.new_fd(), "link", fake) as fd:
        info = read_info(fd)
    assert info.target == {"event_type": "tracepoint", "tracepoint": "syscalls:sys_enter_openat",
                           "cookie": 77}
    assert struct.unpack_from("<I", seen[1], 16)[0] == PerfEventType.TRACEPOINT


def test_detach_passes_the_fd_and_errors_name_the_link(fake: FakeSyscalls) -> None:
    got: list[int] = []

    def detach(a: ctypes.Structure) -> int:
        assert isinstance(a, LinkDetachAttr)
        got.append(a.link_fd)
        return -errno.EOPNOTSUPP if len(got) > 1 else 0

    fake.on(Cmd.LINK_DETACH, detach)
    with Link.from_fd(Fd(fake.new_fd(), "link 'x'", fake)) as link:
        link.detach()
        assert got == [link.fileno()]
        with pytest.raises(KernelError, match=r"BPF_LINK_DETACH.*link 'x'"):
            link.detach()
    assert link.closed
    link.close()
