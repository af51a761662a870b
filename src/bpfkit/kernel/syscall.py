"""The one way in to the kernel: bpf(2), perf_event_open(2), ioctl(2), close, dup, mount, mmap.

Every kernel object in bpfkit is made and used through a `Syscalls` instance. `LinuxSyscalls` calls the
C library with ctypes; unit tests install a fake (`bpfkit.kernel.fake.FakeSyscalls`) with `override()`
and look at the exact attr bytes each call was given. Failures raise `KernelError` naming the syscall
(``bpf(BPF_MAP_CREATE)``), the errno and, where known, what to change (see `bpfkit.kernel.diagnose`).
"""

from __future__ import annotations

import abc
import ctypes
import errno as _errno
import mmap as _mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager

from bpfkit.errors import KernelError
from bpfkit.kernel.diagnose import bpf_error, mount_error, perf_event_error
from bpfkit.uapi.attr import PerfEventAttr
from bpfkit.uapi.enums import Cmd

# System call numbers (arch/x86/entry/syscalls/syscall_64.tbl, include/uapi/asm-generic/unistd.h).
SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {"bpf": 321, "perf_event_open": 298},
    "aarch64": {"bpf": 280, "perf_event_open": 241},
}

# How often a command interrupted by a signal (EINTR), or a program load that the kernel asks to
# retry (EAGAIN, kernel/bpf/verifier.c under memory pressure), is tried again.
_RETRIES = 5


def cmd_name(cmd: int) -> str:
    """The C name of bpf command `cmd` (``BPF_MAP_CREATE``), or ``BPF_CMD_<n>``."""
    try:
        return Cmd(cmd).c_name
    except ValueError:
        return f"BPF_CMD_{cmd}"


class Syscalls(abc.ABC):
    """The system calls bpfkit makes; replace it with a fake in unit tests (see `override`)."""

    @abc.abstractmethod
    def bpf(self, cmd: int, attr: ctypes.Structure, size: int | None = None) -> int:
        """bpf(cmd, &attr, size): returns the kernel's non-negative result (often a new fd).

        `size` defaults to ``sizeof(attr)``. The kernel may write results back into `attr`.
        """

    @abc.abstractmethod
    def perf_event_open(self, attr: PerfEventAttr, pid: int, cpu: int, group_fd: int = -1,
                        flags: int = 0) -> int:
        """perf_event_open(2): returns a new fd."""

    @abc.abstractmethod
    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        """ioctl(fd, request, arg) with an integer (or pointer-as-integer) argument."""

    @abc.abstractmethod
    def close(self, fd: int) -> None:
        """close(fd)."""

    @abc.abstractmethod
    def dup(self, fd: int) -> int:
        """A new close-on-exec fd for the same open file."""

    @abc.abstractmethod
    def mount(self, source: str, target: str, fstype: str, flags: int = 0, data: str | None = None) -> None:
        """mount(2)."""

    @abc.abstractmethod
    def mmap(self, fd: int, length: int, *, writable: bool = False, offset: int = 0) -> _mmap.mmap:
        """A shared mapping of `length` bytes of `fd` from `offset`."""


class LinuxSyscalls(Syscalls):
    """The real system calls, through the C library's `syscall(2)` wrapper and ctypes."""

    def __init__(self, machine: str | None = None) -> None:
        machine = machine or os.uname().machine  # platform.machine() costs ~1 ms to import
        numbers = SYSCALL_NUMBERS.get(machine)
        if numbers is None:
            raise KernelError("bpf", _errno.ENOSYS, f"bpfkit does not know bpf(2)'s number on {machine}")
        self._nr_bpf = numbers["bpf"]
        self._nr_perf = numbers["perf_event_open"]
        libc = ctypes.CDLL(None, use_errno=True)
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        self._ioctl = libc.ioctl
        self._ioctl.restype = ctypes.c_int
        self._ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong]
        self._mount = libc.mount
        self._mount.restype = ctypes.c_int
        self._mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                                ctypes.c_char_p]

    def bpf(self, cmd: int, attr: ctypes.Structure, size: int | None = None) -> int:
        nbytes = ctypes.sizeof(attr) if size is None else size
        ptr = ctypes.c_void_p(ctypes.addressof(attr))
        for _ in range(_RETRIES):
            ret = self._syscall(ctypes.c_long(self._nr_bpf), ctypes.c_long(cmd), ptr, ctypes.c_long(nbytes))
            if ret >= 0:
                return int(ret)
            err = ctypes.get_errno()
            if err == _errno.EINTR or (err == _errno.EAGAIN and cmd == Cmd.PROG_LOAD):
                continue
            break
        raise bpf_error(cmd, err, attr)

    def perf_event_open(self, attr: PerfEventAttr, pid: int, cpu: int, group_fd: int = -1,
                        flags: int = 0) -> int:
        if attr.size == 0:
            attr.size = ctypes.sizeof(attr)
        ret = self._syscall(ctypes.c_long(self._nr_perf), ctypes.c_void_p(ctypes.addressof(attr)),
                            ctypes.c_long(pid), ctypes.c_long(cpu), ctypes.c_long(group_fd),
                            ctypes.c_ulong(flags))
        if ret < 0:
            raise perf_event_error(ctypes.get_errno(), attr)
        return int(ret)

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        ret = self._ioctl(fd, request, arg)
        if ret < 0:
            err = ctypes.get_errno()
            raise KernelError(f"ioctl(fd {fd}, {request:#x})", err)
        return int(ret)

    def close(self, fd: int) -> None:
        try:
            os.close(fd)
        except OSError as e:
            raise KernelError(f"close({fd})", e.errno or _errno.EBADF) from None

    def dup(self, fd: int) -> int:
        try:
            return os.dup(fd)
        except OSError as e:
            raise KernelError(f"dup({fd})", e.errno or _errno.EBADF) from None

    def mount(self, source: str, target: str, fstype: str, flags: int = 0, data: str | None = None) -> None:
        ret = self._mount(source.encode(), target.encode(), fstype.encode(), flags,
                          data.encode() if data is not None else None)
        if ret < 0:
            raise mount_error(ctypes.get_errno(), fstype, target)

    def mmap(self, fd: int, length: int, *, writable: bool = False, offset: int = 0) -> _mmap.mmap:
        prot = _mmap.PROT_READ | (_mmap.PROT_WRITE if writable else 0)
        try:
            return _mmap.mmap(fd, length, flags=_mmap.MAP_SHARED, prot=prot, offset=offset)
        except OSError as e:
            what = f"mmap(fd {fd}, {length} bytes, offset {offset})"
            raise KernelError(what, e.errno or _errno.EINVAL) from None


_current: Syscalls | None = None


def current() -> Syscalls:
    """The `Syscalls` in use: the real ones unless a test installed a fake with `override`."""
    global _current
    if _current is None:
        _current = LinuxSyscalls()
    return _current


@contextmanager
def override(syscalls: Syscalls) -> Iterator[Syscalls]:
    """Use `syscalls` for every kernel call made inside the block (unit tests install fakes)."""
    global _current
    saved = _current
    _current = syscalls
    try:
        yield syscalls
    finally:
        _current = saved
