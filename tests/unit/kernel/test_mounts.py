"""Mount table parsing, and finding or mounting bpffs/tracefs (mounting through the fake)."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel import bpffs, mounts, tracefs
from bpfkit.kernel.fake import FakeSyscalls
from bpfkit.kernel.syscall import override

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
42 23 0:39 / /sys/fs/bpf rw,relatime - bpf bpf rw
43 27 0:40 / /mnt/my\\040pins rw,relatime shared:5 - bpf none rw
44 23 0:41 / /sys/kernel/debug rw - debugfs debugfs rw
garbage line
"""


def test_parse_mountinfo() -> None:
    table = mounts.parse_mountinfo(MOUNTINFO)
    points = [m.mount_point for m in table]
    assert points == ["/proc", "/", "/sys/fs/bpf", "/mnt/my pins", "/sys/kernel/debug"]
    assert table[3] == mounts.Mount("/mnt/my pins", "bpf", "none", "rw")
    assert mounts.mounts_of("bpf", table) == ["/sys/fs/bpf", "/mnt/my pins"]


def test_fstype_of_uses_the_longest_prefix() -> None:
    table = mounts.parse_mountinfo(MOUNTINFO)
    assert mounts.fstype_of("/sys/fs/bpf/x/y", table) == "bpf"
    assert mounts.fstype_of("/sys/fs/bpfx", table) == "ext4"
    assert mounts.fstype_of("/sys/fs/bpf", table) == "bpf"


def test_real_mount_table_has_root() -> None:
    assert any(m.mount_point == "/" for m in mounts.mounts())


@pytest.fixture
def no_mounts(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSyscalls]:
    monkeypatch.setattr(mounts, "mounts", lambda path="/proc/self/mountinfo": [])
    fake = FakeSyscalls()
    with override(fake):
        yield fake


def test_bpffs_is_mounted_when_missing_as_root(no_mounts: FakeSyscalls,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert bpffs.bpffs() == Path("/sys/fs/bpf")
    assert no_mounts.calls[-1].args == ("bpf", "/sys/fs/bpf", "bpf", 0, None)
    assert tracefs.tracefs() == Path("/sys/kernel/tracing")
    assert no_mounts.calls[-1].args == ("tracefs", "/sys/kernel/tracing", "tracefs", 0, None)


def test_missing_bpffs_says_what_to_run(no_mounts: FakeSyscalls, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(KernelError, match=r"as root run: mount -t bpf bpf /sys/fs/bpf") as ei:
        bpffs.bpffs()
    assert ei.value.errno == errno.ENOENT
    with pytest.raises(KernelError, match=r"mount -t tracefs tracefs /sys/kernel/tracing"):
        tracefs.tracefs()
    with pytest.raises(KernelError, match="not mounted"):
        tracefs.tracefs(mount=False)
    assert not no_mounts.calls


def test_found_mounts_are_not_mounted_again(monkeypatch: pytest.MonkeyPatch) -> None:
    table = mounts.parse_mountinfo(MOUNTINFO)
    monkeypatch.setattr(mounts, "mounts", lambda path="/proc/self/mountinfo": table)
    fake = FakeSyscalls()
    with override(fake):
        assert bpffs.bpffs() == Path("/sys/fs/bpf")
    assert not fake.calls


def test_tracepoint_id(tmp_path: Path) -> None:
    d = tmp_path / "events" / "syscalls" / "sys_enter_openat"
    d.mkdir(parents=True)
    (d / "id").write_text("612\n")
    assert tracefs.tracepoint_id("syscalls", "sys_enter_openat", root=tmp_path) == 612
    with pytest.raises(KernelError, match="no tracepoint syscalls:nope"):
        tracefs.tracepoint_id("syscalls", "nope", root=tmp_path)
    with pytest.raises(KernelError, match="invalid tracepoint name"):
        tracefs.tracepoint_id("..", "x", root=tmp_path)
