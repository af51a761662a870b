"""bpffs and tracefs on the running system; mounting is tried in a private mount namespace."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bpfkit.kernel import bpffs, tracefs

pytestmark = pytest.mark.kernel


def test_bpffs_found() -> None:
    path = bpffs.bpffs(mount=False) if bpffs.find_bpffs() else None
    if path is None:
        pytest.skip("no bpffs mounted on this system")
    assert bpffs.is_bpffs(path) and bpffs.is_bpffs(path / "some" / "pin")
    assert not bpffs.is_bpffs("/tmp")


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_mount_bpffs_and_tracefs_in_a_private_namespace() -> None:
    """In a new mount namespace with both unmounted, bpffs() and tracefs() mount them."""
    script = textwrap.dedent("""
        import subprocess, sys
        from bpfkit.kernel import bpffs, tracefs, mounts
        for fs in ("bpf", "tracefs"):
            for point in reversed(mounts.mounts_of(fs)):
                subprocess.run(["umount", "-l", point], check=True)
        assert bpffs.find_bpffs() is None and tracefs.find_tracefs() is None
        p = bpffs.bpffs()
        t = tracefs.tracefs()
        assert bpffs.is_bpffs(p), p
        assert (t / "events").is_dir(), t
        print(p, t, tracefs.tracepoint_id("syscalls", "sys_enter_openat", root=t) > 0)
    """)
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", script],
                       capture_output=True, text=True, timeout=60)
    if r.returncode and "unshare failed" in r.stderr:
        pytest.skip(f"cannot make a mount namespace: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["/sys/fs/bpf", "/sys/kernel/tracing", "True"]


def test_tracefs_tracepoint_ids() -> None:
    root = tracefs.find_tracefs()
    if root is None:
        pytest.skip("tracefs is not mounted here (bpfkit mounts it on demand; see the namespace test)")
    assert tracefs.tracepoint_id("syscalls", "sys_enter_openat", root=Path(root)) > 0
