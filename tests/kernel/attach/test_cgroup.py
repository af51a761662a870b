"""Cgroup links in a cgroup v2 the test creates; a child process moved into it does the work."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel.attach.cgroup import attach_cgroup, find_cgroup2
from bpfkit.kernel.maps import Map
from bpfkit.uapi.enums import AttachType, LinkType, ProgType

from .conftest import bpftool_link  # type: ignore[import-not-found]

pytestmark = pytest.mark.kernel

A = AttachType


@pytest.fixture
def cgroup() -> Iterator[Path]:
    try:
        root = find_cgroup2()
    except KernelError as e:
        pytest.skip(str(e))
    path = root / f"bpfkit-test-{os.getpid()}"
    path.mkdir()
    try:
        yield path
    finally:
        path.rmdir()  # fails if a process was left in it


def run_in(cgroup: Path, code: str) -> str:
    """Run Python `code` in a child process that first moves itself into `cgroup`."""
    def enter() -> None:
        with open(cgroup / "cgroup.procs", "w") as f:
            f.write("0")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], preexec_fn=enter, check=True,
                          capture_output=True, text=True, timeout=60)
    return done.stdout


SOCKETS = "import socket\nfor _ in range(5): socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()"
CONNECTS = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for p in range(5): s.connect(('127.0.0.1', 9000 + p))")
LOOPBACK = ("import socket\nr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(('127.0.0.1', 0))\n"
            "t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for _ in range(5): t.sendto(b'x', r.getsockname())\n"
            "print(sum(len(r.recv(9)) for _ in range(5)))")
SOCKOPTS = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for _ in range(5): s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)\n"
            "for _ in range(5): s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)")
SYSCTLS = ("import os\nfor _ in range(3):\n"  # one read(2) each: the program runs per read or write
           "    fd = os.open('/proc/sys/kernel/ostype', os.O_RDONLY); os.read(fd, 64); os.close(fd)")
DEVICES = "import os\nfor _ in range(4): os.close(os.open('/dev/null', os.O_RDONLY))"


@pytest.mark.parametrize(("prog_type", "attach_type", "code", "least", "most"), [
    (ProgType.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, SOCKETS, 5, 5),
    (ProgType.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT, CONNECTS, 5, 5),
    (ProgType.CGROUP_SKB, A.CGROUP_INET_EGRESS, LOOPBACK, 5, 5),
    (ProgType.CGROUP_SKB, A.CGROUP_INET_INGRESS, LOOPBACK, 5, 5),
    (ProgType.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT, SOCKOPTS, 5, 5),
    (ProgType.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT, SOCKOPTS, 5, 5),
    (ProgType.CGROUP_SYSCTL, A.CGROUP_SYSCTL, SYSCTLS, 3, 3),
    (ProgType.CGROUP_DEVICE, A.CGROUP_DEVICE, DEVICES, 4, 10),
], ids=lambda v: v.name.lower() if isinstance(v, A) else None)
def test_cgroup_link_counts(cgroup: Path, counts: Map, counter_program, no_new_links: None,
                            prog_type: ProgType, attach_type: AttachType, code: str, least: int,
                            most: int) -> None:
    prog = counter_program(prog_type, ret=1, attach=attach_type)  # 1: allow
    run_in(cgroup, code)
    assert counts[0] == 0  # nothing attached yet
    with attach_cgroup(prog, cgroup) as link:
        info = link.info()
        assert info.type == LinkType.CGROUP and info.target["attach_type"] == attach_type.name.lower()
        assert info.target["cgroup_id"] == os.stat(cgroup).st_ino  # cgroup id is the directory's inode
        tool = bpftool_link(info.id)
        assert (tool["type"], tool["prog_id"]) == ("cgroup", prog.id)
        assert tool["cgroup_id"] == os.stat(cgroup).st_ino
        out = run_in(cgroup, code)
        n = counts[0]
        assert least <= n <= most
        if code is LOOPBACK:
            assert out.strip() == "5"  # the program allowed every datagram
        run(code)  # outside the cgroup: not counted
        assert counts[0] == n
    run_in(cgroup, code)
    assert counts[0] == n


def run(code: str) -> None:
    subprocess.run([sys.executable, "-I", "-S", "-c", code], check=True, capture_output=True, timeout=60)


def test_legacy_prog_attach(cgroup: Path, counts: Map, counter_program, no_new_links: None) -> None:
    prog = counter_program(ProgType.CGROUP_SOCK, ret=1, attach=A.CGROUP_INET_SOCK_CREATE)
    with attach_cgroup(prog, cgroup, legacy=True) as att:
        assert att.link_fd is None
        run_in(cgroup, SOCKETS)
        assert counts[0] == 5
    run_in(cgroup, SOCKETS)
    assert counts[0] == 5  # BPF_PROG_DETACH ran


def test_denying_program_blocks_sockets(cgroup: Path, counter_program) -> None:
    """A sock_create program returning 0 makes socket(2) fail with EPERM, only inside the cgroup."""
    prog = counter_program(ProgType.CGROUP_SOCK, ret=0, attach=A.CGROUP_INET_SOCK_CREATE)
    with attach_cgroup(prog, cgroup):
        with pytest.raises(subprocess.CalledProcessError) as err:
            run_in(cgroup, SOCKETS)
        assert "PermissionError" in err.value.stderr
        run(SOCKETS)


def test_attach_needs_an_attach_type(cgroup: Path, counter_program) -> None:
    prog = counter_program(ProgType.CGROUP_SKB, ret=1)
    with pytest.raises(ValueError, match="no expected attach type"):
        attach_cgroup(prog, cgroup)
    with pytest.raises(KernelError, match="not a cgroup directory"):
        attach_cgroup(prog, cgroup / "missing", A.CGROUP_INET_INGRESS)


def test_update_and_detach(cgroup: Path, counts: Map, counter_program, no_new_links: None) -> None:
    """BPF_LINK_UPDATE swaps the program in place; BPF_LINK_DETACH cuts a pinned link."""
    first = counter_program(ProgType.CGROUP_SOCK, key=0, ret=1, attach=A.CGROUP_INET_SOCK_CREATE)
    second = counter_program(ProgType.CGROUP_SOCK, key=1, ret=1, attach=A.CGROUP_INET_SOCK_CREATE)
    path = f"/sys/fs/bpf/bpfkit_cg_{os.getpid()}"
    link = attach_cgroup(first, cgroup)
    try:
        run_in(cgroup, SOCKETS)
        link.update(second, old_program=first)
        assert link.info().prog_id == second.id
        run_in(cgroup, SOCKETS)
        assert (counts[0], counts[1]) == (5, 5)
        with pytest.raises(KernelError, match="BPF_LINK_UPDATE"):
            link.update(first, old_program=first)  # `first` is no longer attached
        link.pin(path)
        link.detach()  # cut, although the pin still holds the link
        assert link.closed
        run_in(cgroup, SOCKETS)
        assert counts[1] == 5
    finally:
        link.close()
        link.unpin()
