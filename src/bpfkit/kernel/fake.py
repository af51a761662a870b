"""`FakeSyscalls`: a `Syscalls` for unit tests that records every call and the exact attr bytes.

Handlers registered with `on(cmd, handler)` play the kernel: they read the attr (and the user memory
it points to, with `read_user`), write results (`write_user`, or attr fields) and return the result or
``-errno``. Without a handler a command that makes an object returns a fresh fake fd, others return 0.
"""

from __future__ import annotations

import ctypes
import mmap as _mmap
from collections.abc import Callable

from bpfkit._records import field, record
from bpfkit.kernel.diagnose import bpf_error, mount_error, perf_event_error
from bpfkit.kernel.syscall import Syscalls, cmd_name
from bpfkit.uapi.attr import PerfEventAttr
from bpfkit.uapi.enums import Cmd

Handler = Callable[[ctypes.Structure], int]

# Commands whose result is a new fd (kernel/bpf/syscall.c).
FD_COMMANDS = frozenset({
    Cmd.MAP_CREATE, Cmd.PROG_LOAD, Cmd.OBJ_GET, Cmd.PROG_GET_FD_BY_ID, Cmd.MAP_GET_FD_BY_ID,
    Cmd.RAW_TRACEPOINT_OPEN, Cmd.BTF_LOAD, Cmd.BTF_GET_FD_BY_ID, Cmd.LINK_CREATE, Cmd.LINK_GET_FD_BY_ID,
    Cmd.ENABLE_STATS, Cmd.ITER_CREATE, Cmd.TOKEN_CREATE,
})


@record
class Call:
    """One recorded call: `name` (``bpf``, ``close``...), the bpf `cmd`, the attr bytes as passed in."""

    name: str
    cmd: int | None = None
    attr: bytes = b""
    args: tuple[object, ...] = ()

    @property
    def cmd_name(self) -> str:
        return cmd_name(self.cmd) if self.cmd is not None else self.name


def read_user(address: int, size: int) -> bytes:
    """The `size` bytes of user memory at `address` (an attr pointer field)."""
    return ctypes.string_at(address, size) if size else b""


def write_user(address: int, data: bytes) -> None:
    """Write `data` to user memory at `address` (as the kernel's copy_to_user would)."""
    ctypes.memmove(address, data, len(data))


@record(frozen=False)
class FakeSyscalls(Syscalls):
    """Records calls; answers with registered handlers. `open_fds` are the fake fds not yet closed."""

    calls: list[Call] = field(default_factory=list)
    handlers: dict[int, Handler] = field(default_factory=dict)
    open_fds: set[int] = field(default_factory=set)
    next_fd: int = 1000

    def on(self, cmd: int, handler: Handler) -> None:
        """Answer bpf(`cmd`) with `handler(attr)`: its result, or an error if it returns ``-errno``."""
        self.handlers[cmd] = handler

    def fail(self, cmd: int, err: int) -> None:
        """Make bpf(`cmd`) fail with `err`."""
        self.handlers[cmd] = lambda _attr: -err

    def new_fd(self) -> int:
        fd = self.next_fd
        self.next_fd += 1
        self.open_fds.add(fd)
        return fd

    def bpf_calls(self, cmd: int | None = None) -> list[Call]:
        """The recorded bpf calls (of `cmd` only, when given)."""
        return [c for c in self.calls if c.name == "bpf" and (cmd is None or c.cmd == cmd)]

    def bpf(self, cmd: int, attr: ctypes.Structure, size: int | None = None) -> int:
        nbytes = ctypes.sizeof(attr) if size is None else size
        self.calls.append(Call("bpf", int(cmd), bytes(attr)[:nbytes], (nbytes,)))
        handler = self.handlers.get(cmd)
        if handler is None:
            return self.new_fd() if cmd in FD_COMMANDS else 0
        ret = handler(attr)
        if ret < 0:
            raise bpf_error(cmd, -ret, attr)
        if cmd in FD_COMMANDS:
            self.open_fds.add(ret)
        return ret

    def perf_event_open(self, attr: PerfEventAttr, pid: int, cpu: int, group_fd: int = -1,
                        flags: int = 0) -> int:
        self.calls.append(Call("perf_event_open", None, bytes(attr), (pid, cpu, group_fd, flags)))
        handler = self.handlers.get(-1)
        if handler is not None:
            ret = handler(attr)
            if ret < 0:
                raise perf_event_error(-ret, attr)
            return ret
        return self.new_fd()

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        self.calls.append(Call("ioctl", None, b"", (fd, request, arg)))
        return 0

    def close(self, fd: int) -> None:
        self.calls.append(Call("close", None, b"", (fd,)))
        self.open_fds.discard(fd)

    def dup(self, fd: int) -> int:
        self.calls.append(Call("dup", None, b"", (fd,)))
        return self.new_fd()

    def mount(self, source: str, target: str, fstype: str, flags: int = 0, data: str | None = None) -> None:
        self.calls.append(Call("mount", None, b"", (source, target, fstype, flags, data)))
        handler = self.handlers.get(-2)
        if handler is not None and (err := -handler(PerfEventAttr())) > 0:
            raise mount_error(err, fstype, target)

    def mmap(self, fd: int, length: int, *, writable: bool = False, offset: int = 0) -> _mmap.mmap:
        self.calls.append(Call("mmap", None, b"", (fd, length, writable, offset)))
        return _mmap.mmap(-1, length)
