"""The bpf file system (bpffs), where maps, programs and links are pinned.

`bpffs()` finds it, or mounts it at /sys/fs/bpf when running as root and it is missing; otherwise the
error says what to run.
"""

from __future__ import annotations

import errno as _errno
import os
from pathlib import Path

from bpfkit.errors import KernelError
from bpfkit.kernel import mounts
from bpfkit.kernel.syscall import Syscalls, current

DEFAULT_PATH = "/sys/fs/bpf"


def find_bpffs() -> Path | None:
    """Where a bpf file system is mounted (preferring /sys/fs/bpf), or None."""
    points = mounts.mounts_of("bpf")
    if DEFAULT_PATH in points:
        return Path(DEFAULT_PATH)
    return Path(points[0]) if points else None


def bpffs(*, mount: bool = True, sys: Syscalls | None = None) -> Path:
    """The bpf file system's mount point; with `mount`, mount it at /sys/fs/bpf if it is missing."""
    found = find_bpffs()
    if found is not None:
        return found
    hint = f"no bpf file system is mounted; as root run: mount -t bpf bpf {DEFAULT_PATH}"
    if not mount or os.geteuid() != 0:
        raise KernelError("bpffs", _errno.ENOENT, hint)
    (sys or current()).mount("bpf", DEFAULT_PATH, "bpf")
    return Path(DEFAULT_PATH)


def is_bpffs(path: str | os.PathLike[str]) -> bool:
    """Whether `path` lies on a bpf file system (pins can only go there)."""
    return mounts.fstype_of(path) == "bpf"
