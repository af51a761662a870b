"""Cgroup programs: run a program for the sockets, connections, sysctls, devices... of a cgroup v2.

BPF_LINK_CREATE with the cgroup directory's fd and the attach type (Linux 5.7); links always allow
several programs per hook (like BPF_F_ALLOW_MULTI). `legacy=True` uses BPF_PROG_ATTACH instead (older
kernels) and BPF_PROG_DETACH on close. `find_cgroup2()` says where cgroup v2 is mounted.
"""

from __future__ import annotations

import errno as _errno
import os
from pathlib import Path
from typing import Any

from bpfkit.errors import KernelError
from bpfkit.kernel import mounts
from bpfkit.kernel.attach.base import AttachedLink, fileno_of, link_create, program_label, syscalls_of
from bpfkit.kernel.diagnose import bpf_error
from bpfkit.uapi.attr import ProgAttachAttr
from bpfkit.uapi.enums import AttachType, Cmd
from bpfkit.uapi.flags import AttachFlags


def find_cgroup2() -> Path:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid
    systems); KernelError(ENOENT) when it is not mounted."""
    points = mounts.mounts_of("cgroup2")
    for preferred in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if preferred in points:
            return Path(preferred)
    if points:
        return Path(points[0])
    raise KernelError("cgroup2", _errno.ENOENT,
                      "cgroup v2 is not mounted; as root run: mount -t cgroup2 none /sys/fs/cgroup")


def _open_cgroup(cgroup: str | os.PathLike[str] | int) -> tuple[int, bool, str]:
    """(fd, whether we opened it, label) for a cgroup path or an fd."""
    if isinstance(cgroup, int):
        return cgroup, False, f"cgroup fd {cgroup}"
    path = os.fspath(cgroup)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise KernelError(f"open({path})", e.errno or _errno.ENOENT, "not a cgroup directory") from None
    return fd, True, f"cgroup {path}"


def attach_cgroup(program: Any, cgroup: str | os.PathLike[str] | int, attach_type: AttachType | None = None,
                  *, legacy: bool = False, flags: int = AttachFlags.ALLOW_MULTI) -> AttachedLink:
    """Attach `program` to `cgroup` (a cgroup v2 directory or an open fd of one) at `attach_type`
    (default: the program's expected attach type). With `legacy`, BPF_PROG_ATTACH with `flags`."""
    atype = attach_type if attach_type is not None else getattr(program, "expected_attach_type", None)
    if atype is None:
        raise ValueError(f"attach_cgroup: {program_label(program)} has no expected attach type; "
                         "give attach_type (AttachType.CGROUP_INET_INGRESS...)")
    atype = AttachType(atype)
    fd, owned, what = _open_cgroup(cgroup)
    kind = f"cgroup_{atype.name.lower().removeprefix('cgroup_')}"
    try:
        if not legacy:
            link = link_create(program, atype, target_fd=fd, what=what)
            return AttachedLink(kind, what, link=link, program=program)
        return _attach_legacy(program, fd, atype, flags, kind, what)
    finally:
        if owned:
            os.close(fd)


def _attach_legacy(program: Any, fd: int, atype: AttachType, flags: int, kind: str, what: str
                   ) -> AttachedLink:
    sys = syscalls_of(program)
    prog_fd = fileno_of(program)
    attr = ProgAttachAttr(target_fd=fd, attach_bpf_fd=prog_fd, attach_type=atype, attach_flags=flags)
    try:
        sys.bpf(Cmd.PROG_ATTACH, attr)
    except KernelError as e:
        raise bpf_error(Cmd.PROG_ATTACH, e.errno or 0, attr, f"{program_label(program)} to {what}") from None
    # Detaching needs the cgroup and the program again: keep our own fds of both.
    cg = os.dup(fd)
    prog = sys.dup(prog_fd)

    def detach() -> None:
        try:
            dattr = ProgAttachAttr(target_fd=cg, attach_bpf_fd=prog, attach_type=atype)
            try:
                sys.bpf(Cmd.PROG_DETACH, dattr)
            except KernelError as e:
                if e.errno != _errno.ENOENT:  # already detached
                    raise bpf_error(Cmd.PROG_DETACH, e.errno or 0, dattr, what) from None
        finally:
            os.close(cg)
            sys.close(prog)

    return AttachedLink(kind, what, cleanups=[detach], program=program)
