"""The tracing file system (tracefs): tracepoint ids, kprobe/uprobe event control.

Found at /sys/kernel/tracing, or /sys/kernel/debug/tracing under debugfs; mounted at /sys/kernel/tracing
when running as root and it is missing; otherwise the error says what to run.
"""

from __future__ import annotations

import errno as _errno
import os
from pathlib import Path

from bpfkit.errors import KernelError
from bpfkit.kernel import mounts
from bpfkit.kernel.syscall import Syscalls, current

DEFAULT_PATH = "/sys/kernel/tracing"
DEBUGFS_PATH = "/sys/kernel/debug/tracing"


def find_tracefs() -> Path | None:
    """Where tracefs is reachable (a tracefs mount, or debugfs's tracing directory), or None."""
    table = mounts.mounts()
    points = mounts.mounts_of("tracefs", table)
    if DEFAULT_PATH in points:
        return Path(DEFAULT_PATH)
    if points:
        return Path(points[0])
    for mp in mounts.mounts_of("debugfs", table):
        candidate = Path(mp) / "tracing"
        if (candidate / "events").is_dir():
            return candidate
    return None


def tracefs(*, mount: bool = True, sys: Syscalls | None = None) -> Path:
    """The tracefs directory; with `mount`, mount tracefs at /sys/kernel/tracing if it is missing."""
    found = find_tracefs()
    if found is not None:
        return found
    hint = f"tracefs is not mounted; as root run: mount -t tracefs tracefs {DEFAULT_PATH}"
    if not mount or os.geteuid() != 0:
        raise KernelError("tracefs", _errno.ENOENT, hint)
    (sys or current()).mount("tracefs", DEFAULT_PATH, "tracefs")
    return Path(DEFAULT_PATH)


def tracepoint_id(category: str, name: str, *, root: Path | None = None) -> int:
    """The perf event id of tracepoint `category:name` (events/<category>/<name>/id)."""
    if "/" in category or "/" in name or category.startswith(".") or name.startswith("."):
        raise KernelError("tracefs", _errno.EINVAL, f"invalid tracepoint name {category}:{name}")
    base = root if root is not None else tracefs()
    path = base / "events" / category / name / "id"
    try:
        return int(path.read_text())
    except FileNotFoundError:
        raise KernelError("tracefs", _errno.ENOENT, f"no tracepoint {category}:{name} ({path})") from None
    except (OSError, ValueError) as e:
        raise KernelError("tracefs", getattr(e, "errno", None) or _errno.EIO, f"{path}: {e}") from None
