"""Socket filters: a SOCKET_FILTER program on one socket (setsockopt SO_ATTACH_BPF), deciding how much of
each packet the socket receives (0 drops it), or a reuseport program choosing the socket of a group.

There is no link: the filter belongs to the socket and goes with it. The attachment detaches it
(SO_DETACH_BPF) on close if the socket is still open, and never closes the socket itself.
Minimum kernel: 3.19 (SO_ATTACH_BPF), 4.5 (reuseport).
"""

from __future__ import annotations

import errno as _errno
import socket
from typing import Any

from bpfkit.errors import KernelError
from bpfkit.kernel.attach.base import AttachedLink, fileno_of, program_label
from bpfkit.uapi.net import SockOpt


def _setsockopt(sock: socket.socket, opt: SockOpt, value: int, what: str) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, int(opt), value)
    except OSError as e:
        raise KernelError(f"setsockopt({opt.c_name})", e.errno or _errno.EINVAL, what) from None


def attach_socket_filter(program: Any, sock: socket.socket) -> AttachedLink:
    """Attach a SOCKET_FILTER `program` to `sock` (a Python socket)."""
    what = f"{program_label(program)} on socket fd {sock.fileno()}"
    _setsockopt(sock, SockOpt.ATTACH_BPF, fileno_of(program), what)

    def detach() -> None:
        if sock.fileno() >= 0:
            try:
                sock.setsockopt(socket.SOL_SOCKET, int(SockOpt.DETACH_FILTER), 0)
            except OSError as e:
                if e.errno != _errno.ENOENT:  # nothing attached any more
                    raise KernelError("setsockopt(SO_DETACH_BPF)", e.errno or _errno.EINVAL, what) from None

    return AttachedLink("socket_filter", f"socket fd {sock.fileno()}", cleanups=[detach], program=program)


def attach_reuseport(program: Any, sock: socket.socket) -> AttachedLink:
    """Attach an SK_REUSEPORT (or SOCKET_FILTER) `program` choosing among `sock`'s SO_REUSEPORT group."""
    what = f"{program_label(program)} on reuseport group of socket fd {sock.fileno()}"
    _setsockopt(sock, SockOpt.ATTACH_REUSEPORT_EBPF, fileno_of(program), what)

    def detach() -> None:
        if sock.fileno() >= 0:
            try:
                sock.setsockopt(socket.SOL_SOCKET, int(SockOpt.DETACH_REUSEPORT_BPF), 0)
            except OSError as e:
                if e.errno != _errno.ENOENT:
                    raise KernelError("setsockopt(SO_DETACH_REUSEPORT_BPF)", e.errno or _errno.EINVAL,
                                      what) from None

    return AttachedLink("reuseport", f"socket fd {sock.fileno()}", cleanups=[detach], program=program)
