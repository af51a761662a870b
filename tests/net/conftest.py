"""Network test fixtures: a network namespace and a veth pair the test makes and deletes.

`veth` gives (root-side interface name, its address, namespace name, peer address): the root end
(`bk<pid>a`) stays in this namespace, the peer end lives in the test's namespace, so programs attach
only to an interface this test created. `in_netns` runs a function in a thread switched into the
namespace (setns(2) changes only the calling thread).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import AttachType, MapType, ProgType

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def pytest_runtest_setup(item: pytest.Item) -> None:
    if os.geteuid() != 0:
        pytest.skip("network tests need root (network namespaces, veth)")
    if shutil.which("ip") is None:
        pytest.skip("network tests need iproute2's ip")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class Veth:
    name: str
    addr: str
    netns: str
    peer: str
    peer_addr: str


@pytest.fixture
def veth() -> Iterator[Veth]:
    pid = os.getpid()
    ns, a, b = f"bpfkit-{pid}", f"bk{pid}a", f"bk{pid}b"
    net = f"198.18.{pid % 250}"
    ip("netns", "add", ns)
    try:
        ip("link", "add", a, "type", "veth", "peer", "name", b, "netns", ns)
        ip("addr", "add", f"{net}.1/24", "dev", a)
        ip("link", "set", a, "up")
        ip("-n", ns, "addr", "add", f"{net}.2/24", "dev", b)
        ip("-n", ns, "link", "set", b, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        yield Veth(a, f"{net}.1", ns, b, f"{net}.2")
    finally:
        subprocess.run(["ip", "link", "del", a], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        assert not os.path.exists(f"/run/netns/{ns}"), "test namespace left behind"


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a thread that joined network namespace `ns`; returns its result."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: list[Any] = []

    def run() -> None:
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
        try:
            result.append(fn())
        except BaseException as e:
            result.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if result and isinstance(result[0], BaseException):
        raise result[0]
    return result[0]  # type: ignore[no-any-return]


def insn(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", opcode, src << 4 | dst, off, imm)


def counter_code(map_fd: int, key: int = 0, ret: int = 0) -> bytes:
    """counts[key] += 1 (atomically); return `ret`."""
    return b"".join([
        insn(0x18, 1, 1, imm=map_fd), insn(0), insn(0x62, 10, off=-4, imm=key),
        insn(0xBF, 2, 10), insn(0x07, 2, imm=-4), insn(0x85, imm=1), insn(0x15, 0, off=2),
        insn(0xB7, 1, imm=1), insn(0xDB, 0, 1), insn(0xB7, 0, imm=ret), insn(0x95),
    ])


@pytest.fixture
def counts() -> Iterator[Map]:
    with Map.create(MapSpec(MapType.ARRAY, 4, 8, 8, name="counts"), key=int, value=int) as m:
        yield m


@pytest.fixture
def counter_program(counts: Map) -> Iterator[Callable[..., Program]]:
    made: list[Program] = []

    def make(prog_type: ProgType, key: int = 0, ret: int = 0, attach: AttachType | None = None) -> Program:
        p = Program.load(counter_code(counts.fileno(), key, ret), prog_type, expected_attach_type=attach,
                         name=f"count{key}")
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
