"""The mount table (/proc/self/mountinfo): where a file system of a given type is mounted."""

from __future__ import annotations

import os

from bpfkit._records import record


@record
class Mount:
    """One line of /proc/self/mountinfo: mount point, file system type, source, super options."""

    mount_point: str
    fstype: str
    source: str
    options: str = ""
    """The super block's options (comma separated), e.g. a cgroup v1 hierarchy's controllers."""


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \\ooo (fs/proc_namespace.c, mangle).
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts described by mountinfo `text`."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        mounts.append(Mount(_unescape(fields[4]), tail[0], _unescape(tail[1]),
                            tail[2] if len(tail) > 2 else ""))
    return mounts


def mounts(path: str = "/proc/self/mountinfo") -> list[Mount]:
    """The current mount table (empty when /proc is not mounted)."""
    try:
        with open(path) as f:
            return parse_mountinfo(f.read())
    except OSError:
        return []


def mounts_of(fstype: str, table: list[Mount] | None = None) -> list[str]:
    """Mount points of file systems of type `fstype`, in mount order."""
    return [m.mount_point for m in (mounts() if table is None else table) if m.fstype == fstype]


def fstype_of(path: str | os.PathLike[str], table: list[Mount] | None = None) -> str | None:
    """The type of the file system holding `path` (longest mount point prefix of its real path)."""
    real = os.path.realpath(path)
    best: Mount | None = None
    for m in mounts() if table is None else table:
        mp = m.mount_point
        inside = real == mp or real.startswith(mp.rstrip("/") + "/")
        if inside and (best is None or len(mp) >= len(best.mount_point)):
            best = m
    return best.fstype if best else None
