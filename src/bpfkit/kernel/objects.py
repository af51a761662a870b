"""Commands shared by every kind of bpf object: pin, get pinned, get fd by id, get info by fd.

Minimum kernel: 4.4 (pin/get), 4.13 (ids and info).
"""

from __future__ import annotations

import ctypes
import os
from typing import TypeVar

from bpfkit.errors import KernelError
from bpfkit.kernel import mounts
from bpfkit.kernel.diagnose import bpf_hint
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.syscall import Syscalls, current
from bpfkit.uapi.attr import GetIdAttr, ObjInfoAttr, ObjPinAttr
from bpfkit.uapi.enums import Cmd, MapFlags

_Info = TypeVar("_Info", bound=ctypes.Structure)

# BPF_OBJ_NAME_LEN (include/uapi/linux/bpf.h): names are at most 15 bytes plus NUL.
OBJ_NAME_LEN = 16


def kernel_name(name: str) -> bytes:
    """`name` as the kernel accepts it for maps and programs: at most 15 bytes of [A-Za-z0-9_.]
    (kernel/bpf/syscall.c, bpf_obj_name_cpy); other characters become '_'."""
    clean = "".join(c if (c.isascii() and (c.isalnum() or c in "_.")) else "_" for c in name)
    return clean[: OBJ_NAME_LEN - 1].encode()


def pin(fd: Fd, path: str | os.PathLike[str]) -> None:
    """Pin the object behind `fd` at `path` on a bpf file system (BPF_OBJ_PIN)."""
    p = os.fsencode(path)
    buf = ctypes.create_string_buffer(p)
    attr = ObjPinAttr(pathname=ctypes.addressof(buf), bpf_fd=fd.fileno())
    try:
        fd.syscalls.bpf(Cmd.OBJ_PIN, attr)
    except KernelError as e:
        raise _with_path(e, Cmd.OBJ_PIN, path) from None


def get_pinned(path: str | os.PathLike[str], what: str, *, readonly: bool = False,
               sys: Syscalls | None = None) -> Fd:
    """Open the object pinned at `path` (BPF_OBJ_GET); `readonly` asks for BPF_F_RDONLY access."""
    sys = sys or current()
    p = os.fsencode(path)
    buf = ctypes.create_string_buffer(p)
    attr = ObjPinAttr(pathname=ctypes.addressof(buf), file_flags=MapFlags.RDONLY if readonly else 0)
    try:
        fd = sys.bpf(Cmd.OBJ_GET, attr)
    except KernelError as e:
        raise _with_path(e, Cmd.OBJ_GET, path) from None
    return Fd(fd, f"{what} pinned at {os.fsdecode(path)}", sys)


def _with_path(e: KernelError, cmd: Cmd, path: str | os.PathLike[str]) -> KernelError:
    err = e.errno or 0
    hint = bpf_hint(cmd, err)
    parent = os.path.dirname(os.path.abspath(path))
    fstype = mounts.fstype_of(parent) if os.path.isdir(parent) else None
    if fstype is not None and fstype != "bpf":
        hint = (f"{parent} is on {fstype}, not on a bpf file system: pin under /sys/fs/bpf "
                "(mount -t bpf bpf /sys/fs/bpf)")
    return KernelError(e.syscall, err, os.fsdecode(path) + (f": {hint}" if hint else ""))


def fd_by_id(cmd: Cmd, obj_id: int, what: str, sys: Syscalls | None = None) -> Fd:
    """A new fd for the object with id `obj_id` (BPF_{PROG,MAP,BTF,LINK}_GET_FD_BY_ID)."""
    sys = sys or current()
    attr = GetIdAttr(start_id=obj_id)
    return Fd(sys.bpf(cmd, attr), f"{what} id {obj_id}", sys)


def next_id(cmd: Cmd, start: int = 0, sys: Syscalls | None = None) -> int | None:
    """The next id after `start` (BPF_*_GET_NEXT_ID), or None at the end."""
    sys = sys or current()
    attr = GetIdAttr(start_id=start)
    try:
        sys.bpf(cmd, attr)
    except KernelError as e:
        if e.errno == 2:  # ENOENT: no more ids
            return None
        raise
    return int(attr.next_id)


def info_by_fd(fd: Fd, info: _Info) -> _Info:
    """Fill `info` (a BpfProgInfo, BpfMapInfo, BpfLinkInfo or BpfBtfInfo) for `fd`.

    Pointer fields set in `info` before the call (map_ids, xlated_prog_insns...) are filled too.
    """
    attr = ObjInfoAttr(bpf_fd=fd.fileno(), info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    fd.syscalls.bpf(Cmd.OBJ_GET_INFO_BY_FD, attr)
    return info


def c_string(raw: bytes) -> str:
    """A NUL-terminated C string from a char array."""
    return raw.split(b"\0", 1)[0].decode(errors="replace")
