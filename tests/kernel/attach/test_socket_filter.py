"""Socket filters on a UDP socket pair over loopback: the filter counts (and can drop) datagrams."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel.attach.socket_filter import attach_socket_filter
from bpfkit.kernel.maps import Map
from bpfkit.uapi.enums import ProgType

pytestmark = pytest.mark.kernel


@pytest.fixture
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(1.0)
    try:
        yield tx, rx
    finally:
        tx.close()
        rx.close()


def test_filter_counts_datagrams(udp_pair, counts: Map, counter_program) -> None:
    tx, rx = udp_pair
    prog = counter_program(ProgType.SOCKET_FILTER, ret=-1)  # keep whole packets
    with attach_socket_filter(prog, rx) as link:
        assert link.link_fd is None and link.kind == "socket_filter"
        for i in range(10):
            tx.sendto(b"p%d" % i, rx.getsockname())
        got = [rx.recv(64) for _ in range(10)]
        assert got == [b"p%d" % i for i in range(10)]
        assert counts[0] == 10
    tx.sendto(b"after", rx.getsockname())
    assert rx.recv(64) == b"after"
    assert counts[0] == 10  # detached from the socket


def test_filter_returning_zero_drops(udp_pair, counts: Map, counter_program) -> None:
    tx, rx = udp_pair
    prog = counter_program(ProgType.SOCKET_FILTER, key=1, ret=0)
    with attach_socket_filter(prog, rx):
        tx.sendto(b"dropped", rx.getsockname())
        with pytest.raises(socket.timeout):
            rx.settimeout(0.2)
            rx.recv(64)
    assert counts[1] == 1


def test_close_after_socket_closed(counter_program) -> None:
    prog = counter_program(ProgType.SOCKET_FILTER, ret=-1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    link = attach_socket_filter(prog, s)
    s.close()
    link.close()  # the filter went with the socket: nothing to do, no error
    assert link.closed


def test_wrong_program_type_is_refused(counter_program) -> None:
    prog = counter_program(ProgType.XDP, ret=2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(KernelError, match="SO_ATTACH_BPF"):
            attach_socket_filter(prog, s)


def test_reuseport_program_picks_the_socket(counts: Map, counter_program) -> None:
    """A reuseport program's return value is the index of the socket (in bind order) that receives."""
    from bpfkit.kernel.attach.socket_filter import attach_reuseport

    group = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for s in group:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.settimeout(0.5)
        group[0].bind(("127.0.0.1", 0))
        group[1].bind(group[0].getsockname())
        for target in (0, 1):
            prog = counter_program(ProgType.SOCKET_FILTER, key=target, ret=target)
            with attach_reuseport(prog, group[0]) as link:
                assert link.kind == "reuseport"
                for i in range(6):
                    tx.sendto(b"%d" % i, group[0].getsockname())
                assert [group[target].recv(8) for _ in range(6)] == [b"%d" % i for i in range(6)]
            assert counts[target] == 6
    finally:
        for s in (*group, tx):
            s.close()
