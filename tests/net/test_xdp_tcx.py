"""XDP and tcx links on a veth pair in a namespace the test creates: counters move with the packets."""

from __future__ import annotations

import socket

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel.attach.tcx import attach_tcx
from bpfkit.kernel.attach.xdp import attach_xdp
from bpfkit.kernel.maps import Map
from bpfkit.uapi.enums import LinkType, ProgType, XdpAction
from bpfkit.uapi.net import TcxAction

from .conftest import Veth, in_netns  # type: ignore[import-not-found]

pytestmark = [pytest.mark.net, pytest.mark.kernel]

N = 20


def send_from_netns(veth: Veth, n: int = N) -> None:
    """n UDP datagrams from the namespace's end to the root end (they arrive on `veth.name`)."""
    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(n):
                s.sendto(b"bpfkit", (veth.addr, 9))
    in_netns(veth.netns, send)


def send_to_netns(veth: Veth, n: int = N) -> None:
    """n UDP datagrams from the root end into the namespace (they leave through `veth.name`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(n):
            s.sendto(b"bpfkit", (veth.peer_addr, 9))


@pytest.mark.parametrize("mode", ["generic", "driver"])
def test_xdp_counts_received_packets(veth: Veth, counts: Map, counter_program, mode: str) -> None:
    prog = counter_program(ProgType.XDP, ret=XdpAction.PASS)
    ifindex = socket.if_nametoindex(veth.name)
    with attach_xdp(prog, veth.name, mode=mode) as link:  # type: ignore[arg-type]
        info = link.info()
        assert info.type == LinkType.XDP and info.target["ifindex"] == ifindex
        send_from_netns(veth)
        n = counts[0]
        assert n >= N
    send_from_netns(veth)
    assert counts[0] == n  # detached


def test_second_xdp_link_is_refused(veth: Veth, counter_program) -> None:
    prog = counter_program(ProgType.XDP, ret=XdpAction.PASS)
    with attach_xdp(prog, veth.name, mode="generic"):
        with pytest.raises(KernelError, match=r"BPF_LINK_CREATE.*EBUSY"):
            attach_xdp(prog, veth.name, mode="generic")


def test_xdp_on_missing_interface(counter_program) -> None:
    prog = counter_program(ProgType.XDP, ret=XdpAction.PASS)
    with pytest.raises(KernelError, match="no network interface 'bpfkit-none'"):
        attach_xdp(prog, "bpfkit-none")


def test_tcx_ingress_and_egress(veth: Veth, counts: Map, counter_program) -> None:
    ing = counter_program(ProgType.SCHED_CLS, key=0, ret=TcxAction.NEXT)
    eg = counter_program(ProgType.SCHED_CLS, key=1, ret=TcxAction.NEXT)
    first = counter_program(ProgType.SCHED_CLS, key=2, ret=TcxAction.NEXT)
    try:
        li = attach_tcx(ing, veth.name, "ingress")
    except KernelError as e:
        pytest.skip(f"tcx links are not available here: {e}")
    with li, attach_tcx(eg, veth.name, "egress") as le, attach_tcx(first, veth.name, "ingress", before=li):
        assert li.info().type == LinkType.TCX
        assert le.info().target["attach_type"] == "tcx_egress"
        send_from_netns(veth)
        send_to_netns(veth)
        assert counts[0] >= N and counts[1] >= N
        assert counts[2] >= N  # placed before the first ingress program, and it returned TCX_NEXT
    before = (counts[0], counts[1])
    send_from_netns(veth)
    assert (counts[0], counts[1]) == before
