"""The examples run as their users would run them (subprocesses), and their output is checked."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfkit.cc import toolchain

pytestmark = pytest.mark.kernel
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(autouse=True)
def _need_compiler() -> None:
    try:
        toolchain.find_compiler()
    except toolchain.CompilerNotFoundError as e:
        pytest.skip(str(e))


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(proc: subprocess.Popen[str], marker: str, timeout: float = 60) -> list[str]:
    """Lines of `proc`'s output up to and including the first containing `marker`."""
    assert proc.stdout is not None
    lines: list[str] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    err = proc.stderr.read() if proc.stderr else ""
    raise AssertionError(f"no {marker!r} in the output: {lines}; stderr: {err}")


def test_opensnoop_shows_a_file_we_open(tmp_path: Path) -> None:
    target = tmp_path / "opensnoop-target"
    target.write_text("x")
    proc = _start(str(EXAMPLES / "opensnoop.py"), "--duration", "20")
    try:
        _wait_for(proc, "FILENAME")
        deadline = time.monotonic() + 15
        lines: list[str] = []
        while time.monotonic() < deadline:
            target.read_text()
            try:
                lines = _wait_for(proc, str(target), timeout=1)
                break
            except AssertionError:
                continue
        hit = lines[-1].split()
        assert hit[-1] == str(target)
        assert int(hit[0]) == os.getpid() and hit[1] == Path("/proc/self/comm").read_text().strip()
    finally:
        proc.kill()
        proc.communicate()


def test_syscount_counts_a_busy_process() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "import os, time\nend = time.time() + 6\n"
                             "while time.time() < end: os.getppid()"])
    try:
        out = subprocess.run([sys.executable, str(EXAMPLES / "syscount.py"), "--duration", "2.5",
                              "--top", "5"], capture_output=True, text=True, timeout=60)
    finally:
        busy.kill()
        busy.wait()
    assert out.returncode == 0, out.stderr
    rows = [ln.split() for ln in out.stdout.splitlines() if re.match(r"^\d+\s", ln)]
    mine = [int(r[-1]) for r in rows if int(r[0]) == busy.pid]
    assert mine and max(mine) > 1000  # tens of thousands of getppid calls a second


@pytest.fixture
def veth() -> Iterator[tuple[str, str, str]]:
    """A veth pair made for this test: (root-side interface, its address, namespace of the peer)."""
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip")
    pid = os.getpid()
    ns, a, b, net = f"bkcc-{pid}", f"bkc{pid}a", f"bkc{pid}b", f"198.19.{pid % 250}"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    ip("netns", "add", ns)
    try:
        ip("link", "add", a, "type", "veth", "peer", "name", b, "netns", ns)
        ip("addr", "add", f"{net}.1/24", "dev", a)
        ip("link", "set", a, "up")
        ip("-n", ns, "addr", "add", f"{net}.2/24", "dev", b)
        ip("-n", ns, "link", "set", b, "up")
        yield a, f"{net}.1", ns
    finally:
        subprocess.run(["ip", "link", "del", a], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    assert not os.path.exists(f"/run/netns/{ns}")


def test_xdp_count_counts_packets_on_our_veth(veth: tuple[str, str, str]) -> None:
    iface, addr, ns = veth
    proc = _start(str(EXAMPLES / "xdp_count.py"), iface, "--interval", "0.5", "--duration", "30")
    try:
        _wait_for(proc, f"counting packets on {iface}")
        send = ("import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                f"for _ in range(5):\n    s.sendto(b'x' * 100, ({addr!r}, 9))\n    time.sleep(0.05)\n")
        sent = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", send], capture_output=True,
                              text=True)
        assert sent.returncode == 0, sent.stderr
        time.sleep(1.2)
        lines = _wait_for(proc, f"{iface}: packets=", timeout=5)
        last = lines[-1]
        m = re.search(r"packets=(\d+) bytes=(\d+)", last)
        assert m is not None
        packets, nbytes = int(m.group(1)), int(m.group(2))
        assert packets >= 5  # 5 UDP datagrams (plus ARP) reached the XDP program
        assert nbytes >= 5 * 142  # each is a 142-byte frame: 14 Ethernet + 20 IP + 8 UDP + 100 payload
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    # the example detached its program: the interface has no XDP left
    show = subprocess.run(["ip", "link", "show", iface], capture_output=True, text=True).stdout
    assert "xdp" not in show
