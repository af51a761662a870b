"""cgroup hierarchies from mountinfo, in the order bpftrace 0.17 prints them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfkit.trace import cgroup

MOUNTINFO = """\
30 24 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
34 30 0:30 / /sys/fs/cgroup/uni\\040fied rw,relatime - cgroup2 cgroup2 rw
35 30 0:31 / /mnt/other rw,relatime - ext4 /dev/sda1 rw
"""


def test_hierarchies_put_v2_first_then_v1_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroup, "_controllers", lambda: {"cpu", "cpuacct", "memory"})
    assert cgroup.hierarchies(MOUNTINFO) == [
        ("unified", "/sys/fs/cgroup/uni fied"), ("cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct"),
        ("memory", "/sys/fs/cgroup/memory"), ("systemd", "/sys/fs/cgroup/systemd")]


def test_paths_are_found_by_inode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    inode = (tmp_path / "a" / "b").stat().st_ino
    found = [("unified", str(tmp_path)), ("cpu", str(tmp_path / "a"))]
    monkeypatch.setattr(cgroup, "hierarchies", lambda: found)
    assert cgroup.cgroup_path(inode) == "unified:/a/b,cpu:/b"
    assert cgroup.cgroup_path(inode, "c*") == "cpu:/b"
    assert cgroup.cgroup_path(tmp_path.stat().st_ino) == "unified:/"
    assert cgroup.cgroup_path(1 << 60) == ""
