"""cgroup_path(): a cgroup id as the paths bpftrace 0.17 prints, ``unified:/a/b,cpu:/,...``.

A cgroup's id is the inode number of its directory in a cgroup file system (kernfs numbers its nodes
with the ids). bpftrace lists, for each mounted hierarchy where a directory has that inode, the
hierarchy's name and the directory's path from the hierarchy's root: the cgroup v2 hierarchy first (as
``unified``), then the v1 hierarchies by name (their controllers, or the ``name=`` option).
"""

from __future__ import annotations

import fnmatch
import os

_found: dict[tuple[str, int], str] = {}


def _controllers() -> set[str]:
    try:
        with open("/proc/cgroups") as f:
            return {ln.split()[0] for ln in f if ln.strip() and not ln.startswith("#")}
    except OSError:
        return set()


def hierarchies(mountinfo: str | None = None) -> list[tuple[str, str]]:
    """(name, mount point) of each cgroup hierarchy, in bpftrace's order."""
    from bpfkit.kernel.mounts import mounts, parse_mountinfo

    table = mounts() if mountinfo is None else parse_mountinfo(mountinfo)
    known = _controllers()
    v2: list[tuple[str, str]] = []
    v1: dict[str, str] = {}
    for m in table:
        if m.fstype == "cgroup2":
            v2.append(("unified", m.mount_point))
        elif m.fstype == "cgroup":
            opts = m.options.split(",")
            names = [o for o in opts if o in known] + [o[5:] for o in opts if o.startswith("name=")]
            if names:
                v1.setdefault(",".join(names), m.mount_point)
    return v2[:1] + sorted(v1.items())


def _find(root: str, cgid: int) -> str | None:
    """The path under `root` of the directory whose inode is `cgid` ("/" for the root itself)."""
    hit = _found.get((root, cgid))
    if hit is not None:
        return hit
    try:
        if os.stat(root).st_ino == cgid:
            return "/"
    except OSError:
        return None
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            full = os.path.join(dirpath, d)
            try:
                ino = os.lstat(full).st_ino
            except OSError:
                continue
            if ino == cgid:
                path = "/" + os.path.relpath(full, root)
                _found[(root, cgid)] = path
                return path
    return None


def cgroup_path(cgid: int, filter_: str = "") -> str:
    """``name:path`` for each hierarchy (matching the shell wildcard `filter_`, if any) holding cgroup
    `cgid`, comma-separated; "" when none does."""
    parts = []
    for name, point in hierarchies():
        if filter_ and not fnmatch.fnmatchcase(name, filter_):
            continue
        path = _find(point, cgid)
        if path is not None:
            parts.append(f"{name}:{path}")
    return ",".join(parts)
