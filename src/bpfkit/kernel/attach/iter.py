"""BPF iterators: a TRACING program (``iter/task``, ``iter/bpf_map``...) run over kernel objects, its
output read like a file.

BPF_LINK_CREATE with BPF_TRACE_ITER makes the iterator link (with `iter_info` for parameterised
targets: one map's elements, one task, one cgroup); each BPF_ITER_CREATE on the link gives a new fd
that produces the whole output when read to the end. Pin the link on a bpf file system and reading the
pinned file does the same (``cat /sys/fs/bpf/my_iter``). Minimum kernel: 5.8.
"""

from __future__ import annotations

import ctypes
import os
import struct
from typing import Any

from bpfkit.errors import KernelError
from bpfkit.kernel.attach.base import AttachedLink, fileno_of, link_create
from bpfkit.kernel.diagnose import bpf_error
from bpfkit.kernel.fd import Fd
from bpfkit.uapi.attr import IterCreateAttr, LinkCreateAttr
from bpfkit.uapi.enums import AttachType, CgroupIterOrder, Cmd


def iter_target_id(target: str) -> int:
    """The `attach_btf_id` to load an iterator program for `target` (``task``, ``bpf_map``...) with:
    the kernel function ``bpf_iter_<target>``."""
    from bpfkit.kernel.attach.tracing import vmlinux_btf_id

    return vmlinux_btf_id(f"bpf_iter_{target}")


def iter_info(*, map: Any = None, tid: int = 0, pid: int = 0, pid_fd: int = 0, cgroup_fd: int = 0,
              cgroup_id: int = 0, order: CgroupIterOrder | int = 0) -> bytes:
    """union bpf_iter_link_info: `map` (for bpf_map_elem, sk_storage...), a task (`tid`, `pid` or
    `pid_fd`, Linux 6.1), or a cgroup (`cgroup_fd`/`cgroup_id` and walk `order`, Linux 6.1)."""
    if map is not None:
        return struct.pack("<I", fileno_of(map)) + bytes(12)
    if tid or pid or pid_fd:
        return struct.pack("<III", tid, pid, pid_fd) + bytes(4)
    if cgroup_fd or cgroup_id or order:
        return struct.pack("<IIQ", int(order), cgroup_fd, cgroup_id)
    return b""


class IterLink(AttachedLink):
    """An iterator link; `read()` runs the iterator once and returns all its output."""

    def open(self) -> Fd:
        """A new iterator fd (BPF_ITER_CREATE) to read the output from."""
        link = self._require_link("iterator")
        attr = IterCreateAttr(link_fd=link.fileno())
        try:
            fd = link.syscalls.bpf(Cmd.ITER_CREATE, attr)
        except KernelError as e:
            raise bpf_error(Cmd.ITER_CREATE, e.errno or 0, attr, f"iterator {self.target}") from None
        return Fd(fd, f"iterator {self.target}", link.syscalls)

    def read(self, chunk: int = 1 << 16) -> bytes:
        """Run the iterator to the end and return what the program wrote."""
        with self.open() as fd:
            parts: list[bytes] = []
            while True:
                try:
                    data = os.read(fd.fileno(), chunk)
                except OSError as e:
                    raise KernelError(f"read(iterator {self.target})", e.errno or 5) from None
                if not data:
                    return b"".join(parts)
                parts.append(data)


def attach_iter(program: Any, *, target: str = "", map: Any = None, tid: int = 0, pid: int = 0,
                pid_fd: int = 0, cgroup_fd: int = 0, cgroup_id: int = 0,
                order: CgroupIterOrder | int = 0) -> IterLink:
    """Make an iterator link for an iter `program` (loaded with BPF_TRACE_ITER and the BTF id of
    ``bpf_iter_<target>``); the keyword arguments parameterise it (see `iter_info`)."""
    info = iter_info(map=map, tid=tid, pid=pid, pid_fd=pid_fd, cgroup_fd=cgroup_fd, cgroup_id=cgroup_id,
                     order=order)
    buf = ctypes.create_string_buffer(info, max(len(info), 1))

    def fill(attr: LinkCreateAttr) -> None:
        if info:
            attr.iter_info = ctypes.addressof(buf)
            attr.iter_info_len = len(info)

    what = target or getattr(program, "name", "") or "iterator"
    link = link_create(program, AttachType.TRACE_ITER, fill=fill, keep=(buf,), what=what)
    return IterLink("iter", what, link=link, program=program)
