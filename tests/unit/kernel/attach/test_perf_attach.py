"""perf_event_open attrs and the link/ioctl attach of tracepoints, uprobes, kprobes and perf events,
checked as the exact bytes the fake syscalls were given."""

from __future__ import annotations

import ctypes
import errno
from pathlib import Path

import pytest

from bpfkit.errors import KernelError, NotSupportedError
from bpfkit.kernel.attach import kprobe as kprobe_mod
from bpfkit.kernel.attach.kprobe import attach_kprobe, attach_kprobe_multi, syscall_function
from bpfkit.kernel.attach.perf_event import PERF_FLAG_FD_CLOEXEC, attach_perf_event
from bpfkit.kernel.attach.tracepoint import attach_tracepoint
from bpfkit.kernel.attach.uprobe import attach_uprobe, attach_uprobe_multi
from bpfkit.kernel.fake import FakeSyscalls
from bpfkit.uapi.attr import LinkCreateAttr, PerfEventAttr
from bpfkit.uapi.enums import AttachType, Cmd
from bpfkit.uapi.perf import PerfEventIoc, PerfSwId, PerfType


def perf_calls(fake: FakeSyscalls) -> list[tuple[PerfEventAttr, tuple[object, ...]]]:
    return [(PerfEventAttr.from_buffer_copy(c.attr), c.args) for c in fake.calls
            if c.name == "perf_event_open"]


@pytest.fixture
def tracefs_root(tmp_path: Path) -> Path:
    d = tmp_path / "events" / "syscalls" / "sys_enter_getpid"
    d.mkdir(parents=True)
    (d / "id").write_text("321\n")
    return tmp_path


def test_tracepoint_attr_and_perf_link(fake: FakeSyscalls, prog, tracefs_root: Path) -> None:
    with attach_tracepoint(prog, "syscalls:sys_enter_getpid", cookie=9, root=tracefs_root) as link:
        ((attr, args),) = perf_calls(fake)
        assert (attr.type, attr.config, attr.sample_period, attr.size) == (PerfType.TRACEPOINT, 321, 1, 0)
        assert args == (-1, 0, -1, PERF_FLAG_FD_CLOEXEC)  # every task, from CPU 0's event
        (call,) = fake.bpf_calls(Cmd.LINK_CREATE)
        la = LinkCreateAttr.from_buffer_copy(call.attr)
        perf_fd = link.perf_fds[0].fileno()
        assert (la.prog_fd, la.target_fd, la.attach_type) == (prog.fileno(), perf_fd, AttachType.PERF_EVENT)
        assert la.perf_event.bpf_cookie == 9
        assert link.kind == "tracepoint" and link.target == "syscalls:sys_enter_getpid"
        link_fd = link.fileno()
    closes = [c.args[0] for c in fake.calls if c.name == "close"]
    assert closes == [link_fd, perf_fd]


def test_ioctl_fallback_without_perf_links(fake: FakeSyscalls, prog, tracefs_root: Path) -> None:
    fake.fail(Cmd.LINK_CREATE, errno.EINVAL)
    with attach_tracepoint(prog, "syscalls", "sys_enter_getpid", root=tracefs_root) as link:
        assert link.link_fd is None
        perf_fd = link.fileno()
        ioctls = [c.args for c in fake.calls if c.name == "ioctl"]
        assert ioctls == [(perf_fd, PerfEventIoc.SET_BPF, prog.fileno()), (perf_fd, PerfEventIoc.ENABLE, 0)]


def test_cookie_needs_the_link_and_perf_fd_is_released(fake: FakeSyscalls, prog, tracefs_root: Path) -> None:
    fake.fail(Cmd.LINK_CREATE, errno.EINVAL)
    with pytest.raises(KernelError, match="BPF_LINK_CREATE"):
        attach_tracepoint(prog, "syscalls:sys_enter_getpid", cookie=1, root=tracefs_root)
    assert [c.name for c in fake.calls].count("perf_event_open") == 1
    assert fake.open_fds == {prog.fileno()}  # the perf event fd was closed


def test_perf_event_per_cpu(fake: FakeSyscalls, prog) -> None:
    with attach_perf_event(prog, PerfType.SOFTWARE, PerfSwId.CPU_CLOCK, sample_freq=99, cpus=[0, 1, 3]) as g:
        assert len(g) == 3
        calls = perf_calls(fake)
        assert [args[1] for _, args in calls] == [0, 1, 3]
        for attr, args in calls:
            assert (attr.type, attr.config, attr.freq, attr.sample_freq, args[0]) == (1, 0, 1, 99, -1)
        assert len(fake.bpf_calls(Cmd.LINK_CREATE)) == 3


def test_perf_event_for_one_task(fake: FakeSyscalls, prog) -> None:
    with attach_perf_event(prog, PerfType.SOFTWARE, PerfSwId.PAGE_FAULTS, sample_period=10, pid=42):
        ((attr, args),) = perf_calls(fake)
        assert (attr.freq, attr.sample_period, args[0], args[1]) == (0, 10, 42, -1)


def test_perf_event_failure_closes_the_ones_made(fake: FakeSyscalls, prog) -> None:
    n = {"calls": 0}

    def second_fails(attr: ctypes.Structure) -> int:
        n["calls"] += 1
        return fake.new_fd() if n["calls"] == 1 else -errno.ENOENT

    fake.on(-1, second_fails)
    with pytest.raises(KernelError, match="software:cpu_clock on cpu 1"):
        attach_perf_event(prog, PerfType.SOFTWARE, PerfSwId.CPU_CLOCK, sample_freq=10, cpus=[0, 1])
    assert fake.open_fds == {prog.fileno()}


