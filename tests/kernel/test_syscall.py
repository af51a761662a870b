"""The real syscall layer: bpf(2) errors, perf_event_open(2) and ioctl, mmap of a map."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.maps import Map
from bpfkit.kernel.syscall import current
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.attr import MapCreateAttr, PerfEventAttr
from bpfkit.uapi.enums import Cmd, MapFlags, MapType

pytestmark = pytest.mark.kernel

# include/uapi/linux/perf_event.h
PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK = 1, 1
PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_DISABLE = 0x2400, 0x2401


def test_unknown_command_is_einval() -> None:
    with pytest.raises(KernelError) as ei:
        current().bpf(999, MapCreateAttr())
    assert ei.value.errno == errno.EINVAL and ei.value.syscall == "bpf(BPF_CMD_999)"


def test_nonzero_unknown_tail_is_e2big() -> None:
    """Bytes past the kernel's bpf_attr must be zero (bpf_check_uarg_tail_zero)."""
    buf = (ctypes.c_uint8 * 4096)()
    attr = MapCreateAttr.from_buffer(buf)
    attr.map_type, attr.key_size, attr.value_size, attr.max_entries = MapType.ARRAY, 4, 4, 1
    buf[4000] = 1
    with pytest.raises(KernelError) as ei:
        current().bpf(Cmd.MAP_CREATE, attr, 4096)
    assert ei.value.errno == errno.E2BIG


def test_perf_event_open_and_ioctl() -> None:
    attr = PerfEventAttr(type=PERF_TYPE_SOFTWARE, config=PERF_COUNT_SW_TASK_CLOCK, disabled=1)
    sys = current()
    with Fd(sys.perf_event_open(attr, 0, -1), "perf event") as fd:
        assert attr.size == ctypes.sizeof(PerfEventAttr)
        sys.ioctl(fd.fileno(), PERF_EVENT_IOC_ENABLE)
        sum(range(100_000))
        sys.ioctl(fd.fileno(), PERF_EVENT_IOC_DISABLE)
        count = int.from_bytes(os.read(fd.fileno(), 8), "little")
        assert count > 0
    with pytest.raises(KernelError) as ei:
        sys.ioctl(10_000, PERF_EVENT_IOC_ENABLE)
    assert ei.value.errno == errno.EBADF


def test_perf_event_open_error() -> None:
    attr = PerfEventAttr(type=1, config=0xFFFF)  # no such software counter
    with pytest.raises(KernelError) as ei:
        current().perf_event_open(attr, 0, -1)
    assert ei.value.syscall == "perf_event_open(type 1)" and ei.value.errno in (errno.ENOENT, errno.EINVAL)


def test_mmap_of_an_mmapable_array() -> None:
    with Map.create(MapSpec(MapType.ARRAY, 4, 8, 4, MapFlags.MMAPABLE), key=int, value=int) as m:
        mem = current().mmap(m.fileno(), mmap.PAGESIZE, writable=True)
        try:
            mem[8:16] = (12345).to_bytes(8, "little")
            assert m[1] == 12345
            m[2] = 99
            assert int.from_bytes(mem[16:24], "little") == 99
        finally:
            mem.close()
    with pytest.raises(KernelError, match="mmap"):
        current().mmap(10_000, mmap.PAGESIZE)