def test_uprobe_attr(fake: FakeSyscalls, prog, event_sources: Path, tmp_path: Path) -> None:
    target = tmp_path / "bin"
    target.write_bytes(b"\x7fELF")
    seen: list[tuple[bytes, int, int]] = []

    def record(attr: ctypes.Structure) -> int:
        a = PerfEventAttr.from_buffer_copy(bytes(attr))
        seen.append((ctypes.string_at(a.uprobe_path), a.probe_offset, a.config))
        return fake.new_fd()

    fake.on(-1, record)
    with attach_uprobe(prog, str(target), offset=0x1234, retprobe=True, ref_ctr_offset=0x40, pid=77) as u:
        ((attr, args),) = perf_calls(fake)
        assert attr.type == 8 and args[:2] == (77, -1)
        assert seen == [(str(target).encode(), 0x1234, 1 | (0x40 << 32))]
        assert u.kind == "uretprobe"
    with pytest.raises(ValueError, match="exactly one"):
        attach_uprobe(prog, str(target), "f", offset=1)


def test_uprobe_multi_arrays(fake: FakeSyscalls, prog, tmp_path: Path) -> None:
    target = tmp_path / "lib.so"
    target.write_bytes(b"\x7fELF")
    seen: dict[str, object] = {}

    def record(attr: ctypes.Structure) -> int:
        um = LinkCreateAttr.from_buffer_copy(bytes(attr)).uprobe_multi
        seen["path"] = ctypes.string_at(um.path)
        seen["offsets"] = list((ctypes.c_uint64 * um.cnt).from_address(um.offsets))
        seen["cookies"] = list((ctypes.c_uint64 * um.cnt).from_address(um.cookies))
        seen.update(refs=um.ref_ctr_offsets, flags=um.flags, pid=um.pid, cnt=um.cnt)
        return fake.new_fd()

    fake.on(Cmd.LINK_CREATE, record)
    with attach_uprobe_multi(prog, str(target), offsets=[0x10, 0x20], cookies=[5, 6], retprobe=True, pid=9):
        la = LinkCreateAttr.from_buffer_copy(fake.bpf_calls(Cmd.LINK_CREATE)[0].attr)
        assert la.attach_type == AttachType.TRACE_UPROBE_MULTI
    assert seen == {"path": str(target).encode(), "offsets": [0x10, 0x20], "cookies": [5, 6], "refs": 0,
                    "flags": 1, "pid": 9, "cnt": 2}
    with pytest.raises(ValueError, match="1 cookies for 2 places"):
        attach_uprobe_multi(prog, str(target), offsets=[1, 2], cookies=[1])


def test_kprobe_attr(fake: FakeSyscalls, prog, event_sources: Path) -> None:
    names: list[bytes] = []

    def record(a: ctypes.Structure) -> int:
        func = PerfEventAttr.from_buffer_copy(bytes(a)).kprobe_func
        names.append(ctypes.string_at(func) if func else b"")
        return fake.new_fd()

    fake.on(-1, record)
    with attach_kprobe(prog, "do_sys_openat2", 8, retprobe=True) as k:
        ((attr, args),) = perf_calls(fake)
        assert (attr.type, attr.config, attr.probe_offset, args[:2]) == (7, 1, 8, (-1, 0))
        assert names == [b"do_sys_openat2"] and k.kind == "kretprobe" and k.target == "do_sys_openat2+0x8"
    with attach_kprobe(prog, address=0xFFFF0000):
        attr, _ = perf_calls(fake)[1]
        assert (attr.kprobe_func, attr.kprobe_addr, names[1]) == (0, 0xFFFF0000, b"")
    with pytest.raises(ValueError, match="not a kernel function name"):
        attach_kprobe(prog, "bad name")


def test_kprobe_without_kprobes_is_not_supported(fake: FakeSyscalls, prog, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bpfkit.kernel.attach.perf_event.EVENT_SOURCES", tmp_path)
    monkeypatch.setattr(kprobe_mod.tracefs, "find_tracefs", lambda: None)
    with pytest.raises(NotSupportedError, match="CONFIG_KPROBES"):
        attach_kprobe(prog, "do_sys_openat2")


def test_kprobe_multi(fake: FakeSyscalls, prog) -> None:
    seen: dict[str, object] = {}

    def record(attr: ctypes.Structure) -> int:
        km = LinkCreateAttr.from_buffer_copy(bytes(attr)).kprobe_multi
        ptrs = (ctypes.c_uint64 * km.cnt).from_address(km.syms)
        seen.update(syms=[ctypes.string_at(p) for p in ptrs], flags=km.flags, addrs=km.addrs)
        return fake.new_fd()

    fake.on(Cmd.LINK_CREATE, record)
    with attach_kprobe_multi(prog, ["a_func", "b_func"], retprobe=True) as k:
        assert k.kind == "kretprobe_multi"
    assert seen == {"syms": [b"a_func", b"b_func"], "flags": 1, "addrs": 0}
    with pytest.raises(ValueError):
        attach_kprobe_multi(prog)
    assert syscall_function("getpid", "x86_64") == "__x64_sys_getpid"
    assert syscall_function("getpid", "aarch64") == "__arm64_sys_getpid"

